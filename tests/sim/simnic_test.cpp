// The simnic device model on its own: layout checks, interrupts, link, reset, removal.
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <doctest/doctest.h>

using namespace npa::sim;
using api = simnic_rig::api_type;

TEST_CASE("activate refuses a ring outside guest memory or of a bad size") {
    simnic_rig rig;
    auto& w = rig.window();
    const auto area = w.ring_area(0);
    w.set_rings(0, {area.iova, area.iova + 512, area.iova + 1024, 0x10, 32, 32});
    CHECK(w.activate(0) == npa::errc::invalid_argument);
    w.set_rings(0, {area.iova, area.iova + 512, area.iova + 1024, area.iova + 1536, 48, 32});
    CHECK(w.activate(0) == npa::errc::invalid_argument);
    w.set_rings(0, {area.iova, area.iova + 512, area.iova + 1024, area.iova + 1536, 32, 32});
    CHECK(w.activate(0).ok());
}

TEST_CASE("the interrupt line latches while masked and is one-shot") {
    sim_irq irq;
    irq.raise();
    CHECK(irq.fired() == 0);
    CHECK(irq.pending());
    irq.arm(); // latched cause: delivered at once
    CHECK(irq.fired() == 1);
    CHECK_FALSE(irq.armed());
    irq.clear();
    irq.arm();
    CHECK(irq.fired() == 1);
    irq.raise();
    irq.raise(); // disarmed by the first
    CHECK(irq.fired() == 2);
}

TEST_CASE("attach reports bad requests and a removed device") {
    simnic_rig rig;
    simnic_plugin<api> p;
    npa::queue_config qc = rig.queue_cfg();
    qc.queues = 9;
    CHECK(p.attach(rig.api(), rig.window(), qc) == npa::errc::invalid_argument);
    qc = rig.queue_cfg();
    qc.tx_ring_size = 100;
    CHECK(p.attach(rig.api(), rig.window(), qc) == npa::errc::invalid_argument);
    qc = rig.queue_cfg();
    qc.tx_ring_size = 4096; // larger than the rig's ring memory
    CHECK(p.attach(rig.api(), rig.window(), qc) == npa::errc::no_memory);
    CHECK(rig.api().audit().balanced());
    rig.remove_device();
    CHECK(p.attach(rig.api(), rig.window(), rig.queue_cfg()) == npa::errc::removed);
}

TEST_CASE("a reset device can be attached again and carries traffic") {
    simnic_rig rig;
    simnic_plugin<api> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    rig.reset_device();
    CHECK(p.health() == npa::errc::device_error);
    p.detach();
    CHECK(rig.api().audit().balanced());
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    CHECK(rig.device().state() == simnic_state::running);
    CHECK(p.health() == npa::errc::ok);
    const auto flow = rig.flow_for_queue(1);
    rig.far_send(flow, 5);
    rig.step();
    std::array<npa::buffer_ref, 8> out{};
    const auto k = p.rx_burst(1, out);
    CHECK(k == 5);
    rig.api().received(std::span(out).first(k));
    rig.api().free(std::span(out).first(k));
    p.detach();
    CHECK(rig.api().audit().balanced());
}

TEST_CASE("capabilities are data") {
    simnic_plugin<api> p;
    const auto c = p.capabilities();
    CHECK(c.max_queues == simnic_max_queues);
    CHECK(c.max_ring_size == simnic_max_ring_size);
    CHECK(c.max_mtu == 1500);
}

TEST_CASE("run_until steps the device until the predicate holds, or gives up") {
    simnic_rig rig;
    simnic_plugin<api> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    simnic& dev = rig.device();
    rig.far_send(rig.flow_for_queue(0), 5);
    const std::uint64_t s0 = dev.steps();
    CHECK(dev.run_until([&] { return dev.stats(0).rx_frames == 5; }));
    CHECK(dev.steps() - s0 == 1); // one step fetches the buffers and delivers the frames
    CHECK(dev.run_until([&] { return true; }));
    CHECK(dev.steps() - s0 == 1); // the predicate is checked before each step
    CHECK_FALSE(dev.run_until([&] { return dev.stats(0).rx_frames == 6; }, 7));
    CHECK(dev.steps() - s0 == 8); // gave up after exactly max_steps
    std::array<npa::buffer_ref, 8> out{};
    const auto k = p.rx_burst(0, out);
    CHECK(k == 5);
    rig.api().received(std::span(out).first(k));
    rig.api().free(std::span(out).first(k));
    p.detach();
    CHECK(rig.api().audit().balanced());
}
