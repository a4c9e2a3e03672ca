// benchmarks/vswitch_icount.cpp: instructions per frame through npa-vswitchd's data path
// (adapters/linux/tools/vswitchd/switch.hpp), counted by callgrind: on a shared machine
// instruction counts repeat where time does not.
//
// Two ports, each with a front end made of the virtqueue core's driver side over memory of
// this process, shaped as DPDK's net_virtio_user lays out its rings: one descriptor per
// transmitted frame (the virtio-net header in front of it), one writable 2 KiB descriptor
// per receive buffer. Each round both front ends send a burst of 64-byte frames to each
// other and post as many receive buffers; the switch's poll() is counted (the client
// requests toggle collection around it, so the front ends' own work is left out), then the
// front ends take their used entries back. Run under
//     valgrind --tool=callgrind --collect-atstart=no npa_vswitch_icount
// it dumps two profiles, `vswitch/forward/64/<burst>` (full bursts both ways: everything a
// frame costs, walk, checks, policy, lookup, copy, used entries, publish) and
// `vswitch/empty` (passes with nothing waiting: what a busy poller spends when idle), and
// prints each with the frames or passes it covered. Outside valgrind the requests are
// no-ops. Every frame is checked to arrive (a count that dropped frames would flatter).
//
// Then the same rounds between two zero-copy ports (zc.hpp; front ends of
// npa/linux/zc_port.hpp attached through their sockets in a private directory), dumped as
// `vswitch/zero-copy/64/<burst>`: the same per-frame work on the switch's side, with the
// buffer handed over instead of copied (each front end gives its received buffers back
// before the next pass, which counts their return too).
#include "switch.hpp"

#include <valgrind/callgrind.h>

#include <stdlib.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

namespace {

namespace vq = npa::virtio;
namespace vs = npa::vswitch;

// ---- tuning constants --------------------------------------------------------------
constexpr std::uint32_t ring_size = 256;           // DPDK virtio-user's default
constexpr std::uint32_t burst = vs::burst;         // frames per port per round
constexpr std::uint32_t frame_len = 64;            // the benchmark's frames
constexpr std::size_t hdr = 10;                    // no feature negotiated here: the legacy header
constexpr std::size_t buf_size = 2048;             // DPDK's mbuf data room
constexpr int warm_rounds = 64, counted_rounds = 2048, empty_passes = 4096;

const npa::mac_addr mac_a{2, 0, 0, 0, 0, 0xa}, mac_b{2, 0, 0, 0, 0, 0xb};

struct front {
    static constexpr std::size_t ring_bytes = 16384, buffers = 4 * burst;
    alignas(4096) std::array<std::byte, 2 * ring_bytes + 2 * buffers * buf_size> mem{};
    std::array<std::uint16_t, vq::split_driver::state_words(ring_size)> tx_state{}, rx_state{};
    vq::split_driver tx, rx;
    std::uint32_t next_tx = 0, next_rx = 0;

    bool attach(vs::port& p) {
        const auto base = reinterpret_cast<std::uint64_t>(mem.data());
        if (!tx.reset(vq::split_ring::in_block(mem.data(), ring_size), tx_state, false) ||
            !rx.reset(vq::split_ring::in_block(mem.data() + ring_bytes, ring_size), rx_state, false) ||
            !p.be.memory().add(mem.data(), base, base, mem.size())) { // gpa = uva, as DPDK's
            return false;
        }
        const vq::split_layout l = vq::layout_of(ring_size);
        for (const std::uint32_t i : {0u, 1u}) { // ring 0 is the front end's receiveq
            npa::vhost_user::vring& r = p.be.rings()[i];
            r.num = ring_size;
            r.desc_uva = base + (i == 0 ? ring_bytes : 0);
            r.avail_uva = r.desc_uva + l.avail;
            r.used_uva = r.desc_uva + l.used;
            r.addr_set = r.kicked = r.enabled = true;
            if (!r.start(p.be.memory(), false)) {
                return false;
            }
        }
        return true;
    }
    std::byte* slot(std::uint32_t& next, std::size_t half) {
        return mem.data() + 2 * ring_bytes + (half * buffers + next++ % buffers) * buf_size;
    }
    void send(const npa::mac_addr& dst, const npa::mac_addr& src) {
        for (std::uint32_t i = 0; i < burst; ++i) {
            std::byte* b = slot(next_tx, 0);
            std::memset(b, 0, hdr);
            (void)npa::sim::eth::write_header({b + hdr, frame_len}, dst, src, 0, 0x88b5);
            const vq::segment s{reinterpret_cast<std::uint64_t>(b), hdr + frame_len, false};
            (void)tx.add({&s, 1});
        }
        (void)tx.publish();
    }
    void post_rx() {
        for (std::uint32_t i = 0; i < burst; ++i) {
            const vq::segment s{reinterpret_cast<std::uint64_t>(slot(next_rx, 1)), buf_size, true};
            (void)rx.add({&s, 1});
        }
        (void)rx.publish();
    }
    std::uint32_t reclaim() {
        std::uint32_t k = 0;
        vq::used_chain u;
        while (rx.poll_used(u) == vq::used_status::ok) {
            k += u.len == hdr + frame_len ? 1 : 0;
        }
        while (tx.poll_used(u) == vq::used_status::ok) {
        }
        return k;
    }
};

// Zero-copy ports a and b with a front end each; false when one did not attach.
bool attach_zero_copy(vs::engine& sw, const std::string& dir, std::optional<npa::lnx::zc::port> (&fe)[2]) {
    auto zp = vs::zc_pool::create();
    if (!zp) {
        return false;
    }
    sw.zpool = std::move(*zp);
    for (std::size_t i = 0; i < 2; ++i) {
        vs::port_config pc;
        pc.name.push_back(i == 0 ? 'a' : 'b'); // (GCC 12's -Wrestrict misreads a string assigned here)
        pc.mac = i == 0 ? mac_a : mac_b;
        pc.zero_copy = true;
        sw.ports.push_back(std::make_unique<vs::port>(pc, npa::vhost_user::back_end::log_fn{}));
        const std::string path = dir + "/" + pc.name + ".sock";
        if (!sw.ports.back()->zc->listen(path)) {
            return false;
        }
        std::thread t([&fe, i, path] {
            auto p = npa::lnx::zc::port::connect(path);
            if (p) {
                fe[i].emplace(std::move(*p));
            }
        });
        for (int k = 0; k < 1000 && !sw.ports.back()->zc->attached(); ++k) {
            sw.service_zc(i, [](const std::string&) {});
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        t.join();
        if (!fe[i]) {
            return false;
        }
    }
    return true;
}

// One burst of 64-byte frames from `fe` to `dst`; false when it had no lent buffers.
bool send_zero_copy(npa::lnx::zc::port& fe, const npa::mac_addr& dst, const npa::mac_addr& src) {
    std::array<std::uint32_t, burst> bufs;
    std::array<npa::shm::buf_desc, burst> d;
    if (fe.alloc(bufs) != burst) {
        return false;
    }
    for (std::uint32_t i = 0; i < burst; ++i) {
        std::byte* b = fe.payload(bufs[i]);
        if (b == nullptr) {
            return false;
        }
        (void)npa::sim::eth::write_header({b, frame_len}, dst, src, 0, 0x88b5);
        d[i] = {bufs[i], frame_len};
    }
    return fe.send(d) == burst;
}

// What `fe` received, given back; how many were whole frames.
std::uint32_t take_zero_copy(npa::lnx::zc::port& fe) {
    std::array<npa::shm::buf_desc, 2 * burst> d;
    std::array<std::uint32_t, 2 * burst> bufs;
    const std::uint32_t n = fe.receive(d);
    std::uint32_t k = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        k += d[i].len == frame_len ? 1 : 0;
        bufs[i] = d[i].buf;
    }
    return fe.release(std::span<const std::uint32_t>(bufs.data(), n)) == n ? k : 0;
}

// One pass of the switch, with callgrind collecting only inside it.
int counted_poll(vs::engine& sw) {
    CALLGRIND_TOGGLE_COLLECT;
    const int n = sw.poll();
    CALLGRIND_TOGGLE_COLLECT;
    return n;
}

} // namespace

int main() {
    vs::engine sw;
    for (const auto* m : {&mac_a, &mac_b}) {
        vs::port_config pc;
        pc.name = std::string(1, m == &mac_a ? 'a' : 'b');
        pc.mac = *m;
        sw.ports.push_back(std::make_unique<vs::port>(pc, npa::vhost_user::back_end::log_fn{}));
    }
    auto fa = std::make_unique<front>(), fb = std::make_unique<front>();
    if (!fa->attach(*sw.ports[0]) || !fb->attach(*sw.ports[1])) {
        std::fprintf(stderr, "vswitch_icount: ring set-up failed\n");
        return 1;
    }
    std::uint64_t frames = 0, delivered = 0;
    for (int r = 0; r < warm_rounds + counted_rounds; ++r) {
        if (r == warm_rounds) {
            CALLGRIND_ZERO_STATS;
            frames = delivered = 0;
        }
        fa->post_rx();
        fb->post_rx();
        fa->send(mac_b, mac_a);
        fb->send(mac_a, mac_b);
        frames += static_cast<std::uint64_t>(counted_poll(sw));
        delivered += fa->reclaim() + fb->reclaim();
    }
    CALLGRIND_DUMP_STATS_AT("vswitch/forward/64/32");
    if (frames != delivered || frames != 2ull * burst * counted_rounds) {
        std::fprintf(stderr, "vswitch_icount: %llu frames taken, %llu delivered\n",
                     static_cast<unsigned long long>(frames), static_cast<unsigned long long>(delivered));
        return 1;
    }
    std::printf("vswitch/forward/64/32 %llu frames\n", static_cast<unsigned long long>(frames));
    CALLGRIND_ZERO_STATS;
    for (int i = 0; i < empty_passes; ++i) {
        if (counted_poll(sw) != 0) {
            std::fprintf(stderr, "vswitch_icount: an empty pass took frames\n");
            return 1;
        }
    }
    CALLGRIND_DUMP_STATS_AT("vswitch/empty");
    std::printf("vswitch/empty %d passes\n", empty_passes);

    // the zero-copy rounds, on an engine of their own
    char tmpl[] = "/tmp/npa-vswitch-icount-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::fprintf(stderr, "vswitch_icount: no temporary directory\n");
        return 1;
    }
    int rc = 0;
    {
        vs::engine zs;
        std::optional<npa::lnx::zc::port> fe[2];
        if (!attach_zero_copy(zs, tmpl, fe)) {
            std::fprintf(stderr, "vswitch_icount: the zero-copy front ends did not attach\n");
            rc = 1;
        }
        frames = delivered = 0;
        for (int r = 0; rc == 0 && r < warm_rounds + counted_rounds; ++r) {
            if (r == warm_rounds) {
                CALLGRIND_ZERO_STATS;
                frames = delivered = 0;
            }
            if (!send_zero_copy(*fe[0], mac_b, mac_a) || !send_zero_copy(*fe[1], mac_a, mac_b)) {
                std::fprintf(stderr, "vswitch_icount: a zero-copy front end had no buffers lent\n");
                rc = 1;
                break;
            }
            (void)counted_poll(zs);
            frames += 2 * burst;
            delivered += take_zero_copy(*fe[0]) + take_zero_copy(*fe[1]);
        }
        CALLGRIND_DUMP_STATS_AT("vswitch/zero-copy/64/32");
        const auto copied = zs.ports[0]->c.tx_packets - zs.ports[0]->c.tx_zero_copy +
                            zs.ports[1]->c.tx_packets - zs.ports[1]->c.tx_zero_copy;
        if (rc == 0 && (frames != delivered || copied != 0)) {
            std::fprintf(stderr, "vswitch_icount: zero-copy: %llu frames sent, %llu delivered, %llu copied\n",
                         static_cast<unsigned long long>(frames), static_cast<unsigned long long>(delivered),
                         static_cast<unsigned long long>(copied));
            rc = 1;
        }
        if (rc == 0) {
            std::printf("vswitch/zero-copy/64/32 %llu frames\n", static_cast<unsigned long long>(frames));
        }
    }
    std::filesystem::remove_all(tmpl);
    return rc;
}
