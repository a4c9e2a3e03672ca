// npa/sim/conformance/lifecycle_checks.hpp: the conformance checks of attach and detach
// (part of npa/sim/conformance.hpp): attach posts a full RX ring; detach hands every buffer
// back, unconfirmed TX through tx_unsent in the order it was accepted.
#pragma once

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/kit.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace npa::sim {

// ---- 1. attach posts RX buffers; detach returns every buffer ------------------------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::attach_detach() {
    bench b{{}};
    if (attach(b)) {
        b.rig.step();
        for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
            expect_ring_full(b, q, "after attach");
        }
    }
    finish(b);
    return b.v;
}

// ---- 7. detach returns every buffer: completed, unsent (in order), RX --------------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::detach_returns_every_buffer() {
    bench b{{}};
    if (attach(b)) {
        send(b, 0, 9, 40);  // accepted, device not stepped
        b.rig.step();       // the device sends them and writes completions, unreaped
        b.rig.far_send(b.rig.flow_for_queue(0), 20);
        b.rig.step();       // RX completions written, not yet delivered
        send(b, 0, 9, 50);  // accepted, never fetched by the device (no step until detach)
        b.p.detach();
        b.attached = false;
        const auto& unsent = b.rig.api().unsent();
        const auto& acc = b.accepted;
        if (unsent.size() > acc.size() ||
            !std::equal(unsent.begin(), unsent.end(), acc.end() - static_cast<std::ptrdiff_t>(unsent.size()))) {
            b.v.fail("detach: tx_unsent did not hand back the unconfirmed buffers in the order "
                     "they were accepted (%zu unsent of %zu accepted)", unsent.size(), acc.size());
        }
    }
    finish(b);
    return b.v;
}

} // namespace npa::sim
