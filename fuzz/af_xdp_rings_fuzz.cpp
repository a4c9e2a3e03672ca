// fuzz/af_xdp_rings_fuzz.cpp: the AF_XDP plugin (adapters/linux/include/npa/linux/
// af_xdp.hpp) against a hostile kernel on the far side of its four rings per queue, driven
// through attach_rings: libxdp's ring structs over memory the fuzzer owns, no socket.
//
// The fuzzer plays the kernel: it takes fill-ring addresses and answers with RX
// descriptors (addr, len, options), takes TX descriptors and answers with completion
// addresses; each answer is either one the kernel would give (an address it was handed, a
// plausible length) or any value, and producer and consumer indices can jump. Between its
// moves the shell runs rx_burst, tx_burst (lengths of the fuzzer's choosing, some the
// plugin must refuse), tx_reap, and detach plus attach again.
//
// Invariants: no out-of-bounds access or undefined behaviour (ASan+UBSan); every packet
// handed up is a chunk the plugin held, has 14 <= length <= capacity and lies inside its
// UMEM chunk; every buffer comes back exactly once and only while the plugin holds it
// (release_rx_buffers, tx_complete, tx_unsent: double or foreign hand-backs abort); after
// detach every UMEM chunk is back with the shell.
#include "fuzz_input.hpp"

#include <npa/concepts/shell_api.hpp>
#include <npa/linux/af_xdp.hpp>

#include <array>
#include <memory>
#include <vector>

namespace {

namespace lnx = npa::lnx;

constexpr std::uint32_t max_ops = 96;
constexpr std::uint32_t ring_size = 32; // smallest the plugin takes: the rings wrap soon
constexpr std::uint32_t nchunks = 128;  // two queues' fill rings, TX, and spare
constexpr std::size_t umem_bytes = std::size_t{nchunks} * lnx::umem_chunk_size;
constexpr std::uint32_t max_burst = 48;

/// A shell that owns the UMEM's chunks and records who holds each one.
struct fake_shell {
    using buffer_type = npa::buffer_ref;
    enum class holder : std::uint8_t { shell, plugin_rx, plugin_tx };

    std::byte* umem = nullptr;
    std::array<npa::packet_buffer, nchunks> hdrs{};
    std::array<holder, nchunks> held{};
    std::uint32_t alloc_limit = max_burst;

    explicit fake_shell(std::byte* u) noexcept : umem(u) {
        for (std::uint32_t c = 0; c < nchunks; ++c) {
            npa::packet_buffer& h = hdrs[c];
            h.buf_addr = umem + std::size_t{c} * lnx::umem_chunk_size;
            h.buf_iova = std::uint64_t{c} * lnx::umem_chunk_size;
            h.buf_len = lnx::umem_chunk_size;
            h.data_off = lnx::umem_headroom;
        }
    }

    std::uint32_t chunk(npa::buffer_ref b) const noexcept {
        NPA_FUZZ_CHECK(b.get() >= hdrs.data() && b.get() < hdrs.data() + nchunks);
        return static_cast<std::uint32_t>(b.get() - hdrs.data());
    }
    /// The plugin hands b back: it must hold it, as `as`.
    void take_back(npa::buffer_ref b, holder as) noexcept {
        const std::uint32_t c = chunk(b);
        NPA_FUZZ_CHECK(held[c] == as);
        held[c] = holder::shell;
    }
    [[nodiscard]] std::uint32_t with_plugin() const noexcept {
        std::uint32_t n = 0;
        for (holder h : held)
            n += h != holder::shell;
        return n;
    }

    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<npa::buffer_ref> out) noexcept {
        std::uint32_t n = 0;
        for (std::uint32_t c = 0; c < nchunks && n < out.size() && n < alloc_limit; ++c) {
            if (held[c] != holder::shell)
                continue;
            held[c] = holder::plugin_rx;
            hdrs[c].data_len = 0;
            hdrs[c].data_off = lnx::umem_headroom;
            out[n++] = npa::buffer_ref(&hdrs[c]);
        }
        return n;
    }
    void release_rx_buffers(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        for (const npa::buffer_ref b : in)
            take_back(b, holder::plugin_rx);
    }
    void tx_complete(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        for (const npa::buffer_ref b : in)
            take_back(b, holder::plugin_tx);
    }
    void tx_unsent(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        for (const npa::buffer_ref b : in)
            take_back(b, holder::plugin_tx);
    }
    void log(npa::log_level, const char*) noexcept {}
};
static_assert(npa::shell_api<fake_shell>);

/// One ring's shared part as the kernel maps it: indices, flags, entries.
template <class Entry>
struct shared_ring {
    std::uint32_t producer = 0;
    std::uint32_t consumer = 0;
    std::uint32_t flags = 0;
    std::array<Entry, ring_size> entries{};

    // The libxdp view of it, as xsk_umem__create / xsk_socket__create set it up.
    template <class Ring>
    Ring view(bool is_producer) noexcept {
        Ring r{};
        r.mask = ring_size - 1;
        r.size = ring_size;
        r.producer = &producer;
        r.consumer = &consumer;
        r.ring = entries.data();
        r.flags = &flags;
        r.cached_prod = producer;
        r.cached_cons = consumer + (is_producer ? ring_size : 0);
        return r;
    }
};

struct queue_rings {
    shared_ring<xdp_desc> rx, tx;
    shared_ring<std::uint64_t> fq, cq;
    std::vector<std::uint64_t> fill_taken; // addresses the kernel took from the fill ring
    std::vector<std::uint64_t> tx_taken;   // addresses of TX descriptors it took

    lnx::xdp_queue_rings views() noexcept {
        lnx::xdp_queue_rings r;
        r.rx = rx.view<xsk_ring_cons>(false);
        r.tx = tx.view<xsk_ring_prod>(true);
        r.fq = fq.view<xsk_ring_prod>(true);
        r.cq = cq.view<xsk_ring_cons>(false);
        return r;
    }
};

std::byte* umem() {
    alignas(4096) static std::byte m[umem_bytes];
    return m;
}

// The kernel takes up to k entries a producer published on ring r.
template <class Entry, class Take>
void kernel_consume(shared_ring<Entry>& r, std::uint32_t k, Take take) {
    while (k-- != 0 && r.consumer != r.producer) {
        take(r.entries[r.consumer & (ring_size - 1)]);
        ++r.consumer;
    }
}

// An address the kernel answers with: one it was handed (maybe moved a little) or any.
std::uint64_t answer_addr(npa::fuzz::input& in, std::vector<std::uint64_t>& taken) {
    const std::uint8_t how = in.u8();
    if (how % 4 != 0 && !taken.empty()) {
        const std::size_t i = in.u8() % taken.size();
        const std::uint64_t a = taken[i];
        taken.erase(taken.begin() + static_cast<std::ptrdiff_t>(i));
        return how % 4 == 3 ? a + in.u16() : a;
    }
    return static_cast<std::uint64_t>(in.u32()) | (std::uint64_t{in.u32()} << 32);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    using plugin_t = lnx::af_xdp_plugin<fake_shell>;
    auto shell = std::make_unique<fake_shell>(umem());
    const std::uint16_t nq = static_cast<std::uint16_t>(1 + in.below(2));
    auto rings = std::make_unique<std::array<queue_rings, 2>>();
    auto plugin = std::make_unique<plugin_t>();

    lnx::af_xdp_device dev;
    dev.umem_base = umem();
    dev.umem_size = umem_bytes;
    npa::queue_config qc;
    qc.queues = nq;
    qc.rx_ring_size = ring_size;
    qc.tx_ring_size = ring_size;
    auto attach = [&] {
        *rings = {};
        std::array<lnx::xdp_queue_rings, 2> v{};
        for (std::uint16_t q = 0; q < nq; ++q)
            v[q] = (*rings)[q].views();
        const npa::status st = plugin->attach_rings(
            *shell, dev, qc, std::span<const lnx::xdp_queue_rings>(v.data(), nq));
        NPA_FUZZ_CHECK(st.ok());
    };
    attach();
    std::array<npa::buffer_ref, max_burst> burst{};

    for (std::uint32_t op = 0; op < max_ops && !in.empty(); ++op) {
        const std::uint16_t q = static_cast<std::uint16_t>(in.below(nq));
        queue_rings& r = (*rings)[q];
        switch (in.u8() % 8) {
        case 0: { // the kernel takes fill addresses and answers with RX descriptors
            kernel_consume(r.fq, in.below(ring_size + 1),
                           [&](std::uint64_t a) { r.fill_taken.push_back(a); });
            for (std::uint32_t k = in.below(ring_size + 1); k != 0; --k) {
                if (r.rx.producer - r.rx.consumer >= ring_size)
                    break;
                xdp_desc& d = r.rx.entries[r.rx.producer & (ring_size - 1)];
                d.addr = answer_addr(in, r.fill_taken);
                if (d.addr % lnx::umem_chunk_size == 0)
                    d.addr += lnx::umem_headroom;
                d.len = in.flag() ? 60 + in.u16() % 1500 : in.u32();
                d.options = in.u32();
                if (d.addr < umem_bytes) { // the frame itself, as far as it fits the UMEM
                    const auto frame = in.bytes(in.u8());
                    const std::size_t room = umem_bytes - d.addr;
                    std::memcpy(umem() + d.addr, frame.data(),
                                frame.size() < room ? frame.size() : room);
                }
                ++r.rx.producer;
            }
            break;
        }
        case 1: { // the kernel sends TX descriptors and answers with completions
            kernel_consume(r.tx, in.below(ring_size + 1),
                           [&](const xdp_desc& d) { r.tx_taken.push_back(d.addr); });
            for (std::uint32_t k = in.below(ring_size + 1); k != 0; --k) {
                if (r.cq.producer - r.cq.consumer >= ring_size)
                    break;
                std::uint64_t a = answer_addr(in, r.tx_taken);
                r.cq.entries[r.cq.producer & (ring_size - 1)] = a;
                ++r.cq.producer;
            }
            break;
        }
        case 2: { // an index the kernel owns jumps
            const std::uint32_t v = in.flag() ? in.u32() : in.u8();
            switch (in.u8() % 4) {
            case 0: r.rx.producer += v; break;
            case 1: r.cq.producer += v; break;
            case 2: r.fq.consumer += v; break;
            default: r.tx.consumer += v; break;
            }
            break;
        }
        case 3: { // RX burst
            const std::uint32_t budget = 1 + in.below(max_burst);
            const std::uint16_t n =
                plugin->rx_burst(q, std::span<npa::buffer_ref>(burst.data(), budget));
            NPA_FUZZ_CHECK(n <= budget);
            for (std::uint16_t i = 0; i < n; ++i) {
                const npa::buffer_ref b = burst[i];
                const std::uint32_t c = shell->chunk(b);
                NPA_FUZZ_CHECK(b.length() >= 14 && b.length() <= b.capacity());
                const std::byte* chunk_start = umem() + std::size_t{c} * lnx::umem_chunk_size;
                NPA_FUZZ_CHECK(b.data() >= chunk_start &&
                               b.data() + b.length() <= chunk_start + lnx::umem_chunk_size);
                shell->take_back(b, fake_shell::holder::plugin_rx);
            }
            break;
        }
        case 4: { // TX burst of free chunks, lengths of the fuzzer's choosing
            const std::uint32_t want = 1 + in.below(max_burst);
            std::uint32_t n = 0;
            for (std::uint32_t c = 0; c < nchunks && n < want; ++c) {
                if (shell->held[c] != fake_shell::holder::shell)
                    continue;
                npa::packet_buffer& h = shell->hdrs[c];
                h.data_off = lnx::umem_headroom;
                h.data_len = in.flag() ? 60 + in.u16() % 1400 : in.u16();
                h.offload = {};
                burst[n++] = npa::buffer_ref(&h);
            }
            const std::uint16_t sent =
                plugin->tx_burst(q, std::span<npa::buffer_ref>(burst.data(), n));
            NPA_FUZZ_CHECK(sent <= n);
            for (std::uint16_t i = 0; i < sent; ++i) {
                shell->held[shell->chunk(burst[i])] = fake_shell::holder::plugin_tx;
            }
            break;
        }
        case 5: // one call reads at most one completion ring's worth
            NPA_FUZZ_CHECK(plugin->tx_reap(q) <= ring_size);
            break;
        case 6: shell->alloc_limit = in.below(max_burst + 1); break;
        default: // detach: everything comes back; then attach again over fresh rings
            plugin->detach();
            NPA_FUZZ_CHECK(shell->with_plugin() == 0);
            shell->alloc_limit = max_burst;
            attach();
            break;
        }
    }
    plugin->detach();
    NPA_FUZZ_CHECK(shell->with_plugin() == 0);
    return 0;
}
