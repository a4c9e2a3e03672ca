// Loads libnpa_kernel_style.so (the core linked with -nostdlib, see
// cmake/npa_header_checks.cmake) and runs what it instantiates: the objects that link
// without the C++ runtime must also do their job.
#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what, unsigned long got, unsigned long want) {
    std::printf("%s %s: %lu (want %lu)\n", ok ? "ok  " : "FAIL", what, got, want);
    failures += ok ? 0 : 1;
}

template <class F>
F symbol(void* lib, const char* name) {
    void* s = dlsym(lib, name);
    if (s == nullptr) {
        std::fprintf(stderr, "FAIL: %s not exported by the kernel-style object\n", name);
        std::exit(1);
    }
    return reinterpret_cast<F>(s);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s path/to/libnpa_kernel_style.so\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    auto ring_bytes = symbol<std::size_t (*)()>(lib, "npa_ks_ring_bytes");
    auto ring_roundtrip =
        symbol<std::uint32_t (*)(void*, std::uint32_t)>(lib, "npa_ks_ring_roundtrip");
    auto gen_roundtrip =
        symbol<std::uint32_t (*)(void*, std::uint32_t, std::uint32_t)>(lib, "npa_ks_gen_roundtrip");
    auto pool_cycle =
        symbol<std::uint32_t (*)(void*, std::size_t, std::uint32_t)>(lib, "npa_ks_pool_cycle");
    auto vlan_count = symbol<std::uint32_t (*)(std::uint32_t)>(lib, "npa_ks_vlan_count");
    auto virtq_roundtrip = symbol<std::uint32_t (*)(void*, std::uint16_t*, std::uint32_t,
                                                    std::uint32_t)>(lib, "npa_ks_virtq_roundtrip");
    auto packed_roundtrip = symbol<std::uint32_t (*)(void*, std::uint16_t*, std::uint32_t,
                                                     std::uint32_t)>(lib, "npa_ks_packed_roundtrip");

    // Memory the "module" provides: cache-line aligned, as the core asks.
    constexpr std::size_t align = 64;
    const std::size_t rb = ring_bytes();
    void* ring = std::aligned_alloc(align, (rb + align - 1) / align * align);
    expect(ring_roundtrip(ring, 32) == 32, "index ring: handles back in order",
           ring_roundtrip(ring, 32), 32);
    std::free(ring);

    std::vector<std::uint64_t> descs(64 * 2, 0); // 64 vmxnet3 TX descriptors of 16 bytes
    expect(gen_roundtrip(descs.data(), 64, 40) == 40, "gen ring: descriptors seen by the consumer",
           gen_roundtrip(descs.data(), 64, 40), 40);

    constexpr std::uint32_t count = 64;
    const std::size_t pool_bytes = 1 << 20;
    void* mem = std::aligned_alloc(4096, pool_bytes);
    expect(pool_cycle(mem, pool_bytes, count) == count,
           "pool over borrowed memory: buffers handed out", pool_cycle(mem, pool_bytes, count),
           count);
    expect(pool_cycle(mem, 4096, count) == 0, "pool refuses memory that is too small",
           pool_cycle(mem, 4096, count), 0);
    std::free(mem);

    expect(vlan_count(0) == 0, "control state: no VLAN filters", vlan_count(0), 0);
    expect(vlan_count(100) == 100, "control state: VLAN filters counted", vlan_count(100), 100);
    expect(vlan_count(4095) == 4095, "control state: every VLAN id counted", vlan_count(4095),
           4095);
    {
        void* block = std::aligned_alloc(4096, 4096);
        std::vector<std::uint16_t> vstate(4 * 64); // split_driver::state_words(64)
        const std::uint32_t got = virtq_roundtrip(block, vstate.data(), 64, 200);
        expect(got == 200, "split virtqueue: chains back through both sides", got, 200);
        const std::uint32_t packed = packed_roundtrip(block, vstate.data(), 48, 200);
        expect(packed == 200, "packed virtqueue: buffers back through both sides", packed, 200);
        std::free(block);
    }
    dlclose(lib);
    return failures == 0 ? 0 : 1;
}
