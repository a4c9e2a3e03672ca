// npa/sim/conformance/dma_check.hpp: DMA after detach (part of npa/sim/conformance.hpp).
//
// A device may touch a buffer only while the plugin holds it: posted on an RX ring, or
// accepted for TX and not yet handed back. A detach that takes its buffers back without
// first stopping the device (the simnic's quiesce, vmxnet3's QUIESCE_DEV, the 82576 VF's
// RXDCTL/TXDCTL.ENABLE cleared) leaves a device that still holds posted RX buffers and
// fetched TX descriptors; on real hardware the next frame is written into memory the stack
// has reused, or a buffer already sent to the stack goes out on the wire. So every bench
// watches the device's buffer DMA (guest_memory::set_dma_watch), and finish() keeps the
// device alive after detach, with traffic arriving on every queue, for after_detach_steps.
// A DMA into or from a buffer the plugin has handed back is named with the ring, the queue
// that handed it back, the buffer and its owner now: "DMA into a released buffer" (the
// first of each ring; the rest are counted).
#pragma once

#include <npa/sim/conformance/kit.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <string_view>

namespace npa::sim {

template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::watch_dma(bench& b, bool on) noexcept {
    if constexpr (requires { b.rig.memory().set_dma_watch(&on_dma, &b); }) {
        if (b.rig.ok()) {
            b.rig.memory().set_dma_watch(on ? &on_dma : nullptr, on ? &b : nullptr);
        }
    }
}

// The watch: the device is stepped on the kit's thread, so the bench is ours to update. A
// check that runs the device on a thread of its own must turn the watch off first
// (watch_dma(b, false)) or synchronise with it: it reads the ownership map and writes here.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::on_dma(void* ctx, iova_t iova, std::size_t len,
                                      bool write) noexcept {
    bench& b = *static_cast<bench*>(ctx);
    const api_type& api = b.rig.api();
    const std::uint32_t i = api.buffer_at(iova);
    if (i == api_type::no_buffer || api.owner_of(i) == owner::plugin) {
        return;  // not a pool buffer (the device checks its own addresses), or allowed
    }
    const hand_back h = api.handed_back(i);
    char q[24] = "?";
    if (h.queue != hand_back::no_queue) {
        std::snprintf(q, sizeof q, "%u", unsigned{h.queue});
    }
    char msg[256];
    const int ring = std::snprintf(msg, sizeof msg, "DMA %s a released buffer %s: %s %s,",
                                   write ? "into" : "from",
                                   b.attached ? "while attached" : "after detach",
                                   write ? "rxq" : "txq", q);
    // The first DMA of each ring is kept, up to max_kept_dma; the rest are counted.
    const std::size_t head = ring > 0 ? static_cast<std::size_t>(ring) : 0;
    const std::string_view key(msg, head < sizeof msg ? head : sizeof msg - 1);
    if (b.released_dma.size() == max_kept_dma ||
        std::any_of(b.released_dma.begin(), b.released_dma.end(),
                    [&](const std::string& m) { return m.starts_with(key); })) {
        ++b.released_dma_more;
        return;
    }
    std::snprintf(msg + key.size(), sizeof msg - key.size(),
                  " buffer #%u (IOVA 0x%" PRIx64 ", %zu bytes) handed back by %s, now held by %s",
                  i, iova, len, h.where != nullptr ? h.where : "nothing (never handed out)",
                  to_string(api.owner_of(i)));
    try {
        b.released_dma.emplace_back(msg);
    } catch (...) {
        ++b.released_dma_more;  // out of memory: still counted
    }
}

// The device lives on after detach: frames keep arriving for every queue and the device is
// stepped, so whatever it still owns it finishes now (the watch names any buffer it touches).
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::run_after_detach(bench& b) {
    for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
        (void)b.rig.far_send(b.rig.flow_for_queue(q), after_detach_frames);
    }
    b.rig.step(after_detach_steps);
}

} // namespace npa::sim
