// forward.cpp: start here. A shell over one plugin (the reference plugin on the sim's fake
// NIC) and the loop every npa program has: receive a burst, send it on. A host at the far
// end of the cable sends numbered frames; each comes back and the host checks them all.
#include <npa/npa.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/traffic.hpp>

#include <cstdio>

struct env { // what the shell needs from its surroundings: a pool type and a clock
    using pool_type = npa::fixed_pool<npa::borrowed_memory>;
    static std::uint64_t now_ns() noexcept { return 0; }
};
struct accept_all { // the control path's authority (a hypervisor, a PF): says yes
    npa::status submit(const npa::control_request&) { return {}; }
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
};

int main() {
    npa::sim::guest_memory mem(8 << 20); // memory the fake NIC can DMA to
    const npa::pool_config pc{.count = 2048};
    auto pool =
        env::pool_type::create(pc, mem.allocate(env::pool_type::required_bytes(pc)).backing());
    auto nic = npa::sim::simnic::create(mem, {.queues = 1, .max_ring_size = 512});
    npa::sim::traffic_peer host(1, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 1});
    if (!pool || !nic)
        return 1;
    npa::sim::connect(host, **nic);

    env e;
    accept_all authority;
    env::pool_type* pools[] = {&*pool};
    npa::shell<env, npa::sim::simnic_plugin> sh(e, pools, {.queues = {.queues = 1}});
    const npa::path_id path =
        sh.add_path<npa::sim::simnic_plugin>((*nic)->window(), npa::control_link::to(authority));
    if (!sh.start(path)) // attach the plugin to the device: the path carries traffic
        return 1;

    std::uint64_t sent = 0;
    for (int round = 0; round < 100; ++round) {
        sent += host.send(sent < 992 ? 32 : 1000 - sent); // the far host sends 1000 frames
        (void)(*nic)->step(); // the device moves frames between cable and rings
        npa::buffer_ref b[32];
        const std::uint16_t n = sh.rx_burst(0, b);
        const std::uint16_t k = sh.tx_burst(0, std::span(b, n));
        sh.free(0, std::span<const npa::buffer_ref>(b + k, n - k)); // not taken: dropped
        (void)sh.poll(0);                                           // reap TX completions
    }
    const auto r = host.report(1, sent);
    std::printf("forwarded %llu of %llu, lost %llu, reordered %llu\n",
                (unsigned long long)r.received, (unsigned long long)sent,
                (unsigned long long)r.lost, (unsigned long long)r.reordered);
    return r.received == sent && r.reordered == 0 ? 0 : 1;
}
