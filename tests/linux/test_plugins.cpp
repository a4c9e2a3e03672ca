// Linux plugins over a veth pair in a private network namespace: conformance to
// npa::plugin, RX and TX of real frames through the kernel, order, buffer accounting
// (nothing lost on detach), bad input refused with a reason, the XDP program removed.
#include "test_kit.hpp"

#include <npa/linux/af_packet.hpp>
#include <npa/linux/af_xdp.hpp>
#include <npa/linux/rx_whole_gate.hpp>
#include <npa/linux/virtio_net_defs.hpp>
#include <npa/shell.hpp>

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

namespace {

// A TCP frame of `payload` bytes as the peer's TSO would hand it to veth: one frame,
// GSO metadata (segment size `mss`) in a virtio_net_hdr, the TCP checksum left to finish.
// Sent on a packet socket with PACKET_VNET_HDR, so it crosses the veth pair in one piece.
bool send_gso_tcp(const std::string& ifname, bool v6, std::uint32_t payload, std::uint16_t mss) {
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || ::setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
        return false;
    }
    const std::uint32_t l3 = v6 ? 40 : 20, hdr = 14 + l3 + 20;
    std::vector<std::uint8_t> f(sizeof(npa::lnx::virtio_net_hdr) + hdr + payload);
    auto* vh = reinterpret_cast<npa::lnx::virtio_net_hdr*>(f.data());
    vh->flags = npa::lnx::VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh->gso_type = v6 ? npa::lnx::VIRTIO_NET_HDR_GSO_TCPV6 : npa::lnx::VIRTIO_NET_HDR_GSO_TCPV4;
    vh->hdr_len = static_cast<std::uint16_t>(hdr);
    vh->gso_size = mss;
    vh->csum_start = static_cast<std::uint16_t>(14 + l3);
    vh->csum_offset = 16;
    std::uint8_t* e = f.data() + sizeof(npa::lnx::virtio_net_hdr);
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x0a}, src[6] = {0x02, 0, 0, 0, 0, 0x0b};
    std::memcpy(e, dst, 6);
    std::memcpy(e + 6, src, 6);
    e[12] = v6 ? 0x86 : 0x08;
    e[13] = v6 ? 0xdd : 0x00;
    std::uint8_t* ip = e + 14;
    const std::uint32_t l4 = 20 + payload;
    if (v6) {
        ip[0] = 0x60;
        ip[4] = static_cast<std::uint8_t>(l4 >> 8);
        ip[5] = static_cast<std::uint8_t>(l4);
        ip[6] = 6;
        ip[7] = 64;
        ip[8] = 0xfd;
        ip[23] = 1;
        ip[24] = 0xfd;
        ip[39] = 2;
    } else {
        const std::uint8_t h[20] = {0x45,
                                    0,
                                    static_cast<std::uint8_t>((20 + l4) >> 8),
                                    static_cast<std::uint8_t>(20 + l4),
                                    0x12,
                                    0x34,
                                    0x40,
                                    0,
                                    64,
                                    6,
                                    0,
                                    0,
                                    10,
                                    0,
                                    0,
                                    1,
                                    10,
                                    0,
                                    0,
                                    2};
        std::memcpy(ip, h, 20);
        const std::uint16_t c = static_cast<std::uint16_t>(~npa::lnx::csum_fold(
            npa::lnx::csum_add(0, reinterpret_cast<const std::byte*>(ip), 20)));
        ip[10] = static_cast<std::uint8_t>(c >> 8);
        ip[11] = static_cast<std::uint8_t>(c);
    }
    std::uint8_t* th = ip + l3;
    const std::uint8_t t[20] = {0x30, 0x39, 0x14, 0x51, 0xff, 0xff, 0xf0,
                                0x00, 0,    0,    0,    1,    0x50, 0x19 /* FIN PSH ACK */,
                                0xff, 0xff};
    std::memcpy(th, t, 20);
    for (std::uint32_t i = 0; i < payload; ++i) {
        th[20 + i] = static_cast<std::uint8_t>(i * 7 + i / 251);
    }
    // The pseudo-header sum, as a stack offloading the checksum leaves it.
    std::uint64_t ps =
        npa::lnx::csum_add(0, reinterpret_cast<const std::byte*>(ip + (v6 ? 8 : 12)), v6 ? 32 : 8) +
        6 + l4;
    const std::uint16_t pc = npa::lnx::csum_fold(ps);
    th[16] = static_cast<std::uint8_t>(pc >> 8);
    th[17] = static_cast<std::uint8_t>(pc);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    sll.sll_protocol = htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
    const bool ok = ::sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&sll),
                             sizeof sll) == static_cast<ssize_t>(f.size());
    ::close(fd);
    return ok;
}

bool sh_mtu(const std::string& ifname, int mtu) {
    return npa_test::sh("ip link set " + ifname + " mtu " + std::to_string(mtu));
}

std::uint16_t be16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 |
                                      std::to_integer<unsigned>(p[1]));
}

} // namespace

TEST_CASE("the AF_PACKET plugin cuts a TCP frame larger than a buffer (TSO, GRO) into "
          "segments instead of dropping it") {
    bool v6 = false;
    SUBCASE("IPv4") { v6 = false; }
    SUBCASE("IPv6") { v6 = true; }
    CAPTURE(v6);
    fixture f;
    af_packet p;
    auto dev = npa::lnx::af_packet_device::named("npt0");
    npa::queue_config qc;
    REQUIRE(p.attach(f.api, dev, qc).ok());
    constexpr std::uint32_t payload = 20000;
    constexpr std::uint16_t mss = 1400;
    constexpr std::uint32_t count = (payload + mss - 1) / mss;
    REQUIRE(send_gso_tcp("npt1", v6, payload, mss));
    auto got = receive(p, count);
    REQUIRE(got.size() == count);
    const std::uint32_t l3 = v6 ? 40 : 20, l4_at = 14 + l3;
    for (std::uint32_t i = 0; i < count; ++i) {
        CAPTURE(i);
        const std::byte* d = got[i].data();
        const std::uint32_t n = std::min<std::uint32_t>(mss, payload - i * mss);
        REQUIRE(got[i].length() == l4_at + 20 + n);
        CHECK(got[i].offload().csum == npa::csum_state::good);
        const std::byte* ip = d + 14;
        if (v6) {
            CHECK(be16(ip + 4) == 20 + n);
        } else {
            CHECK(be16(ip + 2) == 20 + 20 + n);
            CHECK(be16(ip + 4) == 0x1234 + i);
            CHECK(npa::lnx::csum_fold(npa::lnx::csum_add(0, ip, 20)) == 0xffff);
        }
        const std::byte* th = d + l4_at;
        const std::uint32_t seq = std::uint32_t{be16(th + 4)} << 16 | be16(th + 6);
        CHECK(seq == 0xfffff000u + i * mss); // wraps past 2^32 on the way
        const unsigned flags = std::to_integer<unsigned>(th[13]);
        CHECK((flags & 0x09) == (i + 1 == count ? 0x09u : 0u)); // FIN, PSH: last only
        CHECK((flags & 0x10) != 0);
        // The TCP checksum is right: pseudo-header plus segment folds to all ones.
        const std::uint64_t ps =
            npa::lnx::csum_add(0, ip + (v6 ? 8 : 12), v6 ? 32 : 8) + 6 + 20 + n;
        CHECK(npa::lnx::csum_fold(npa::lnx::csum_add(ps, th, 20 + n)) == 0xffff);
        bool same = true;
        for (std::uint32_t k = 0; k < n; ++k) {
            const std::uint32_t j = i * mss + k;
            same = same && std::to_integer<std::uint8_t>(th[20 + k]) ==
                               static_cast<std::uint8_t>(j * 7 + j / 251);
        }
        CHECK(same);
    }
    CHECK(p.stats(0).rx_dropped == 0);
    f.pool.free_burst(got);
    p.detach();
    CHECK(f.pool.available() == f.pool.size());
}

namespace {

// A small frame (local experimental EtherType, `marker` in its first payload byte) on a
// plain packet socket, to see what overtakes what.
bool send_marker(const std::string& ifname, std::uint8_t marker) {
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    std::array<std::uint8_t, 60> f{};
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x0a}, src[6] = {0x02, 0, 0, 0, 0, 0x0b};
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    f[14] = marker;
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    const bool ok = ::sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&sll),
                             sizeof sll) == static_cast<ssize_t>(f.size());
    ::close(fd);
    return ok;
}

} // namespace

TEST_CASE("the AF_PACKET plugin in whole mode hands a large TCP frame over whole, with its "
          "GSO header, in order") {
    bool v6 = false;
    SUBCASE("IPv4") { v6 = false; }
    SUBCASE("IPv6") { v6 = true; }
    CAPTURE(v6);
    fixture f;
    af_packet p;
    p.set_rx_whole(true);
    auto dev = npa::lnx::af_packet_device::named("npt0");
    npa::queue_config qc;
    REQUIRE(p.attach(f.api, dev, qc).ok());
    constexpr std::uint32_t payload = 20000;
    constexpr std::uint16_t mss = 1400;
    const std::uint32_t l3 = v6 ? 40 : 20, hdr = 14 + l3 + 20;
    // Twice: taken whole the first time; refused by the writer the second, so the next
    // burst cuts it into segments as without whole mode.
    REQUIRE(send_marker("npt1", 1));
    REQUIRE(send_gso_tcp("npt1", v6, payload, mss));
    REQUIRE(send_marker("npt1", 2));
    REQUIRE(send_gso_tcp("npt1", v6, payload, mss));
    REQUIRE(send_marker("npt1", 3));
    // The burst ends at the large frame: only the first marker, then nothing overtakes it.
    auto first = receive(p, 1);
    REQUIRE(first.size() == 1);
    CHECK(std::to_integer<unsigned>(first[0].data()[14]) == 1);
    std::array<npa::buffer_ref, 32> out{};
    // Polls until the large frame waits (the kernel may hand its block over later than
    // the marker's); no burst may deliver anything meanwhile.
    const auto wait_whole = [&](auto&& write) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < end) {
            REQUIRE(p.rx_burst(0, out) == 0);
            if (p.rx_whole(0, write)) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        return false;
    };
    std::vector<std::byte> whole;
    npa::lnx::virtio_net_hdr vh{};
    std::uint32_t segments = 0;
    REQUIRE(wait_whole([&](std::span<const iovec> iov, std::uint32_t n) {
        REQUIRE(iov.size() >= 2);
        REQUIRE(iov[0].iov_len == sizeof vh);
        std::memcpy(&vh, iov[0].iov_base, sizeof vh);
        for (std::size_t i = 1; i < iov.size(); ++i) {
            const auto* b = static_cast<const std::byte*>(iov[i].iov_base);
            whole.insert(whole.end(), b, b + iov[i].iov_len);
        }
        segments = n;
        return true;
    }));
    CHECK(vh.flags == npa::lnx::VIRTIO_NET_HDR_F_NEEDS_CSUM);
    CHECK(vh.gso_type ==
          (v6 ? npa::lnx::VIRTIO_NET_HDR_GSO_TCPV6 : npa::lnx::VIRTIO_NET_HDR_GSO_TCPV4));
    CHECK(vh.gso_size == mss);
    CHECK(vh.csum_start == 14 + l3);
    CHECK(vh.csum_offset == 16);
    CHECK(vh.hdr_len == hdr);
    CHECK(segments == (payload + mss - 1) / mss);
    REQUIRE(whole.size() == hdr + payload); // larger than any buffer, in one piece
    bool same = true;
    for (std::uint32_t i = 0; i < payload; ++i) {
        same = same && std::to_integer<std::uint8_t>(whole[hdr + i]) ==
                           static_cast<std::uint8_t>(i * 7 + i / 251);
    }
    CHECK(same);
    CHECK(p.rx_whole_stats().frames == 1);
    CHECK(p.rx_whole_stats().segments == segments);
    // Nothing waits now: rx_whole says so, and the burst goes on to the second marker.
    CHECK_FALSE(p.rx_whole(0, [](std::span<const iovec>, std::uint32_t) { return true; }));
    auto second = receive(p, 1);
    REQUIRE(second.size() == 1);
    CHECK(std::to_integer<unsigned>(second[0].data()[14]) == 2);
    // The second large frame: the writer refuses it, the next bursts cut it, in order.
    REQUIRE(wait_whole([](std::span<const iovec>, std::uint32_t) { return false; }));
    CHECK(p.rx_whole_stats().refused == 1);
    auto rest = receive(p, segments + 1);
    REQUIRE(rest.size() == segments + 1);
    for (std::uint32_t i = 0; i < segments; ++i) {
        CHECK(rest[i].length() == hdr + std::min<std::uint32_t>(mss, payload - i * mss));
    }
    CHECK(std::to_integer<unsigned>(rest[segments].data()[14]) == 3);
    CHECK(p.rx_whole_stats().frames == 1);
    CHECK(p.stats(0).rx_dropped == 0);
    CHECK(p.stats(0).rx_packets == 3 + 2 * std::uint64_t{segments});
    f.pool.free_burst(first);
    f.pool.free_burst(second);
    f.pool.free_burst(rest);
    p.detach();
    CHECK(f.pool.available() == f.pool.size());
}

TEST_CASE("the AF_XDP plugin counts a frame larger than a UMEM chunk instead of losing it "
          "silently") {
    fixture f;
    // Room on the wire for a frame no chunk holds (the data area is 2048 - 256 bytes).
    REQUIRE(sh_mtu("npt0", 3000));
    REQUIRE(sh_mtu("npt1", 3000));
    af_xdp p;
    auto dev = device_for<af_xdp>(f, "npt0");
    npa::queue_config qc;
    const npa::status st = p.attach(f.api, dev, qc);
    REQUIRE_MESSAGE(st.ok(), st.reason());
    npa_test::raw_socket peer("npt1");
    REQUIRE(peer.send(npa_test::make_frame(1, 200)));
    REQUIRE(peer.send(npa_test::make_frame(2, 2800)));
    REQUIRE(peer.send(npa_test::make_frame(3, 200)));
    auto got = receive(p, 2);
    std::vector<std::uint32_t> seqs;
    for (auto b : got) {
        const auto* d = reinterpret_cast<const std::uint8_t*>(b.data());
        if (b.length() >= 18 && d[12] == 0x88 && d[13] == 0xb5)
            seqs.push_back(npa_test::frame_seq(d));
    }
    CHECK(seqs == std::vector<std::uint32_t>{1, 3});
    CHECK(p.stats(0).rx_dropped >= 1);
    f.pool.free_burst(got);
    p.detach();
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

namespace {

struct gate_env {
    using pool_type = npa::lnx::umem_pool;
    static std::uint64_t now_ns() noexcept {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
    }
};
using gate_shell = npa::shell<gate_env, npa::lnx::af_packet_plugin>;

// A veth takes any MAC and RX mode: no authority behind either path.
struct open_channel {
    npa::status submit(const npa::control_request&) { return {}; }
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
};

} // namespace

TEST_CASE("whole mode follows the shell (rx_whole_gate): a large frame waiting on the old path "
          "during a switch is cut and delivered before the new path's frames") {
    fixture f; // path A on npt0, fed from npt1
    npa_test::veth_pair second{"npt2", "npt3"}; // path B on npt2, fed from npt3
    auto dev_a = npa::lnx::af_packet_device::named("npt0");
    auto dev_b = npa::lnx::af_packet_device::named("npt2");
    npa::lnx::umem_pool* pools[] = {&f.pool};
    npa::shell_config sc;
    sc.queues.queues = 1;
    sc.policy.min_dwell_ns = 0;
    sc.policy.rx_quiet_ns = 200'000'000;      // a block the kernel has not handed over yet
    sc.policy.drain_timeout_ns = 2'000'000'000;
    sc.inline_switch = false;
    gate_env env;
    gate_shell sh(env, pools, sc);
    REQUIRE(sh.init_status());
    open_channel ch_a, ch_b;
    const npa::path_id a = sh.add_path<npa::lnx::af_packet_plugin>(dev_a, npa::control_link::to(ch_a));
    const npa::path_id b = sh.add_path<npa::lnx::af_packet_plugin>(dev_b, npa::control_link::to(ch_b));
    REQUIRE(a != gate_shell::no_path);
    REQUIRE(b != gate_shell::no_path);
    const std::array<npa::path_id, 2> paths{a, b};
    npa::lnx::rx_whole_gate gate(true);

    // What reached the "TAP", in order: 'm' + marker, 't' a TCP segment, 'W' a whole frame.
    std::vector<std::pair<char, unsigned>> seen;
    auto pass = [&] { // one RX pass as npa-linkd makes it
        (void)gate.sync(sh, 1, paths);
        std::array<npa::buffer_ref, 32> rx{};
        const std::uint16_t n = sh.rx_burst(0, rx);
        for (std::uint16_t i = 0; i < n; ++i) {
            const std::byte* d = rx[i].data();
            const bool marker = std::to_integer<unsigned>(d[12]) == 0x88;
            seen.emplace_back(marker ? 'm' : 't', marker ? std::to_integer<unsigned>(d[14]) : 0u);
        }
        sh.free(0, std::span<const npa::buffer_ref>(rx.data(), n));
        for (const npa::path_id p : paths) {
            sh.with_plugin(p, [&](auto& pl) {
                (void)pl.rx_whole(0, [&](std::span<const iovec>, std::uint32_t) {
                    seen.emplace_back('W', 0u);
                    return true;
                });
            });
        }
        (void)sh.poll(0);
        (void)sh.service();
        if (n == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    };
    auto pump_until = [&](auto&& done) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!done() && std::chrono::steady_clock::now() < end) {
            pass();
        }
        return done();
    };
    auto count = [&](char k, unsigned v) {
        return std::count(seen.begin(), seen.end(), std::pair<char, unsigned>{k, v});
    };

    REQUIRE(sh.request_switch(a, npa::switch_reason::boot));
    REQUIRE(pump_until([&] { return !sh.switching(); }));
    constexpr std::uint32_t payload = 20000;
    constexpr std::uint16_t mss = 1400;
    constexpr std::uint32_t segments = (payload + mss - 1) / mss;
    // Steady on A: a large frame goes up whole.
    REQUIRE(send_gso_tcp("npt1", false, payload, mss));
    REQUIRE(pump_until([&] { return count('W', 0) == 1; }));
    CHECK(gate.on());

    // A receives a marker, a large frame and a marker; then the switch to B, and B's frame.
    seen.clear();
    REQUIRE(send_marker("npt1", 1));
    REQUIRE(send_gso_tcp("npt1", false, payload, mss));
    REQUIRE(send_marker("npt1", 2));
    REQUIRE(sh.request_switch(b, npa::switch_reason::operator_request));
    REQUIRE(send_marker("npt3", 9));
    REQUIRE(pump_until([&] { return !sh.switching() && count('m', 9) == 1; }));
    CHECK(sh.active_path() == b);
    CHECK(gate.closed() == 1);
    // Nothing went past the shell while it switched: the large frame was cut, in its
    // place, and B's marker came after everything A had.
    const std::vector<std::pair<char, unsigned>> expected = [&] {
        std::vector<std::pair<char, unsigned>> e{{'m', 1}};
        e.insert(e.end(), segments, {'t', 0});
        e.emplace_back('m', 2);
        e.emplace_back('m', 9);
        return e;
    }();
    auto render = [](const std::vector<std::pair<char, unsigned>>& v) {
        std::string r;
        for (const auto& [k, m] : v) {
            r += k == 'm' ? std::to_string(m) : std::string(1, k);
            r += ' ';
        }
        return r;
    };
    CHECK_MESSAGE(seen == expected, "seen: " << render(seen) << "expected: " << render(expected));
    CHECK(sh.history().recent(0).tx_lost == 0);
    // Steady on B: whole again.
    REQUIRE(pump_until([&] { return gate.on(); }));
    seen.clear();
    REQUIRE(send_gso_tcp("npt3", false, payload, mss));
    REQUIRE(pump_until([&] { return count('W', 0) == 1; }));
    sh.stop();
    CHECK(sh.audit().ok());
}

NPA_LINUX_TEST_MAIN
