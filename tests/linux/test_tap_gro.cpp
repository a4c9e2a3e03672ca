// The TAP writer's TCP coalescing (npa/linux/tap_gro.hpp) and the TAP reader's TSO cutting
// (npa/linux/tap_tso.hpp).
//
// Crafted segments first (no privileges): which runs merge and which do not (flows, gaps,
// flags, options, lengths, ids, checksum state, IPv4 and IPv6), and that a merged frame
// cut again as the kernel's GSO cuts it gives back every original segment byte for byte.
// Then the kernel judges (root, a private network namespace): merged frames written to a
// real TAP are forwarded by the stack to a veth whose segmentation and checksum offloads
// are off, so the kernel itself cuts them and computes every checksum from what the
// merged frame's header and checksum field said; a packet socket on the far end reads
// the segments, which must be the originals (addresses, sequence numbers, payloads,
// flags) with correct IP and TCP checksums.
//
// Last, the other direction (npa/linux/tap_tso.hpp): TSO frames as the stack hands them to
// the TAP are cut into exactly the segments the stack would have sent, and headers that
// cannot be carried are refused and counted.
#include "test_kit.hpp"

#include <npa/linux/af_packet_rx.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/tap.hpp>
#include <npa/linux/tap_gro.hpp>
#include <npa/linux/tap_tso.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

using namespace npa::lnx;
using npa::csum_state;
using npa::offload_info;
using npa_test::sh;

namespace {

// ---- crafted segments ---------------------------------------------------------------------

/// A frame as the coalescer sees a shell buffer: bytes and offload state.
struct frame {
    std::vector<std::byte> bytes;
    offload_info o{};
    [[nodiscard]] std::byte* data() const noexcept { return const_cast<std::byte*>(bytes.data()); }
    [[nodiscard]] std::uint32_t length() const noexcept {
        return static_cast<std::uint32_t>(bytes.size());
    }
    [[nodiscard]] offload_info offload() const noexcept { return o; }
};

constexpr unsigned ack = 0x10, psh = 0x08;

struct seg_spec {
    bool v6 = false;
    std::uint32_t seq = 1000;
    std::uint32_t payload = 1448;
    unsigned flags = ack;
    std::uint16_t id = 100;
    bool df = true;
    std::uint16_t sport = 40000, dport = 5201;
    std::uint32_t ack_no = 77;
    std::uint16_t window = 500;
    std::vector<std::uint8_t> options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}; // NOP NOP TS
    std::uint8_t ttl = 64;
    std::array<std::uint8_t, 6> dst_mac{0x02, 0, 0, 0, 0, 1};
};

void put16(std::vector<std::byte>& f, std::size_t at, std::uint32_t v) {
    f[at] = static_cast<std::byte>((v >> 8) & 0xff);
    f[at + 1] = static_cast<std::byte>(v & 0xff);
}
void put32(std::vector<std::byte>& f, std::size_t at, std::uint32_t v) {
    put16(f, at, v >> 16);
    put16(f, at + 2, v & 0xffff);
}
std::uint32_t get16(const std::byte* p) { return csum_detail::load16(p); }

/// Payload byte `i` of the stream: what every segment carries at its sequence number.
std::byte stream_byte(std::uint32_t seq) { return static_cast<std::byte>((seq * 7 + 3) & 0xff); }

/// A TCP segment from 10.77.0.2 (fd77::2) to 10.78.0.2 (fd78::2) with correct checksums,
/// marked verified (csum_state::good) as a plugin hands it up.
frame make_seg(const seg_spec& s) {
    const std::uint32_t l3 = s.v6 ? 40u : 20u;
    const auto thl = static_cast<std::uint32_t>(20 + s.options.size());
    const std::uint32_t len = 14 + l3 + thl + s.payload;
    frame fr;
    std::vector<std::byte>& f = fr.bytes;
    f.assign(std::max<std::uint32_t>(len, 60), std::byte{0}); // short frames padded
    std::memcpy(f.data(), s.dst_mac.data(), 6);
    const std::uint8_t src[6] = {0x02, 0, 0, 0, 0, 2};
    std::memcpy(f.data() + 6, src, 6);
    put16(f, 12, s.v6 ? 0x86dd : 0x0800);
    const std::size_t ip = 14;
    if (s.v6) {
        put32(f, ip, 0x60012345); // version 6, flow label 0x12345
        put16(f, ip + 4, thl + s.payload);
        f[ip + 6] = std::byte{6};
        f[ip + 7] = std::byte{s.ttl};
        const std::uint8_t a[16] = {0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
        const std::uint8_t b[16] = {0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
        std::memcpy(f.data() + ip + 8, a, 16);
        std::memcpy(f.data() + ip + 24, b, 16);
    } else {
        f[ip] = std::byte{0x45};
        put16(f, ip + 2, l3 + thl + s.payload);
        put16(f, ip + 4, s.id);
        put16(f, ip + 6, s.df ? 0x4000 : 0);
        f[ip + 8] = std::byte{s.ttl};
        f[ip + 9] = std::byte{6};
        const std::uint8_t a[8] = {10, 77, 0, 2, 10, 78, 0, 2};
        std::memcpy(f.data() + ip + 12, a, 8);
        put16(f, ip + 10, static_cast<std::uint16_t>(~csum_fold(csum_add(0, f.data() + ip, 20))));
    }
    const std::size_t th = ip + l3;
    put16(f, th, s.sport);
    put16(f, th + 2, s.dport);
    put32(f, th + 4, s.seq);
    put32(f, th + 8, s.ack_no);
    f[th + 12] = static_cast<std::byte>((thl / 4) << 4);
    f[th + 13] = static_cast<std::byte>(s.flags);
    put16(f, th + 14, s.window);
    if (!s.options.empty()) {
        std::memcpy(f.data() + th + 20, s.options.data(), s.options.size());
    }
    for (std::uint32_t i = 0; i < s.payload; ++i) {
        f[th + thl + i] = stream_byte(s.seq + i);
    }
    l4_location l;
    REQUIRE(locate_l4(f.data(), len, l));
    put16(f, th + 16, csum_fold(l.pseudo));
    REQUIRE(finish_l4_csum(f.data(), l.end, l.start, 16, false));
    fr.o.csum = csum_state::good;
    return fr;
}

/// `n` in-order segments of one flow: payload `mss` each, the last `last` bytes (0: mss),
/// ids counting up, the last with PSH.
std::vector<frame> flow(seg_spec s, std::uint32_t n, std::uint32_t last = 0) {
    std::vector<frame> v;
    const std::uint32_t mss = s.payload;
    for (std::uint32_t i = 0; i < n; ++i) {
        s.payload = i + 1 == n && last != 0 ? last : mss;
        s.flags = i + 1 == n ? (ack | psh) : ack;
        v.push_back(make_seg(s));
        s.seq += s.payload;
        ++s.id;
    }
    return v;
}

/// The run lengths the coalescer makes of a burst.
std::vector<std::uint32_t> runs(const std::vector<frame>& b) {
    std::vector<std::uint32_t> r;
    gro_frame g;
    for (std::size_t i = 0; i < b.size();) {
        const std::uint32_t n = gro_build(std::span<const frame>(b), i, g);
        r.push_back(n);
        i += n;
    }
    return r;
}

/// The merged frame's bytes (without the virtio-net header).
std::vector<std::byte> flatten(const gro_frame& g) {
    std::vector<std::byte> out;
    for (std::uint32_t k = 1; k < g.iovcnt; ++k) {
        const auto* p = static_cast<const std::byte*>(g.iov[k].iov_base);
        out.insert(out.end(), p, p + g.iov[k].iov_len);
    }
    return out;
}

/// Checks a merged frame of the run b[0..n) and cuts it again as the kernel's GSO does
/// (packet_gso_segment follows tcp_gso_segment): every segment must come back as it was.
void check_merged(const std::vector<frame>& b, std::uint32_t n) {
    gro_frame g;
    REQUIRE(gro_build(std::span<const frame>(b), 0, g) == n);
    const std::vector<std::byte> m = flatten(g);
    l4_location l;
    REQUIRE(locate_l4(m.data(), static_cast<std::uint32_t>(m.size()), l));
    CHECK(l.end == m.size());
    CHECK(g.vnet.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM);
    const bool v6 = get16(m.data() + 12) == 0x86dd;
    CHECK(g.vnet.gso_type == (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4));
    CHECK(g.vnet.csum_start == l.start);
    CHECK(g.vnet.csum_offset == 16);
    const std::uint32_t hdr = l.start + (std::to_integer<std::uint32_t>(m[l.start + 12]) >> 4) * 4;
    CHECK(g.vnet.hdr_len == hdr);
    CHECK(g.vnet.gso_size == b[0].length() - hdr);
    // The checksum field holds the pseudo-header sum over the whole TCP length.
    CHECK(get16(m.data() + l.start + 16) == csum_fold(l.pseudo));
    if (!v6) {
        CHECK(csum_fold(csum_add(0, m.data() + 14, 20)) == 0xffff); // IPv4 header checksum
    }
    // Payloads are the shell's buffers, not copies.
    for (std::uint32_t k = 0; k < n; ++k) {
        CHECK(g.iov[2 + k].iov_base == b[k].data() + hdr);
    }
    detail::packet_wire_frame w;
    w.src = m.data();
    w.snap = static_cast<std::uint32_t>(m.size());
    for (std::uint32_t k = 0; k < n; ++k) {
        CAPTURE(k);
        std::vector<std::byte> seg(2048);
        std::uint32_t seg_len = 0;
        REQUIRE(detail::packet_gso_segment(w, g.vnet.gso_size, k, seg.data(), 2048, seg_len) == n);
        seg.resize(seg_len);
        std::vector<std::byte> orig = b[k].bytes;
        orig.resize(b[k].length() > seg_len ? seg_len : orig.size());
        CHECK(seg == orig);
    }
}

} // namespace

TEST_CASE("tap_gro: a flow's in-order segments merge into one frame (IPv4 and IPv6)") {
    for (const bool v6 : {false, true}) {
        CAPTURE(v6);
        seg_spec s;
        s.v6 = v6;
        const auto b = flow(s, 5, 700);
        CHECK(runs(b) == std::vector<std::uint32_t>{5});
        check_merged(b, 5);
        // Without options, and with a payload of one byte at the end.
        s.options.clear();
        const auto c = flow(s, 3, 1);
        CHECK(runs(c) == std::vector<std::uint32_t>{3});
        check_merged(c, 3);
    }
}

TEST_CASE("tap_gro: what does not merge goes alone") {
    seg_spec s;
    SUBCASE("a gap in the sequence numbers") {
        auto b = flow(s, 4);
        b.erase(b.begin() + 2);
        CHECK(runs(b) == std::vector<std::uint32_t>{2, 1});
    }
    SUBCASE("out of order") {
        auto b = flow(s, 4);
        std::swap(b[1], b[2]);
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1, 1});
    }
    SUBCASE("two flows interleaved, then one after the other") {
        seg_spec t = s;
        t.sport = 40001;
        t.seq = 5'000'000;
        const auto a = flow(s, 4), c = flow(t, 4);
        std::vector<frame> mixed;
        for (std::size_t i = 0; i < 4; ++i) {
            mixed.push_back(a[i]);
            mixed.push_back(c[i]);
        }
        CHECK(runs(mixed) == std::vector<std::uint32_t>(8, 1));
        std::vector<frame> after = a;
        after.insert(after.end(), c.begin(), c.end());
        CHECK(runs(after) == std::vector<std::uint32_t>{4, 4});
    }
    SUBCASE("IPv4 then IPv6, and another destination MAC") {
        seg_spec t = s;
        t.v6 = true;
        auto b = flow(s, 2);
        b[1] = make_seg([&] {
            seg_spec u = t;
            u.seq = s.seq + s.payload;
            return u;
        }());
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1});
        seg_spec u = s;
        u.dst_mac[5] = 9;
        u.seq += u.payload;
        u.id = static_cast<std::uint16_t>(u.id + 1);
        const std::vector<frame> c = {make_seg(s), make_seg(u)};
        CHECK(runs(c) == std::vector<std::uint32_t>{1, 1});
    }
    SUBCASE("flags other than ACK, and PSH before the end") {
        for (const unsigned f : {0x01u /*FIN*/, 0x02u, 0x04u, 0x20u /*URG*/, 0x40u, 0x80u}) {
            CAPTURE(f);
            auto b = flow(s, 3);
            seg_spec m = s;
            m.seq += m.payload;
            m.id = static_cast<std::uint16_t>(m.id + 1);
            m.flags = ack | f;
            b[1] = make_seg(m);
            CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1});
        }
        auto b = flow(s, 3);
        seg_spec m = s;
        m.flags = ack | psh;
        b[0] = make_seg(m);
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 2}); // PSH ends the run it is in
        seg_spec n = s;
        n.flags = 0; // not even ACK
        const std::vector<frame> c = {make_seg(n), flow(s, 1)[0]};
        CHECK(runs(c)[0] == 1);
    }
    SUBCASE("other options bytes, ACK number, window, TTL") {
        for (int what = 0; what < 4; ++what) {
            CAPTURE(what);
            auto b = flow(s, 3);
            seg_spec m = s;
            m.seq += m.payload;
            m.id = static_cast<std::uint16_t>(m.id + 1);
            if (what == 0)
                m.options[11] = 3; // another timestamp echo
            if (what == 1)
                m.ack_no += 1;
            if (what == 2)
                m.window += 1;
            if (what == 3)
                m.ttl = 63;
            b[1] = make_seg(m);
            CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1});
        }
    }
    SUBCASE("a short segment ends its run; a pure ACK does not merge") {
        auto b = flow(s, 2, 100);
        seg_spec short_seg = s;
        short_seg.seq += s.payload;
        short_seg.id = static_cast<std::uint16_t>(s.id + 1);
        short_seg.payload = 100; // no PSH: only its length ends the run
        b[1] = make_seg(short_seg);
        const auto more = flow(
            [&] {
                seg_spec t = s;
                t.seq = s.seq + s.payload + 100;
                t.id = static_cast<std::uint16_t>(s.id + 2);
                return t;
            }(),
            2);
        b.insert(b.end(), more.begin(), more.end());
        CHECK(runs(b) == std::vector<std::uint32_t>{2, 2});
        seg_spec p = s;
        p.payload = 0;
        const std::vector<frame> c = {make_seg(p), make_seg(p)};
        CHECK(runs(c) == std::vector<std::uint32_t>{1, 1});
    }
    SUBCASE("IPv4: an id that does not count up without DF; options; fragments") {
        s.df = false;
        auto b = flow(s, 3);
        CHECK(runs(b) == std::vector<std::uint32_t>{3});
        seg_spec m = s;
        m.seq += m.payload;
        m.id = 7;
        b[1] = make_seg(m);
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1});
        s.df = true; // with DF the id means nothing (RFC 6864)
        b = flow(s, 3);
        m = s;
        m.seq += m.payload;
        m.id = 7;
        b[1] = make_seg(m);
        CHECK(runs(b) == std::vector<std::uint32_t>{3});
        // IP options (IHL 6) and a fragment's MF bit: never merged.
        auto c = flow(s, 2);
        for (auto& f : c) {
            f.bytes[14] = std::byte{0x46};
        }
        CHECK(runs(c) == std::vector<std::uint32_t>{1, 1});
        auto d = flow(s, 2);
        for (auto& f : d) {
            f.bytes[20] = std::byte{0x20};
        }
        CHECK(runs(d) == std::vector<std::uint32_t>{1, 1});
    }
    SUBCASE("a checksum nobody verified") {
        auto b = flow(s, 3);
        b[1].o.csum = csum_state::unknown;
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1});
        b[1].o.csum = csum_state::bad;
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1, 1});
    }
    SUBCASE("a VLAN tag") {
        auto b = flow(s, 2);
        for (auto& f : b) {
            f.bytes.insert(f.bytes.begin() + 12,
                           {std::byte{0x81}, std::byte{0}, std::byte{0}, std::byte{5}});
        }
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1});
    }
    SUBCASE("a frame shorter than its IP length says") {
        auto b = flow(s, 2);
        b[1].bytes.resize(b[1].bytes.size() - 1);
        CHECK(runs(b) == std::vector<std::uint32_t>{1, 1});
    }
}

TEST_CASE("tap_gro: a merged frame stays within 64 KB") {
    for (const bool v6 : {false, true}) {
        CAPTURE(v6);
        seg_spec s;
        s.v6 = v6;
        s.options.clear();
        const auto b = flow(s, 60);
        // IPv4: 20 + 20 + k * 1448 <= 65535 for k <= 45; IPv6 counts the payload only.
        const std::uint32_t first = v6 ? 45u : 45u;
        const auto r = runs(b);
        REQUIRE(r.size() == 2);
        CHECK(r[0] == first);
        CHECK(r[1] == 60 - first);
        std::vector<frame> head(b.begin(), b.begin() + first);
        check_merged(head, first);
    }
}

// ---- the kernel judges --------------------------------------------------------------------

namespace {

/// Reads frames from a packet socket until `want` TCP segments to port 5201 arrived (or
/// 20 s passed: a bound that only ends a hung test; the kernel delivers them within the
/// TAP write, so a passing run returns at once however busy the machine is).
std::vector<std::vector<std::byte>> read_segments(int fd, std::size_t want) {
    std::vector<std::vector<std::byte>> got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < want && std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0)
            continue;
        std::vector<std::byte> buf(70000);
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0)
            continue;
        buf.resize(static_cast<std::size_t>(n));
        l4_location l;
        if (locate_l4(buf.data(), static_cast<std::uint32_t>(n), l) && !l.udp &&
            get16(buf.data() + l.start + 2) == 5201) {
            got.push_back(std::move(buf));
        }
    }
    return got;
}

} // namespace

TEST_CASE("tap_gro TAP: merged frames are accepted, forwarded and cut by the kernel into the "
          "original segments with correct checksums") {
    // The TAP (its stack's side 10.77.0.1, fd77::1) forwards to 10.78.0.2 / fd78::2 behind
    // va; va has no segmentation or checksum offload, so the kernel segments and sums in
    // software what the TAP took; vb's packet socket reads the result.
    const std::string tap_name = "grot" + std::to_string(::getpid() % 100000);
    tap_options to;
    auto t = tap_device::open(tap_name.c_str(), to);
    REQUIRE_MESSAGE(t.ok(), t.error().reason());
    tap_device tap = std::move(*t);
    REQUIRE(sh("ip link add va type veth peer name vb"));
    REQUIRE(sh("ethtool -K va tso off gso off tx off sg off"));
    REQUIRE(sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
               "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"));
    REQUIRE(sh("ip addr add 10.77.0.1/24 dev " + tap_name));
    REQUIRE(sh("ip addr add fd77::1/64 dev " + tap_name + " nodad"));
    REQUIRE(sh("ip link set " + tap_name + " up"));
    REQUIRE(sh("ip link set va up && ip link set vb up"));
    REQUIRE(sh("ip addr add 10.78.0.1/24 dev va && ip addr add fd78::1/64 dev va nodad"));
    REQUIRE(sh("ip neigh replace 10.78.0.2 lladdr 02:00:00:00:00:78 dev va"));
    REQUIRE(sh("ip neigh replace fd78::2 lladdr 02:00:00:00:00:78 dev va"));
    REQUIRE(sh("ip neigh replace 10.77.0.2 lladdr 02:00:00:00:00:02 dev " + tap_name));
    REQUIRE(sh("ip neigh replace fd77::2 lladdr 02:00:00:00:00:02 dev " + tap_name));
    auto mac = tap.mac();
    REQUIRE(mac.ok());

    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    REQUIRE(fd >= 0);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("vb"));
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) == 0);
    int rcvbuf = 16 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);

    for (const bool v6 : {false, true}) {
        CAPTURE(v6);
        seg_spec s;
        s.v6 = v6;
        s.payload = v6 ? 1428 : 1448; // the MSS of a 1500-byte MTU with timestamps
        std::memcpy(s.dst_mac.data(), mac->data(), 6);
        // A run of 20 (one frame), a lone SYN-less FIN segment that must pass alone, and a
        // run of 3 whose last segment is short.
        std::vector<frame> b = flow(s, 20);
        seg_spec fin = s;
        fin.seq = s.seq + 20 * s.payload;
        fin.id = static_cast<std::uint16_t>(s.id + 20);
        fin.payload = 10;
        fin.flags = ack | 0x01;
        b.push_back(make_seg(fin));
        seg_spec rest = s;
        rest.seq = fin.seq + 10;
        rest.id = static_cast<std::uint16_t>(fin.id + 1);
        const auto tail = flow(rest, 3, 333);
        b.insert(b.end(), tail.begin(), tail.end());
        REQUIRE(runs(b) == std::vector<std::uint32_t>{20, 1, 3});

        tap_gro_stats st;
        const tap_gro_stats before = tap.gro_stats();
        CHECK(tap_write_burst(tap.fd(0), std::span<const frame>(b), st) == b.size());
        CHECK(st.writes == 3);
        CHECK(st.merged_writes == 2);
        CHECK(st.merged_segments == 23);
        CHECK(st.refused == 0);
        CHECK(tap.gro_stats().writes == before.writes); // st is the caller's

        const auto got = read_segments(fd, b.size());
        REQUIRE(got.size() == b.size());
        for (std::size_t k = 0; k < got.size(); ++k) {
            CAPTURE(k);
            const std::vector<std::byte>& g = got[k];
            const std::vector<std::byte>& o = b[k].bytes;
            l4_location lg, lo;
            REQUIRE(locate_l4(g.data(), static_cast<std::uint32_t>(g.size()), lg));
            REQUIRE(locate_l4(o.data(), static_cast<std::uint32_t>(o.size()), lo));
            // The kernel's checksums, over what it cut from the merged frame.
            CHECK(csum_fold(lg.pseudo + csum_add(0, g.data() + lg.start, lg.end - lg.start)) ==
                  0xffff);
            if (!v6) {
                CHECK(csum_fold(csum_add(0, g.data() + 14, 20)) == 0xffff);
                CHECK(get16(g.data() + 14 + 4) == get16(o.data() + 14 + 4)); // ids count up
            }
            // The TCP header and payload as sent, checksum aside (the TTL moved by one).
            CHECK(lg.end - lg.start == lo.end - lo.start);
            CHECK(std::memcmp(g.data() + lg.start, o.data() + lo.start, 16) == 0);
            CHECK(std::memcmp(g.data() + lg.start + 18, o.data() + lo.start + 18,
                              lo.end - lo.start - 18) == 0);
            CHECK(get16(g.data() + lg.start + 16) == get16(o.data() + lo.start + 16));
        }
    }
    ::close(fd);
    sh("ip link del va");
}

// ---- the TAP reader's segmentation (npa/linux/tap_tso.hpp) ---------------------------------

namespace {

/// Shell-like buffers of 2 KB for the segmenter to fill.
struct test_buffers {
    std::vector<npa::packet_buffer> hdr;
    std::vector<std::vector<std::byte>> mem;
    explicit test_buffers(std::size_t n) : hdr(n), mem(n, std::vector<std::byte>(2048)) {
        for (std::size_t i = 0; i < n; ++i) {
            hdr[i].buf_addr = mem[i].data();
            hdr[i].buf_len = 2048;
        }
    }
    npa::buffer_ref operator[](std::size_t i) { return npa::buffer_ref(&hdr[i]); }
};

/// A TSO frame as the stack hands it to a TAP with TUN_F_TSO4/6: one TCP frame of `payload`
/// bytes (headers of the first segment, the IP length of the whole), its checksum field the
/// pseudo-header sum, and the virtio-net header that asks for segments of `mss`.
std::vector<std::byte> tso_frame(seg_spec s, std::uint32_t payload, std::uint32_t mss,
                                 virtio_net_hdr& h) {
    s.payload = payload;
    std::vector<std::byte> f = make_seg(s).bytes;
    l4_location l;
    REQUIRE(locate_l4(f.data(), static_cast<std::uint32_t>(f.size()), l));
    put16(f, l.start + 16, csum_fold(l.pseudo));
    h = virtio_net_hdr{};
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = s.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    h.hdr_len = static_cast<std::uint16_t>(l.start + 20 + s.options.size());
    h.gso_size = static_cast<std::uint16_t>(mss);
    h.csum_start = static_cast<std::uint16_t>(l.start);
    h.csum_offset = 16;
    return f;
}

/// Takes f into a scratch and hands out every segment, at most `per_call` per round (the
/// shell's free buffers), as the daemon's loop does.
std::vector<std::vector<std::byte>> cut(tap_gso_scratch& sc, const std::vector<std::byte>& f,
                                        const virtio_net_hdr& h, std::uint32_t per_call,
                                        std::vector<offload_info>* offs = nullptr) {
    std::memcpy(sc.data(), f.data(), f.size());
    std::vector<std::vector<std::byte>> out;
    if (!sc.take(h, static_cast<std::uint32_t>(f.size()), 2048)) {
        return out;
    }
    test_buffers bufs(per_call);
    while (sc.holding()) {
        for (std::uint32_t i = 0; i < per_call && sc.holding(); ++i) {
            sc.emit(bufs[i]);
            const auto* p = bufs[i].data();
            out.emplace_back(p, p + bufs[i].length());
            if (offs != nullptr) {
                offs->push_back(bufs[i].offload());
            }
        }
    }
    return out;
}

} // namespace

TEST_CASE("tap_tso: a TSO frame is cut into the segments the stack would have sent "
          "(IPv4 and IPv6)") {
    constexpr unsigned fin = 0x01, cwr = 0x80;
    for (const bool v6 : {false, true}) {
        for (const std::uint32_t last : {0u, 1u, 700u}) {
            CAPTURE(v6);
            CAPTURE(last);
            seg_spec s;
            s.v6 = v6;
            s.seq = 0xfffff000; // the sequence numbers wrap inside the frame
            s.id = 0xfffe;      // and so does the IPv4 id
            s.flags = ack | psh | fin | cwr;
            const std::uint32_t mss = 1448, n = 44;
            const std::uint32_t total = (n - 1) * mss + (last != 0 ? last : mss);
            virtio_net_hdr h{};
            const std::vector<std::byte> f = tso_frame(s, total, mss, h);
            tap_gso_scratch sc;
            std::vector<offload_info> offs;
            const auto segs = cut(sc, f, h, 7, &offs); // fewer buffers than segments
            REQUIRE(segs.size() == n);
            // What the kernel's GSO makes: the same headers, each segment its own length,
            // sequence number and id; PSH and FIN only on the last, CWR only on the first.
            seg_spec e = s;
            for (std::uint32_t k = 0; k < n; ++k) {
                CAPTURE(k);
                e.payload = k + 1 == n && last != 0 ? last : mss;
                e.flags = ack | (k == 0 ? cwr : 0u) | (k + 1 == n ? (psh | fin) : 0u);
                std::vector<std::byte> want = make_seg(e).bytes;
                want.resize(std::min<std::size_t>(want.size(), segs[k].size()));
                CHECK(segs[k] == want);
                std::vector<std::byte> got = segs[k];
                CHECK(check_rx_csum(got.data(), static_cast<std::uint32_t>(got.size())) ==
                      csum_state::good);
                CHECK(got == segs[k]); // complete already: nothing was left to finish
                CHECK((offs[k].flags & npa::ol::tx_l4_csum) == 0);
                CHECK((offs[k].flags & npa::ol::tx_tso) == 0);
                e.seq += e.payload;
                e.id = static_cast<std::uint16_t>(e.id + 1);
            }
            CHECK(sc.stats().gso == 1);
            CHECK(sc.stats().segments == n);
            CHECK(sc.stats().bad_vnet == 0);
        }
    }
}

TEST_CASE("tap_tso: a frame without segmentation goes whole, its checksum left to finish") {
    for (const bool v6 : {false, true}) {
        CAPTURE(v6);
        seg_spec s;
        s.v6 = v6;
        virtio_net_hdr h{};
        const std::vector<std::byte> f = tso_frame(s, 1000, 1448, h);
        tap_gso_scratch sc;
        // One segment's worth with a GSO header, then the same without one.
        for (const bool gso : {true, false}) {
            CAPTURE(gso);
            virtio_net_hdr hh = h;
            if (!gso) {
                hh.gso_type = VIRTIO_NET_HDR_GSO_NONE;
                hh.gso_size = 0;
            }
            std::vector<offload_info> offs;
            const auto segs = cut(sc, f, hh, 4, &offs);
            REQUIRE(segs.size() == 1);
            CHECK(segs[0] == f);
            CHECK((offs[0].flags & npa::ol::tx_l4_csum) != 0);
            CHECK((offs[0].flags & npa::ol::tx_tso) == 0);
        }
        CHECK(sc.stats().frames == 2);
        CHECK(sc.stats().gso == 0);
    }
}

TEST_CASE("tap_tso: a header that cannot be carried drops the frame, counted") {
    seg_spec s;
    virtio_net_hdr h{};
    const std::vector<std::byte> f = tso_frame(s, 10 * 1448, 1448, h);
    const auto refused = [&](virtio_net_hdr bad, std::uint32_t len) {
        tap_gso_scratch sc;
        std::memcpy(sc.data(), f.data(), f.size());
        const bool taken = sc.take(bad, len, 2048);
        CHECK(!sc.holding());
        CHECK(sc.stats().bad_vnet + sc.stats().too_long == 1);
        return !taken;
    };
    const auto len = static_cast<std::uint32_t>(f.size());
    virtio_net_hdr b = h;
    b.gso_type = VIRTIO_NET_HDR_GSO_UDP; // UFO: not turned on, not carried
    CHECK(refused(b, len));
    b = h;
    b.gso_size = 0;
    CHECK(refused(b, len));
    b = h;
    b.flags = 0; // segmentation without a checksum request
    CHECK(refused(b, len));
    b = h;
    b.gso_size = 2000; // segments larger than a buffer
    CHECK(refused(b, len));
    b = h;
    b.csum_start = static_cast<std::uint16_t>(len); // beyond the frame
    CHECK(refused(b, len));
    b = h;
    b.gso_type = VIRTIO_NET_HDR_GSO_NONE; // 14 KB without segmentation: larger than a buffer
    b.gso_size = 0;
    CHECK(refused(b, len));
    // The same frame with its header intact is cut.
    tap_gso_scratch sc;
    CHECK(cut(sc, f, h, 16).size() == 10);
}

int main(int argc, char** argv) {
    doctest::Context ctx(argc, argv);
    if (const std::string why = npa_test::why_not_privileged(); !why.empty()) {
        std::printf("SKIPPED the TAP case: %s\n", why.c_str());
        ctx.addFilter("test-case-exclude", "tap_gro TAP*");
    } else if (const std::string why2 = npa_test::enter_private_netns(); !why2.empty()) {
        std::printf("FAILED: running as root, but %s\n", why2.c_str());
        return 1;
    }
    return ctx.run();
}
