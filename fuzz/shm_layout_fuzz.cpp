// fuzz/shm_layout_fuzz.cpp: the metadata header of a shared region
// (include/npa/shm/layout.hpp) as a peer that is not trusted may have written it.
//
// Input: byte 0 holds two switches, the rest is the region (header, side lines, objects).
// Bit 0 sets total_bytes to the region's size and bit 1 then recomputes the checksum, so
// that the fuzzer reaches the object checks behind them without forging a 64-bit hash.
// Invariants: no out-of-bounds access or undefined behaviour; a refused region says why
// and leaves the output header untouched; an accepted one has every object aligned,
// inside the region, past the header and apart from the others, rings a power of two, and
// pools whose count, buffer size and free ring add up (each object's bytes are then
// written, so ASan sees any that the checks let out of the region).
#include "fuzz_input.hpp"

#include <npa/shm/region.hpp>

#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace shm = npa::shm;
    if (size < 1) {
        return 0;
    }
    const std::uint8_t flags = data[0];
    const std::size_t n = size - 1;
    // Cache-line aligned copy, exactly n bytes long for ASan (the aligned start is the
    // allocation's: operator new aligns to 64 when asked).
    auto* mem = static_cast<std::byte*>(::operator new(n == 0 ? 1 : n, std::align_val_t{64}));
    std::memcpy(mem, data + 1, n);
    if (n >= sizeof(shm::region_header) && (flags & 1) != 0) {
        auto* h = reinterpret_cast<shm::region_header*>(mem);
        h->total_bytes = n;
        if ((flags & 2) != 0) {
            h->checksum = shm::header_checksum(*h);
        }
    }
    shm::region_header out{};
    out.magic = 0xfeedULL;
    const npa::status st = shm::validate(std::span<const std::byte>(mem, n), out);
    if (!st) {
        NPA_FUZZ_CHECK(st.reason() != nullptr && std::strlen(st.reason()) > 0);
        NPA_FUZZ_CHECK(out.magic == 0xfeedULL);
        ::operator delete(mem, std::align_val_t{64});
        return 0;
    }
    NPA_FUZZ_CHECK(out.magic == shm::region_magic && out.total_bytes == n);
    NPA_FUZZ_CHECK(out.object_count <= shm::max_objects);
    for (std::uint32_t i = 0; i < out.object_count; ++i) {
        const shm::object_desc& o = out.objects[i];
        const std::uint64_t off = o.offset;
        const std::uint64_t bytes = o.bytes;
        NPA_FUZZ_CHECK(off % npa::cache_line_size == 0 && off >= shm::objects_offset);
        NPA_FUZZ_CHECK(bytes > 0 && off + bytes <= n && off + bytes > off);
        if (o.kind == static_cast<std::uint32_t>(shm::object_kind::ring)) {
            NPA_FUZZ_CHECK(npa::is_power_of_two(o.count));
            NPA_FUZZ_CHECK(bytes >= shm::ring_bytes(o.count, o.elem_size));
        } else {
            NPA_FUZZ_CHECK(o.kind == static_cast<std::uint32_t>(shm::object_kind::pool));
            NPA_FUZZ_CHECK(std::uint64_t{o.count} * o.elem_size == bytes);
            NPA_FUZZ_CHECK(o.headroom < o.elem_size);
            const shm::object_desc& f = out.objects[static_cast<std::uint32_t>(o.link)];
            NPA_FUZZ_CHECK(f.kind == static_cast<std::uint32_t>(shm::object_kind::ring));
            NPA_FUZZ_CHECK(f.count >= o.count && f.elem_size == 4u);
        }
        for (std::uint32_t j = i + 1; j < out.object_count; ++j) {
            const std::uint64_t b = out.objects[j].offset;
            NPA_FUZZ_CHECK(off + bytes <= b || b + out.objects[j].bytes <= off);
        }
        std::memset(mem + off, 0, bytes);
    }
    // The typed views refuse or accept without touching memory out of the region.
    auto r = shm::region::attach(std::span<std::byte>(mem, n));
    NPA_FUZZ_CHECK(r.ok());
    for (std::uint32_t i = 0; i < out.object_count; ++i) {
        auto ring = r->ring<npa::index_ring<shm::buf_desc, 64>>(i, true);
        if (ring) {
            NPA_FUZZ_CHECK((*ring)->empty());
        }
        auto pool = shm::pool<64>::at(*r, i, true);
        if (pool) {
            NPA_FUZZ_CHECK(pool->available() == pool->count());
        }
    }
    ::operator delete(mem, std::align_val_t{64});
    return 0;
}
