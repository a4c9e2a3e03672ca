// fuzz/af_packet_rx_fuzz.cpp: the AF_PACKET plugin's RX walk (adapters/linux/include/npa/
// linux/af_packet_rx.hpp, detail::packet_rx_burst) over TPACKET_V3 blocks the fuzzer writes as
// the kernel would: whole blocks (block header, packet headers, frames) handed over by
// setting TP_STATUS_USER, in ring order or not, interleaved with RX bursts of varying
// budgets against a shell whose pool can run short and whose buffers vary in size.
//
// The ring is laid out exactly as the socket's mapping (packet_rx_block_count blocks of
// packet_rx_block_size bytes), so the code under test is the plugin's own, without a socket.
// Like the kernel, the fuzzer writes only blocks it owns (status not TP_STATUS_USER).
//
// Invariants: no out-of-bounds access or undefined behaviour (ASan+UBSan; each buffer is
// its own allocation of exactly its size); every delivered buffer was handed out by the
// shell, is at least an Ethernet header and at most its capacity long; every buffer the
// shell handed out comes back in the same burst, delivered or released, exactly once;
// every packet a block announced is delivered or counted as dropped once the block is
// handed back (a GSO packet cut into segments counts once), and rx_bytes is the sum of
// the delivered lengths.
#include "fuzz_input.hpp"

#include <npa/concepts/shell_api.hpp>
#include <npa/linux/af_packet.hpp>

#include <array>
#include <memory>
#include <vector>

namespace {

namespace lnx = npa::lnx;

/// Most operations per input, and the largest RX budget asked for.
constexpr std::uint32_t max_ops = 64;
constexpr std::uint32_t max_budget = 64;
/// Buffers the fake shell owns: more than one burst takes.
constexpr std::uint32_t pool_size = 96;

constexpr std::size_t ring_bytes =
    std::size_t{lnx::packet_rx_block_size} * lnx::packet_rx_block_count;

/// A shell that counts every hand-over: a buffer is either in the pool or held by the
/// plugin, and each one's memory is a separate allocation of exactly its size.
struct fake_shell {
    using buffer_type = npa::buffer_ref;

    std::array<npa::packet_buffer, pool_size> hdrs{};
    std::array<std::unique_ptr<std::byte[]>, pool_size> mem{};
    std::array<bool, pool_size> held{};
    std::uint32_t alloc_limit = max_budget; ///< buffers one alloc call can give at most
    std::uint32_t capacity = 2048;          ///< data bytes of the next buffers handed out
    std::uint16_t headroom = 0;
    std::uint64_t handed_out = 0;
    std::uint64_t released = 0;

    std::uint32_t index_of(npa::buffer_ref b) const noexcept {
        const auto i = static_cast<std::uint32_t>(b.get() - hdrs.data());
        NPA_FUZZ_CHECK(b.get() >= hdrs.data() && i < pool_size);
        return i;
    }

    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<npa::buffer_ref> out) noexcept {
        NPA_FUZZ_CHECK(q == 0);
        std::uint32_t n = 0;
        for (std::uint32_t i = 0; i < pool_size && n < out.size() && n < alloc_limit; ++i) {
            if (held[i])
                continue;
            npa::packet_buffer& h = hdrs[i];
            const std::uint32_t len = std::uint32_t{headroom} + capacity;
            mem[i].reset(new std::byte[len]);
            h = npa::packet_buffer{};
            h.buf_addr = mem[i].get();
            h.buf_len = len;
            h.data_off = headroom;
            h.data_len = 0xdeadu; // whatever the plugin does not set stays visible
            held[i] = true;
            out[n++] = npa::buffer_ref(&h);
        }
        handed_out += n;
        return n;
    }
    void release_rx_buffers(std::uint16_t q, std::span<const npa::buffer_ref> in) noexcept {
        NPA_FUZZ_CHECK(q == 0);
        for (const npa::buffer_ref b : in) {
            const std::uint32_t i = index_of(b);
            NPA_FUZZ_CHECK(held[i]); // released twice, or never handed out
            held[i] = false;
        }
        released += in.size();
    }
    void tx_complete(std::uint16_t, std::span<const npa::buffer_ref>) noexcept {
        NPA_FUZZ_CHECK(!"no TX in this target");
    }
    void tx_unsent(std::uint16_t, std::span<const npa::buffer_ref>) noexcept {
        NPA_FUZZ_CHECK(!"no TX in this target");
    }
    void log(npa::log_level, const char*) noexcept {}
};
static_assert(npa::shell_api<fake_shell>);

/// The ring memory, kept across inputs (4 MiB); each input clears what it uses.
std::byte* ring() {
    alignas(4096) static std::byte r[ring_bytes];
    return r;
}

tpacket_block_desc* block_at(std::uint32_t i) { return lnx::detail::packet_rx_block(ring(), i); }

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    for (std::uint32_t i = 0; i < lnx::packet_rx_block_count; ++i) {
        block_at(i)->hdr.bh1.block_status = TP_STATUS_KERNEL;
    }
    auto shell = std::make_unique<fake_shell>();
    lnx::detail::packet_rx_cursor cur{};
    npa::queue_stats st{};
    lnx::packet_rx_whole_counters whole{};
    std::array<std::uint32_t, lnx::packet_rx_block_count> announced{}; // num_pkts handed over
    std::array<bool, lnx::packet_rx_block_count> user{};               // owned by the plugin
    std::uint32_t kernel_next = 0; // the block the kernel fills next, in ring order
    std::uint64_t accounted = 0;   // packets of blocks handed back
    std::uint64_t delivered_bytes = 0;
    std::array<npa::buffer_ref, max_budget> out{};

    // Blocks handed back: every packet they announced is accounted for.
    const auto check_accounts = [&] {
        for (std::uint32_t b = 0; b < lnx::packet_rx_block_count; ++b) {
            const std::uint32_t s =
                std::atomic_ref<std::uint32_t>(block_at(b)->hdr.bh1.block_status)
                    .load(std::memory_order_acquire);
            if (user[b] && (s & TP_STATUS_USER) == 0) {
                user[b] = false;
                accounted += announced[b];
            }
        }
        NPA_FUZZ_CHECK(cur.pkt == 0 || user[cur.block]);
        NPA_FUZZ_CHECK(cur.pkt <= announced[cur.block] || !user[cur.block]);
        // A packet cut into segments counts once; the one being cut counts already.
        NPA_FUZZ_CHECK(st.rx_packets - cur.extra_segments + st.rx_dropped ==
                       accounted + cur.pkt + (cur.seg != 0 ? 1u : 0u));
        NPA_FUZZ_CHECK(st.rx_bytes == delivered_bytes);
        NPA_FUZZ_CHECK(st.bad_completion <= st.rx_dropped);
    };

    for (std::uint32_t op = 0; op < max_ops && !in.empty(); ++op) {
        const std::uint8_t code = in.u8() % 5;
        switch (code) {
        case 0:   // the kernel hands over its next block
        case 1: { // ... or any block it owns (out of order)
            const std::uint32_t b = code == 0 ? kernel_next : in.below(lnx::packet_rx_block_count);
            const std::span<const std::uint8_t> image = in.bytes(in.u16());
            if (user[b])
                break; // not the kernel's to write
            auto* bd = block_at(b);
            std::memset(bd, 0, lnx::packet_rx_block_size);
            std::memcpy(bd, image.data(), image.size());
            announced[b] = bd->hdr.bh1.num_pkts;
            user[b] = true;
            std::atomic_ref<std::uint32_t>(bd->hdr.bh1.block_status)
                .store(bd->hdr.bh1.block_status | TP_STATUS_USER, std::memory_order_release);
            if (b == kernel_next)
                kernel_next = (kernel_next + 1) % lnx::packet_rx_block_count;
            break;
        }
        case 2: { // an RX burst
            const std::uint32_t budget = 1 + in.below(max_budget);
            const std::uint64_t before_out = shell->handed_out, before_rel = shell->released;
            const std::uint16_t n = lnx::detail::packet_rx_burst(
                *shell, 0, ring(), cur, st, std::span<npa::buffer_ref>(out.data(), budget));
            NPA_FUZZ_CHECK(n <= budget);
            for (std::uint16_t i = 0; i < n; ++i) {
                const npa::buffer_ref b = out[i];
                const std::uint32_t k = shell->index_of(b);
                NPA_FUZZ_CHECK(shell->held[k]); // delivered twice, or not handed out
                NPA_FUZZ_CHECK(b.length() <= b.capacity());
                NPA_FUZZ_CHECK(b.length() >= ETH_HLEN);
                delivered_bytes += b.length();
                shell->held[k] = false; // the shell takes it up (and frees it)
            }
            // AF_PACKET copies: nothing stays with the plugin across bursts.
            NPA_FUZZ_CHECK(shell->handed_out - before_out == n + (shell->released - before_rel));
            for (bool h : shell->held)
                NPA_FUZZ_CHECK(!h);
            check_accounts();
            break;
        }
        case 3: { // whole mode: the large frame that ended the burst, written or refused
            const bool accept = (in.u8() & 1) != 0;
            const bool waited = lnx::detail::packet_rx_take_whole(
                ring(), cur, st, whole, [&](std::span<const iovec> iov, std::uint32_t segs) {
                    NPA_FUZZ_CHECK(iov.size() >= 2 && segs >= 1);
                    NPA_FUZZ_CHECK(iov[0].iov_len == sizeof(lnx::virtio_net_hdr));
                    std::size_t len = 0;
                    for (std::size_t k = 1; k < iov.size(); ++k) {
                        len += iov[k].iov_len;
                    }
                    NPA_FUZZ_CHECK(len <= lnx::packet_rx_block_size);
                    if (accept) {
                        delivered_bytes += len;
                    }
                    return accept;
                });
            NPA_FUZZ_CHECK(!cur.whole_pending);
            NPA_FUZZ_CHECK(!waited || cur.whole); // only whole mode holds a frame back
            check_accounts();
            break;
        }
        default: // the shell: how many buffers it can give, and how large they are
            shell->alloc_limit = in.below(max_budget + 1);
            shell->capacity = 14 + in.u16() % 2100;
            shell->headroom = static_cast<std::uint16_t>(in.u8());
            if (cur.seg == 0) {
                const std::uint8_t bits = in.u8();
                cur.vnet = (bits & 1) != 0; // frames with a virtio_net_hdr (GSO) or not
                // Whole mode (large TCP frames stop the burst for packet_rx_take_whole);
                // switching it off cuts a frame that waits, as the plugin does.
                cur.whole = cur.vnet && (bits & 2) != 0;
                cur.whole_pending = cur.whole_pending && cur.whole;
            }
            break;
        }
    }
    return 0;
}
