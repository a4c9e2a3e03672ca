// npa-vswitchd's switch (adapters/linux/tools/vswitchd/switch.hpp) in-process: three ports
// whose front ends are the virtqueue core's driver side over memory of this process (no
// socket, no testpmd), and every decision of the data path: delivery by configured MAC,
// anti-spoofing, allowed VLANs on the way in and out, runts and oversize frames, unknown and
// hairpin destinations, flooding, a receiver without buffers. Every frame taken is either
// delivered or in exactly one drop counter. Multi-queue ports: which transmitqs are polled,
// which receiveq a frame goes to as pairs are enabled and disabled, a transmitq drained.
#include <doctest/doctest.h>

#include "run_dir.hpp"
#include "switch.hpp"

#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace vq = npa::virtio;
namespace vs = npa::vswitch;

namespace {

constexpr std::uint32_t n = 32;
constexpr std::size_t hdr = 10; // no VERSION_1, no MRG_RXBUF negotiated: the legacy header
constexpr std::size_t tx_ring_at = 0, rx_ring_at = 4096, buffers_at = 8192, buf_size = 2048;

// One front end's queue pair: its memory, its transmit and receive rings (driver side).
struct front {
    alignas(4096) std::array<std::byte, 8192 + 2 * n * buf_size> mem{};
    std::array<std::uint16_t, vq::split_driver::state_words(n)> tx_state{}, rx_state{};
    vq::split_driver tx, rx;
    std::uint32_t next_buf = 0;
    std::array<std::byte*, n> rx_at{}; // each posted receive chain's buffer, by head

    explicit front(vs::port& p, std::uint32_t pair = 0) {
        REQUIRE(tx.reset(vq::split_ring::in_block(mem.data() + tx_ring_at, n), tx_state, false));
        REQUIRE(rx.reset(vq::split_ring::in_block(mem.data() + rx_ring_at, n), rx_state, false));
        const auto base = reinterpret_cast<std::uint64_t>(mem.data());
        REQUIRE(p.be.memory().add(mem.data(), base, base, mem.size())); // gpa = uva, as DPDK
        for (const std::uint32_t i : {0u, 1u}) {
            npa::vhost_user::vring& r = p.be.rings()[2 * pair + i];
            const vq::split_layout l = vq::layout_of(n);
            r.num = n;
            r.desc_uva = base + (i == 0 ? rx_ring_at : tx_ring_at);
            r.avail_uva = r.desc_uva + l.avail;
            r.used_uva = r.desc_uva + l.used;
            r.addr_set = r.kicked = r.enabled = true;
            REQUIRE(r.start(p.be.memory(), false));
        }
    }
    std::byte* buffer() { return mem.data() + buffers_at + (next_buf++ % (2 * n)) * buf_size; }
    void send(const std::vector<std::byte>& frame) {
        std::byte* b = buffer();
        std::memset(b, 0, hdr);
        std::memcpy(b + hdr, frame.data(), frame.size());
        const vq::segment s{reinterpret_cast<std::uint64_t>(b), static_cast<std::uint32_t>(hdr + frame.size()), false};
        REQUIRE(tx.add({&s, 1}) >= 0);
        (void)tx.publish();
    }
    // The frame as several readable descriptors, cut at the given offsets of header + frame
    // (a header split over two descriptors, a frame over two: the switch gathers it).
    void send_cut(const std::vector<std::byte>& frame, std::initializer_list<std::uint32_t> cuts) {
        std::byte* b = buffer();
        std::memset(b, 0, hdr);
        std::memcpy(b + hdr, frame.data(), frame.size());
        std::vector<vq::segment> segs;
        std::uint32_t at = 0;
        for (const std::uint32_t c : cuts) {
            segs.push_back({reinterpret_cast<std::uint64_t>(b + at), c - at, false});
            at = c;
        }
        segs.push_back({reinterpret_cast<std::uint64_t>(b + at), static_cast<std::uint32_t>(hdr + frame.size()) - at, false});
        REQUIRE(tx.add(segs) >= 0);
        (void)tx.publish();
    }
    void post_rx(int k) {
        for (int i = 0; i < k; ++i) {
            std::byte* b = buffer();
            const vq::segment s{reinterpret_cast<std::uint64_t>(b), buf_size, true};
            const std::int32_t head = rx.add({&s, 1});
            REQUIRE(head >= 0);
            rx_at[static_cast<std::size_t>(head)] = b;
        }
        (void)rx.publish();
    }
    // The frames delivered since the last look, as the front end reads them.
    std::vector<std::vector<std::byte>> frames() {
        std::vector<std::vector<std::byte>> out;
        vq::used_chain u;
        while (rx.poll_used(u) == vq::used_status::ok) {
            REQUIRE(u.len >= hdr);
            const std::byte* b = rx_at[u.id] + hdr;
            out.emplace_back(b, b + (u.len - hdr));
        }
        return out;
    }
    int received() {
        int k = 0;
        vq::used_chain u;
        while (rx.poll_used(u) == vq::used_status::ok) {
            ++k;
        }
        vq::used_chain t;
        while (tx.poll_used(t) == vq::used_status::ok) {
        }
        return k;
    }
};

const npa::mac_addr mac_a{2, 0, 0, 0, 0, 0xa}, mac_b{2, 0, 0, 0, 0, 0xb}, mac_c{2, 0, 0, 0, 0, 0xc};

std::vector<std::byte> frame(const npa::mac_addr& dst, const npa::mac_addr& src, std::uint16_t vlan = 0,
                             std::size_t len = 64) {
    std::vector<std::byte> f(len);
    (void)npa::sim::eth::write_header(f, dst, src, vlan, 0x88b5);
    return f;
}

std::uint64_t rx_drops(const vs::counters& c) {
    return c.rx_spoofed + c.rx_vlan + c.rx_runt + c.rx_oversize + c.rx_unknown_dst + c.rx_hairpin;
}
std::uint64_t tx_all(const vs::counters& c) {
    return c.tx_packets + c.tx_vlan + c.tx_down + c.tx_no_buffer + c.tx_too_big;
}

} // namespace

TEST_CASE("npa-vswitchd's switch: every decision of the data path, every frame accounted for") {
    vs::engine sw;
    const auto add = [&](const npa::mac_addr& m, std::vector<std::uint16_t> vlans) {
        vs::port_config pc;
        pc.name = "p";
        pc.name += std::to_string(sw.ports.size());
        pc.mac = m;
        pc.vlans = std::move(vlans);
        sw.ports.push_back(std::make_unique<vs::port>(pc, npa::vhost_user::back_end::log_fn{}));
        return sw.ports.back().get();
    };
    vs::port* a = add(mac_a, {10});
    vs::port* b = add(mac_b, {10});
    vs::port* c = add(mac_c, {});
    front fa(*a), fb(*b), fc(*c);
    fb.post_rx(8);
    fc.post_rx(8);

    SUBCASE("unicast to a configured MAC is delivered, tagged or not where the VLAN is allowed") {
        fa.send(frame(mac_b, mac_a));
        fa.send(frame(mac_b, mac_a, 10));
        (void)sw.poll();
        CHECK(fb.received() == 2);
        CHECK(b->c.tx_packets == 2);
        CHECK(a->c.rx_packets == 2);
    }
    SUBCASE("a frame in one descriptor or in several arrives byte for byte") {
        std::vector<std::byte> f = frame(mac_b, mac_a, 10, 100);
        for (std::size_t i = 18; i < f.size(); ++i) {
            f[i] = static_cast<std::byte>(i * 7);
        }
        fa.send(f);                  // header and frame in one descriptor: taken in place
        fa.send_cut(f, {10});        // header alone, the frame in one more: in place
        fa.send_cut(f, {4, 30});     // the header split, the frame over two: gathered
        fa.send_cut(f, {10, 16, 60}); // the Ethernet header itself split: gathered
        (void)sw.poll();
        const auto got = fb.frames();
        REQUIRE(got.size() == 4);
        for (const auto& g : got) {
            CHECK(g == f);
        }
        CHECK(a->c.rx_packets == 4);
    }
    SUBCASE("the policy on the way in: spoofed source, VLAN not allowed, runt, oversize") {
        fa.send(frame(mac_b, mac_c));                 // another port's MAC as source
        fa.send(frame(mac_b, {3, 0, 0, 0, 0, 1}));     // a multicast source
        fa.send(frame(mac_b, mac_a, 20));              // VLAN 20 not in a's set
        fa.send(std::vector<std::byte>(10));           // shorter than an Ethernet header
        fa.send(frame(mac_b, mac_a, 0, 1514 + 1));     // MTU 1500 + 14 + 1
        (void)sw.poll();
        CHECK(a->c.rx_spoofed == 2);
        CHECK(a->c.rx_vlan == 1);
        CHECK(a->c.rx_runt == 1);
        CHECK(a->c.rx_oversize == 1);
        CHECK(fb.received() == 0);
    }
    SUBCASE("the way out: a VLAN the destination does not allow, unknown and hairpin destinations") {
        fa.send(frame(mac_c, mac_a, 10));              // c allows untagged only
        fa.send(frame({2, 0, 0, 0, 0, 0x77}, mac_a));  // nobody's
        fa.send(frame(mac_a, mac_a));                  // back to itself
        (void)sw.poll();
        CHECK(c->c.tx_vlan == 1);
        CHECK(a->c.rx_unknown_dst == 1);
        CHECK(a->c.rx_hairpin == 1);
        CHECK(fc.received() == 0);
    }
    SUBCASE("broadcast floods the ports that allow the VLAN; a receiver without buffers counts") {
        fa.send(frame(npa::sim::eth::broadcast, mac_a));
        fa.send(frame(npa::sim::eth::broadcast, mac_a, 10)); // c does not take VLAN 10
        (void)sw.poll();
        CHECK(fb.received() == 2);
        CHECK(fc.received() == 1);
        for (int i = 0; i < 10; ++i) {
            fa.send(frame(mac_b, mac_a));
        }
        (void)sw.poll();
        CHECK(fb.received() == 6); // 8 posted, 2 used above
        CHECK(b->c.tx_no_buffer == 4);
    }
    SUBCASE("a port without a MAC: any unicast source, learnt per VLAN") {
        vs::port* d = add({}, {});
        front fd(*d);
        fd.post_rx(4);
        const npa::mac_addr x{2, 0, 0, 0, 0, 0x42};
        fd.send(frame(mac_a, x)); // a has no buffers: counted there, x learnt on d
        (void)sw.poll();
        fa.send(frame(x, mac_a));
        (void)sw.poll();
        CHECK(a->c.tx_no_buffer == 1);
        CHECK(fd.received() == 1);
        CHECK(d->c.rx_spoofed == 0);
    }
    // Every frame taken is forwarded or dropped with a cause; every frame forwarded is
    // delivered or dropped with a cause at its destination (no flooding in this sum:
    // broadcasts count once per port they reach).
    std::uint64_t forwarded = 0, out = 0;
    for (auto& p : sw.ports) {
        forwarded += p->c.rx_packets - rx_drops(p->c);
        out += tx_all(p->c);
    }
    CHECK(forwarded <= out);
    CHECK(a->c.rx_bad_chain == 0);
}

TEST_CASE("npa-vswitchd's switch, multi-queue ports: every running transmitq polled, a frame from queue q on "
          "the (q mod running)-th running receiveq") {
    vs::engine sw;
    const auto add = [&](const npa::mac_addr& m, std::uint32_t queues) {
        vs::port_config pc;
        pc.name = "p" + std::to_string(sw.ports.size());
        pc.mac = m;
        pc.queues = queues;
        sw.ports.push_back(std::make_unique<vs::port>(pc, npa::vhost_user::back_end::log_fn{}));
        return sw.ports.back().get();
    };
    vs::port* a = add(mac_a, 2);
    vs::port* b = add(mac_b, 2);
    vs::port* c = add(mac_c, 1);
    front fa0(*a, 0), fa1(*a, 1), fb0(*b, 0), fb1(*b, 1), fc(*c);
    for (front* f : {&fb0, &fb1, &fc}) {
        f->post_rx(16);
    }
    const auto send = [](front& f, const npa::mac_addr& dst, int k) {
        for (int i = 0; i < k; ++i) {
            f.send(frame(dst, mac_a));
        }
    };
    CHECK(b->queues() == 2);
    CHECK(b->pairs_running() == 2);
    CHECK((b->be.offered & npa::virtio_net::feature::MQ) != 0);
    CHECK((c->be.offered & npa::virtio_net::feature::MQ) == 0);

    SUBCASE("both pairs running: queue 0 to queue 0, queue 1 to queue 1; a 1-pair port takes both") {
        send(fa0, mac_b, 3);
        send(fa1, mac_b, 2);
        send(fa1, mac_c, 4);
        (void)sw.poll();
        CHECK(fb0.received() == 3);
        CHECK(fb1.received() == 2);
        CHECK(fc.received() == 4);
        CHECK(a->rx_queue == std::vector<std::uint64_t>{3, 6});
        CHECK(b->tx_queue == std::vector<std::uint64_t>{3, 2});
        CHECK(a->c.rx_packets == 9);
        CHECK(b->c.tx_packets == 5);
    }
    SUBCASE("a receiveq disabled: the running one takes both queues' frames; none running: tx_down") {
        b->receiveq(1).enabled = false; // SET_VRING_ENABLE 0 (which moves ring_generation())
        b->refresh_running();
        CHECK(b->pairs_running() == 1);
        send(fa0, mac_b, 2);
        send(fa1, mac_b, 3);
        (void)sw.poll();
        CHECK(fb0.received() == 5);
        CHECK(fb1.received() == 0);
        CHECK(b->c.tx_no_buffer == 0);
        b->receiveq(0).enabled = false;
        b->refresh_running();
        send(fa1, mac_b, 1);
        send(fa0, npa::sim::eth::broadcast, 1); // a flood passes a port with nothing running
        (void)sw.poll();
        CHECK(b->c.tx_down == 1);
        CHECK(fc.received() == 1);
        CHECK(b->c.tx_packets == 5);
    }
    SUBCASE("a transmitq disabled is not polled; drain_queue() walks a running one to the end") {
        a->transmitq(1).enabled = false;
        send(fa1, mac_b, 2);
        (void)sw.poll();
        CHECK(a->c.rx_packets == 0);
        a->transmitq(1).enabled = true;
        send(fa1, mac_b, static_cast<int>(n) - 2); // the ring full
        sw.drain_queue(0, 1);
        CHECK(a->rx_queue == std::vector<std::uint64_t>{0, n});
        CHECK(fb1.received() == 16); // 16 posted
        CHECK(b->c.tx_no_buffer == n - 16);
    }
}

TEST_CASE("npa-vswitchd's port option queues=: 1-16 pairs, shown in the port's JSON with per-queue counts") {
    std::string why;
    const auto pc = vs::parse_port("a,mac=02:00:00:00:00:0a,queues=2", why);
    REQUIRE(pc);
    CHECK(pc->queues == 2);
    CHECK(vs::parse_port("a", why)->queues == 1);
    CHECK(vs::parse_port("a,queues=16", why)->queues == vs::max_queues);
    for (const char* bad : {"a,queues=0", "a,queues=17", "a,queues=", "a,queues=2x"}) {
        INFO(bad);
        why.clear();
        CHECK_FALSE(vs::parse_port(bad, why));
        CHECK(why.find("queues= takes 1-16") != std::string::npos);
    }
    vs::port p(*pc, npa::vhost_user::back_end::log_fn{});
    CHECK(p.be.rings().size() == 4);
    p.rx_queue[1] = 7;
    const std::string j = vs::to_json(p);
    CHECK(j.find("\"queues\": 2,") != std::string::npos);
    CHECK(j.find("\"queues_running\": 0,") != std::string::npos);
    CHECK(j.find("\"rx_queue\": [0, 7]") != std::string::npos);
    CHECK(j.find("\"tx_queue\": [0, 0]") != std::string::npos);
}
