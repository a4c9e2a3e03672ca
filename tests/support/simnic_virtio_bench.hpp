// tests/support/simnic_virtio_bench.hpp: the bench of the shell<simnic, virtio-net> tests:
// a simnic and a virtio-net device model (one queue pair, 256-entry queues) on one L2
// switch with a far end, and a pool of 2048 buffers in the same guest memory.
#pragma once

#include <npa/shell.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/virtio_net_device.hpp>

#include "switch_traffic.hpp"

#include <memory>
#include <optional>

namespace npa_test {

struct simnic_virtio_bench {
    using env_type = two_device_env<npa::sim::simnic, npa::sim::virtio_net_device>;
    static constexpr npa::mac_addr guest{0x02, 0, 0, 0, 0, 0x01}, peer_mac{0x02, 0, 0, 0, 0, 0x02};

    npa::sim::guest_memory mem{std::size_t{24} << 20};
    std::optional<env_type::pool_type> pool;
    std::unique_ptr<npa::sim::simnic> sdev;
    std::unique_ptr<npa::sim::virtio_net_device> vdev;
    npa::sim::l2_switch sw{3};
    npa::sim::far_end peer{peer_mac, guest};
    env_type env{};
    npa::shell_config cfg{};
    const char* error = nullptr;

    simnic_virtio_bench() {
        npa::pool_config pc;
        pc.count = 2048;
        const npa::sim::guest_block pb = mem.allocate(env_type::pool_type::required_bytes(pc));
        auto p = env_type::pool_type::create(pc, pb.backing());
        npa::sim::simnic_config sc;
        sc.queues = 1;
        sc.max_ring_size = 256;
        auto s = npa::sim::simnic::create(mem, sc);
        npa::sim::virtio_net_device_config vc;
        vc.max_pairs = 1;
        vc.queue_max = 256;
        auto v = npa::sim::virtio_net_device::create(mem, vc);
        if (!p.ok() || !s.ok() || !v.ok()) {
            error = !p.ok() ? p.error().reason() : !s.ok() ? s.error().reason() : v.error().reason();
            return;
        }
        pool.emplace(std::move(*p));
        sdev = std::move(*s);
        vdev = std::move(*v);
        connect(*sdev, sw.port_at(0));
        connect(*vdev, sw.port_at(1));
        connect(peer, sw.port_at(2));
        env = env_type{sdev.get(), vdev.get()};
        cfg.queues.queues = 1;
        cfg.queues.tx_ring_size = cfg.queues.rx_ring_size = 256;
        cfg.policy.min_dwell_ns = 0;
    }
    [[nodiscard]] bool ok() const noexcept { return error == nullptr; }
    void step() {
        sdev->step();
        vdev->step();
    }
};

} // namespace npa_test
