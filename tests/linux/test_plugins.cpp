// Linux plugins over a veth pair in a private network namespace: conformance to
// npa::plugin, RX and TX of real frames through the kernel, order, buffer accounting
// (nothing lost on detach), bad input refused with a reason, the XDP program removed.
#define DOCTEST_CONFIG_IMPLEMENT
#include "test_kit.hpp"

#include <npa/linux/af_packet.hpp>
#include <npa/linux/af_xdp.hpp>

#include <algorithm>

using npa_test::test_api;
using af_packet = npa::lnx::af_packet_plugin<test_api>;
using af_xdp = npa::lnx::af_xdp_plugin<test_api>;

static_assert(npa::check_plugin<af_packet, test_api>());
static_assert(npa::check_plugin<af_xdp, test_api>());
static_assert(npa::reports_health<af_packet> && npa::reports_health<af_xdp>);

namespace {

struct fixture {
    npa_test::veth_pair veth{"npt0", "npt1"};
    npa::lnx::umem_pool pool = make();
    test_api api;

    fixture() { api.pool = &pool; }

    static npa::lnx::umem_pool make() {
        auto r = npa::lnx::make_umem_pool(2048);
        REQUIRE(r.ok());
        return std::move(*r);
    }
};

template <class P>
typename P::device_type device_for(fixture& f, const char* ifname) {
    if constexpr (std::is_same_v<P, af_packet>) {
        (void)f;
        return npa::lnx::af_packet_device::named(ifname);
    } else {
        return npa::lnx::af_xdp_device::over(ifname, f.pool, npa::lnx::xdp_mode::copy);
    }
}

// Polls rx_burst until `want` frames arrived or a generous deadline passed (the deadline
// only bounds a failing test; a passing one returns as soon as the frames are in, so it
// is sized for a sanitizer build on a loaded two-core machine, not a quiet one).
template <class P>
std::vector<npa::buffer_ref> receive(P& p, std::size_t want) {
    std::vector<npa::buffer_ref> got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (got.size() < want && std::chrono::steady_clock::now() < end) {
        std::array<npa::buffer_ref, 32> out{};
        const std::uint16_t n = p.rx_burst(0, out);
        got.insert(got.end(), out.begin(), out.begin() + n);
        if (n == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    return got;
}

template <class P>
void drain_tx(P& p) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (p.tx_in_flight(0) != 0 && std::chrono::steady_clock::now() < end) {
        (void)p.tx_reap(0);
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

} // namespace

TEST_CASE_TEMPLATE("a Linux plugin receives frames in order, intact", P, af_packet, af_xdp) {
    fixture f;
    P p;
    auto dev = device_for<P>(f, "npt0");
    npa::queue_config qc;
    REQUIRE(p.attach(f.api, dev, qc).ok());
    npa_test::raw_socket peer("npt1");
    constexpr std::uint32_t count = 200;
    for (std::uint32_t i = 0; i < count; ++i) {
        REQUIRE(peer.send(npa_test::make_frame(i, 60 + i * 7 % 1400)));
    }
    auto got = receive(p, count);
    // Other frames (none expected with IPv6 off) would not carry our ethertype.
    std::vector<npa::buffer_ref> ours;
    for (auto b : got) {
        const auto* d = reinterpret_cast<const std::uint8_t*>(b.data());
        if (b.length() >= 18 && d[12] == 0x88 && d[13] == 0xb5) {
            ours.push_back(b);
        } else {
            f.pool.free(b);
        }
    }
    REQUIRE(ours.size() == count);
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto* d = reinterpret_cast<const std::uint8_t*>(ours[i].data());
        CHECK(npa_test::frame_seq(d) == i);
        const auto ref = npa_test::make_frame(i, 60 + i * 7 % 1400);
        CHECK(ours[i].length() == ref.size());
        CHECK(std::memcmp(d, ref.data(), ref.size()) == 0);
    }
    CHECK(p.stats(0).rx_packets >= count);
    f.pool.free_burst(ours);
    p.detach();
    CHECK(f.pool.available() == f.pool.size());
    CHECK(f.pool.stats().double_free == 0);
}

TEST_CASE_TEMPLATE("a Linux plugin sends frames in order and completes them", P, af_packet,
                   af_xdp) {
    fixture f;
    P p;
    auto dev = device_for<P>(f, "npt0");
    npa::queue_config qc;
    REQUIRE(p.attach(f.api, dev, qc).ok());
    npa_test::raw_socket peer("npt1");
    constexpr std::uint32_t count = 300;
    std::uint32_t sent = 0;
    while (sent < count) {
        std::array<npa::buffer_ref, 16> bufs{};
        const std::uint32_t n =
            f.pool.alloc_burst(std::span(bufs.data(), std::min<std::size_t>(16, count - sent)));
        REQUIRE(n > 0);
        for (std::uint32_t i = 0; i < n; ++i) {
            const auto fr = npa_test::make_frame(sent + i, 64 + (sent + i) % 900);
            std::memcpy(bufs[i].data(), fr.data(), fr.size());
            bufs[i].set_length(static_cast<std::uint32_t>(fr.size()));
        }
        std::uint32_t done = 0;
        while (done < n) {
            done += p.tx_burst(0, std::span(bufs.data() + done, n - done));
            (void)p.tx_reap(0);
        }
        sent += n;
    }
    std::uint32_t seen = 0;
    for (;;) {
        auto fr = peer.recv(30'000); // returns as soon as the frame is in
        if (fr.empty()) {
            break;
        }
        CHECK(npa_test::frame_seq(fr.data()) == seen);
        CHECK(fr.size() == std::max<std::size_t>(64 + seen % 900, 60));
        if (++seen == count) {
            break;
        }
    }
    CHECK(seen == count);
    drain_tx(p);
    CHECK(p.tx_in_flight(0) == 0);
    CHECK(f.api.completed.size() == count);
    CHECK(p.stats(0).tx_packets == count);
    p.detach();
    CHECK(f.api.unsent.empty());
    CHECK(f.pool.available() == f.pool.size());
}

TEST_CASE_TEMPLATE("detach hands back every buffer, and a removed interface is survivable", P,
                   af_packet, af_xdp) {
    fixture f;
    P p;
    auto dev = device_for<P>(f, "npt0");
    npa::queue_config qc;
    REQUIRE(p.attach(f.api, dev, qc).ok());
    CHECK((f.pool.in_use() > 0) == std::is_same_v<P, af_xdp>); // AF_XDP posts its fill ring
    // Some TX in flight when the interface disappears under the plugin.
    std::array<npa::buffer_ref, 32> bufs{};
    REQUIRE(f.pool.alloc_bulk(bufs) == bufs.size());
    for (std::uint32_t i = 0; i < bufs.size(); ++i) {
        const auto fr = npa_test::make_frame(i);
        std::memcpy(bufs[i].data(), fr.data(), fr.size());
        bufs[i].set_length(static_cast<std::uint32_t>(fr.size()));
    }
    const std::uint16_t n = p.tx_burst(0, bufs);
    f.pool.free_burst(std::span(bufs.data() + n, bufs.size() - n));
    REQUIRE(npa_test::sh("ip link del npt0"));
    std::array<npa::buffer_ref, 8> more{};
    REQUIRE(f.pool.alloc_bulk(more) == more.size());
    for (auto b : more) {
        const auto fr = npa_test::make_frame(99);
        std::memcpy(b.data(), fr.data(), fr.size());
        b.set_length(static_cast<std::uint32_t>(fr.size()));
    }
    const std::uint16_t m = p.tx_burst(0, more);
    f.pool.free_burst(std::span(more.data() + m, more.size() - m));
    std::array<npa::buffer_ref, 32> out{};
    const std::uint16_t r = p.rx_burst(0, out);
    f.pool.free_burst(std::span(out.data(), r));
    p.detach();
    // Every buffer is either back in the pool or was handed to the caller as unsent.
    f.pool.free_burst(f.api.unsent);
    CHECK(f.pool.available() == f.pool.size());
    CHECK(f.pool.stats().double_free == 0);
    CHECK(f.pool.stats().foreign_free == 0);
    CHECK(f.api.completed.size() + f.api.unsent.size() == n + m);
}

TEST_CASE("bad input is refused with a reason and leaves nothing behind") {
    fixture f;
    {
        af_packet p;
        auto dev = npa::lnx::af_packet_device::named("npa-nonexist");
        npa::queue_config qc;
        const auto st = p.attach(f.api, dev, qc);
        CHECK(st.code() == npa::errc::removed);
        CHECK(std::string(st.reason()).find("not found") != std::string::npos);
        auto good = npa::lnx::af_packet_device::named("npt0");
        qc.tx_ring_size = 100;
        CHECK(p.attach(f.api, good, qc).code() == npa::errc::invalid_argument);
        qc.tx_ring_size = 512;
        qc.mtu = 9000;
        CHECK(p.attach(f.api, good, qc).code() == npa::errc::invalid_argument);
        CHECK_FALSE(p.attached());
    }
    {
        af_xdp p;
        npa::queue_config qc;
        // A device that names no UMEM.
        npa::lnx::af_xdp_device none;
        std::strcpy(none.ifname, "npt0");
        CHECK(p.attach(f.api, none, qc).code() == npa::errc::invalid_argument);
        // A shell whose buffers are not in the UMEM it names: refused, buffers returned.
        auto heap = npa::fixed_pool<>::create(npa::pool_config{});
        REQUIRE(heap.ok());
        struct heap_api : test_api {
        } hapi;
        npa::lnx::umem_pool* dummy = nullptr;
        (void)dummy;
        test_api api2;
        api2.pool = &f.pool;
        auto dev = npa::lnx::af_xdp_device::over("npt0", f.pool, npa::lnx::xdp_mode::copy);
        npa::lnx::umem_memory other(1 << 20);
        dev.umem_base = other.base();
        dev.umem_size = other.size();
        const auto st = p.attach(api2, dev, qc);
        CHECK(st.code() == npa::errc::invalid_argument);
        CHECK(std::string(st.reason()).find("UMEM") != std::string::npos);
        CHECK(f.pool.available() == f.pool.size());
        CHECK_FALSE(p.attached());
        // Zero-copy needs a driver that DMAs into the UMEM (ndo_xsk_wakeup); veth has none,
        // so the kernel refuses the XDP_ZEROCOPY bind and the plugin says so instead of
        // silently copying. Zero-copy itself needs such a NIC (adapters/linux/README.md).
        auto zc = npa::lnx::af_xdp_device::over("npt0", f.pool, npa::lnx::xdp_mode::zero_copy);
        const auto stz = p.attach(f.api, zc, qc);
        CHECK(stz.code() == npa::errc::not_supported);
        CHECK(std::string(stz.reason()).find("zero-copy") != std::string::npos);
        CHECK_FALSE(p.attached());
        CHECK(f.pool.available() == f.pool.size());
    }
}

TEST_CASE("the AF_XDP plugin loads its XDP program on attach and removes it on detach") {
    fixture f;
    CHECK(npa_test::sh_out("ip link show dev npt0").find("xdp") == std::string::npos);
    {
        af_xdp p;
        auto dev = npa::lnx::af_xdp_device::over("npt0", f.pool, npa::lnx::xdp_mode::automatic);
        npa::queue_config qc;
        REQUIRE(p.attach(f.api, dev, qc).ok());
        CHECK(npa_test::sh_out("ip link show dev npt0").find("prog/xdp") != std::string::npos);
        // veth has no zero-copy support: automatic mode falls back to copy.
        CHECK(p.mode() == npa::lnx::xdp_mode::copy);
        p.detach();
    }
    CHECK(npa_test::sh_out("ip link show dev npt0").find("prog/xdp") == std::string::npos);
    CHECK(f.pool.available() == f.pool.size());
    // Attach again (a switch back to this path) works on the same interface and UMEM.
    af_xdp p2;
    auto dev = npa::lnx::af_xdp_device::over("npt0", f.pool, npa::lnx::xdp_mode::copy);
    npa::queue_config qc;
    REQUIRE(p2.attach(f.api, dev, qc).ok());
    p2.detach();
}

namespace {

// The shared part of each ring as the kernel maps it: indices, flags, entries.
struct shared_ring {
    std::uint32_t producer = 0, consumer = 0, flags = 0;
    std::array<xdp_desc, 32> desc{};
    std::array<std::uint64_t, 32> addr{};
    template <class Ring>
    Ring view(bool descs, bool producer_side) {
        Ring r{};
        r.mask = 31;
        r.size = 32;
        r.producer = &producer;
        r.consumer = &consumer;
        r.flags = &flags;
        r.ring = descs ? static_cast<void*>(desc.data()) : static_cast<void*>(addr.data());
        r.cached_prod = producer;
        r.cached_cons = consumer + (producer_side ? 32u : 0u);
        return r;
    }
};

} // namespace

TEST_CASE("the AF_XDP plugin runs over rings the caller provides (attach_rings)") {
    auto made = npa::lnx::make_umem_pool(256);
    REQUIRE(made.ok());
    npa::lnx::umem_pool pool = std::move(*made);
    test_api api;
    api.pool = &pool;
    auto dev = npa::lnx::af_xdp_device::over("unused", pool, npa::lnx::xdp_mode::copy);
    npa::queue_config qc;
    qc.rx_ring_size = 32;
    qc.tx_ring_size = 32;
    shared_ring rx, tx, fq, cq;
    npa::lnx::xdp_queue_rings rings;
    rings.rx = rx.view<xsk_ring_cons>(true, false);
    rings.tx = tx.view<xsk_ring_prod>(true, true);
    rings.fq = fq.view<xsk_ring_prod>(false, true);
    rings.cq = cq.view<xsk_ring_cons>(false, false);

    af_xdp p;
    const npa::lnx::xdp_queue_rings two[2] = {rings, rings};
    const npa::status bad = p.attach_rings(api, dev, qc, two);
    CHECK(bad.code() == npa::errc::invalid_argument);
    CHECK_FALSE(p.attached());

    REQUIRE(p.attach_rings(api, dev, qc, std::span(&rings, 1)).ok());
    CHECK(fq.producer == 32); // the whole fill ring posted
    CHECK(pool.available() == pool.size() - 32);
    // The kernel takes the first fill address and answers with a 60-byte frame in it.
    const std::uint64_t a = fq.addr[0] + npa::lnx::umem_headroom;
    fq.consumer = 1;
    std::byte* frame = pool.backing().base() + a;
    for (std::uint32_t i = 0; i < 60; ++i) {
        frame[i] = std::byte(i);
    }
    rx.desc[0] = xdp_desc{a, 60, 0};
    rx.producer = 1;
    std::array<npa::buffer_ref, 8> out{};
    REQUIRE(p.rx_burst(0, out) == 1);
    CHECK(out[0].length() == 60);
    CHECK(out[0].data() == frame);
    CHECK(p.stats(0).rx_packets == 1);
    pool.free(out[0]);
    // The same address again is not a chunk on the fill ring any more: counted, not handed up.
    rx.desc[1] = xdp_desc{a, 60, 0};
    rx.producer = 2;
    CHECK(p.rx_burst(0, out) == 0);
    CHECK(p.stats(0).bad_completion == 1);
    p.detach();
    CHECK(pool.available() == pool.size());
}

NPA_LINUX_TEST_MAIN
