// npa/sim/detail/simnic_plugin_parts.hpp: the reference plugin's incidental helpers (simnic_plugin.hpp):
// the attach request check and the ring-slot arithmetic, kept here so that the plugin
// reads as its data path.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/sim/simnic_defs.hpp>
#include <npa/sim/simnic_window.hpp>

#include <cstdint>
#include <span>

namespace npa::sim::detail {

/// attach's first step: the device is there, and the queue count and ring sizes are ones
/// it takes.
[[nodiscard]] inline status check_request(const simnic_window& dev,
                                          const queue_config& qc) noexcept {
    if (dev.state() == simnic_state::removed) {
        return {errc::removed, "simnic: device removed"};
    }
    if (qc.queues == 0 || qc.queues > dev.max_queues()) {
        return {errc::invalid_argument, "simnic: queue pairs outside 1..max_queues"};
    }
    if (!simnic_ring_size_ok(qc.tx_ring_size) || !simnic_ring_size_ok(qc.rx_ring_size)) {
        return {errc::invalid_argument, "simnic: ring sizes must be powers of two in 32..4096"};
    }
    return status::success();
}

/// Hands `count` buffers from slot (from & mask) on to `fn`, in ring order: two spans at
/// most (the run up to the end of the ring, then the rest from slot 0).
template <class Buffer, class Fn>
void give_back(Buffer* bufs, std::uint32_t mask, std::uint32_t from, std::uint32_t count,
               Fn fn) noexcept {
    const std::uint32_t first = from & mask;
    const std::uint32_t run = count < mask + 1 - first ? count : mask + 1 - first;
    if (run != 0) {
        fn(std::span<const Buffer>(bufs + first, run));
    }
    if (count > run) {
        fn(std::span<const Buffer>(bufs, count - run));
    }
}

/// Hands `want` buffers from `alloc(span)` into the slots from (from & mask) on, in ring
/// order: two calls at most; stops at the first short one. Returns how many came.
template <class Buffer, class Alloc>
std::uint32_t take_in(Buffer* bufs, std::uint32_t mask, std::uint32_t from, std::uint32_t want,
                      Alloc alloc) noexcept {
    const std::uint32_t first = from & mask;
    const std::uint32_t run = want < mask + 1 - first ? want : mask + 1 - first;
    std::uint32_t got = alloc(std::span<Buffer>(bufs + first, run));
    if (got == run && want > run) {
        got += alloc(std::span<Buffer>(bufs, want - run));
    }
    return got;
}

/// How many posted descriptors a completion (index, tag) passes over before its own, or
/// `not_posted` if it names no posted descriptor: out of the ring, outside
/// [cleaned, filled), or with another descriptor's tag (stale, duplicated or invented).
/// Descriptor n sits in slot n & mask and carries tag n.
inline constexpr std::uint32_t not_posted = ~std::uint32_t{0};
[[nodiscard]] constexpr std::uint32_t completion_skip(std::uint32_t index, std::uint32_t tag,
                                                      std::uint32_t cleaned, std::uint32_t filled,
                                                      std::uint32_t mask) noexcept {
    const std::uint32_t skip = (index - cleaned) & mask;
    return index > mask || skip >= filled - cleaned || tag != cleaned + skip ? not_posted : skip;
}

/// Takes a snapshot of the next completion (true if there is one). A stale slot followed
/// by a fresh one (the device broke generation order) is skipped and reported to
/// `on_skip`, so a device that does that cannot wedge the ring.
template <gen_desc_traits Tr, class OnSkip>
bool poll_completion(gen_consumer<Tr>& cc, typename Tr::desc_type& c, OnSkip on_skip) noexcept {
    if (cc.poll(c)) {
        return true;
    }
    if (!gen_out_of_order(cc)) {
        return false;
    }
    on_skip();
    cc.advance();
    return cc.poll(c);
}

} // namespace npa::sim::detail
