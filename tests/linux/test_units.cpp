// Linux adapter pieces that need no privileges: configuration and policy parsing, the
// control protocol, the virtio-net header mapping, rtnetlink message parsing and the
// MAC announcement frame.
#include <doctest/doctest.h>

#include "config.hpp"

#include "control_protocol.hpp"
#include <unistd.h>

#include <npa/linux/announce.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/rtnetlink.hpp>
#include <npa/linux/tap.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace npa::lnx;
using namespace npa::lnx::tools;

namespace {

bool parse(std::vector<const char*> args, daemon_config& cfg, std::string& err) {
    args.insert(args.begin(), "npa-linkd");
    return parse_args(static_cast<int>(args.size()), args.data(), cfg, err);
}

std::string temp_file(const char* text) {
    char path[] = "/tmp/npa-units-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    std::FILE* f = ::fdopen(fd, "w");
    std::fputs(text, f);
    std::fclose(f);
    return path;
}

} // namespace

TEST_CASE("flags: lowers in order with their plugins and modes") {
    daemon_config cfg;
    std::string err;
    REQUIRE(parse({"--tap", "npa7", "--lower", "eth1:af_xdp:zero-copy", "--lower=eth2:af_packet",
                   "--mac", "02:00:00:00:00:07", "--queues", "2", "--no-failback"},
                  cfg, err));
    CHECK(cfg.tap == "npa7");
    REQUIRE(cfg.lowers.size() == 2);
    CHECK(cfg.lowers[0].ifname == "eth1");
    CHECK(cfg.lowers[0].kind == plugin_kind::af_xdp);
    CHECK(cfg.lowers[0].mode == xdp_mode::zero_copy);
    CHECK(cfg.lowers[1].kind == plugin_kind::af_packet);
    CHECK(cfg.has_mac);
    CHECK(format_mac(cfg.mac) == "02:00:00:00:00:07");
    CHECK(cfg.queues == 2);
    CHECK_FALSE(cfg.failback);
}

TEST_CASE("flags and config: PCI functions as lowers, by address and device kind") {
    daemon_config cfg;
    std::string err;
    REQUIRE_MESSAGE(parse({"--lower", "0000:00:03.0:pci:vmxnet3", "--lower=01:10.0:pci:igbvf",
                           "--lower", "eth2:af_packet"},
                          cfg, err),
                    err);
    REQUIRE(cfg.lowers.size() == 3);
    CHECK(cfg.lowers[0].ifname == "0000:00:03.0");
    CHECK(cfg.lowers[0].kind == plugin_kind::pci);
    CHECK(cfg.lowers[0].device == pci_device::vmxnet3);
    CHECK(cfg.lowers[0].plugin_name() == "pci vmxnet3");
    CHECK(cfg.lowers[1].ifname == "0000:01:10.0"); // the short form gets domain 0
    CHECK(cfg.lowers[1].device == pci_device::igbvf);
    CHECK(cfg.lowers[1].plugin_name() == "pci igbvf");
    CHECK(cfg.lowers[2].kind == plugin_kind::af_packet);

    daemon_config fc;
    const std::string path =
        temp_file("lower = 0000:00:0A.0 pci vmxnet3\nlower = 0000:01:10.2 pci igbvf\n");
    REQUIRE_MESSAGE(parse({"--config", path.c_str()}, fc, err), err);
    ::unlink(path.c_str());
    REQUIRE(fc.lowers.size() == 2);
    CHECK(fc.lowers[0].ifname == "0000:00:0a.0"); // as sysfs names it
    CHECK(fc.lowers[1].device == pci_device::igbvf);
}

TEST_CASE("flags: each mistake is refused with a message that names it") {
    struct bad {
        std::vector<const char*> args;
        const char* says;
    };
    const std::vector<bad> cases = {
        {{"--frob"}, "unknown flag '--frob'"},
        {{"stray"}, "unexpected argument 'stray'"},
        {{"--lower"}, "--lower needs a value"},
        {{"--lower", "eth1"}, "a lower is"},
        {{"--lower", "eth1:af_dpdk"}, "unknown plugin 'af_dpdk'"},
        {{"--lower", "eth1:af_xdp:fast"}, "unknown AF_XDP mode 'fast'"},
        {{"--lower", "averyveryverylongname:af_xdp"}, "not a valid interface name"},
        {{"--lower", "eth1:af_xdp", "--mac", "zz:00:00:00:00:01"}, "not a unicast MAC"},
        {{"--lower", "eth1:af_xdp", "--queues", "0"}, "queues must be 1..8"},
        {{"--lower", "eth1:af_xdp", "--allow-vlan", "0"}, "bad VLAN id"},
        {{"--lower", "eth1:af_xdp", "--allow-vlan", "30-20"}, "bad VLAN id or range '30-20'"},
        {{"--lower", "eth1:af_xdp", "--mtu-max", "70000"}, "mtu_max must be 68..65535"},
        {{"--lower", "a:af_xdp", "--lower", "b:af_xdp", "--lower", "c:af_xdp"}, "at most 2 lowers"},
        {{"--tap", "eth1", "--lower", "eth1:af_xdp"}, "is the TAP interface itself"},
        {{"--lower", "eth1:af_xdp", "--allow-mac", "02:00:00:00:00:01", "--mac",
          "02:00:00:00:00:02"},
         "not among the policy's allowed MACs"},
        {{}, "no lower interface"},
        {{"--lower", "0000:00:03.0:pci"}, "a pci lower needs its device kind"},
        {{"--lower", "0000:00:03.0:pci:e1000"}, "unknown PCI device kind 'e1000'"},
        {{"--lower", "0000:00:3.0:pci:vmxnet3"}, "not a PCI address"},
        {{"--lower", "0000:00:20.0:pci:vmxnet3"}, "not a PCI address"},
        {{"--lower", "0000:00:03.8:pci:vmxnet3"}, "not a PCI address"},
        {{"--lower", "eth1:pci:vmxnet3"}, "'eth1' is not a PCI address"},
        {{"--lower", "0000:00:03.0:af_xdp"}, "is a PCI address: its plugin is pci"},
        {{"--lower", "0000:00:03.0:pci:vmxnet3:extra"}, "a lower is"},
        {{"--lower", "0000:00:03.0:pci:vmxnet3", "--lower", "0000:00:03.0:pci:vmxnet3"},
         "listed twice"},
        {{"--lower", "00:03.0:pci:vmxnet3", "--lower", "00:04.0:pci:vmxnet3", "--lower",
          "00:05.0:pci:vmxnet3"},
         "at most 2 lowers may use pci vmxnet3"},
        {{"--lower", "00:03.0:pci:vmxnet3", "--lower", "eth1:af_xdp"},
         "af_xdp and pci lowers cannot be combined"},
    };
    for (const auto& c : cases) {
        daemon_config cfg;
        std::string err;
        CAPTURE(c.says);
        CHECK_FALSE(parse(c.args, cfg, err));
        CHECK_MESSAGE(err.find(c.says) != std::string::npos, err);
    }
}

TEST_CASE("config files are read with a bound: endless or oversized files are refused") {
    daemon_config cfg;
    std::string err;
    CHECK_FALSE(parse({"--config", "/dev/zero"}, cfg, err));
    CHECK(err == "/dev/zero: not a regular file");
    const std::string big = "/tmp/npa-units-big-" + std::to_string(::getpid()) + ".conf";
    {
        std::FILE* f = std::fopen(big.c_str(), "w");
        REQUIRE(f != nullptr);
        for (int i = 0; i < 5000; ++i)
            std::fputs("# a comment line that pads the file out\n", f);
        std::fclose(f);
    }
    daemon_config cfg2;
    CHECK_FALSE(parse({"--config", big.c_str()}, cfg2, err));
    CHECK(err == big + ": larger than 64 KiB");
    ::unlink(big.c_str());
    daemon_config cfg3;
    CHECK_FALSE(parse({"--policy", "/dev/zero", "--lower", "va0:af_packet"}, cfg3, err));
    CHECK(err.find("not a regular file") != std::string::npos);
    daemon_config cfg4;
    CHECK_FALSE(parse({"--tap", "x%d", "--lower", "va0:af_packet"}, cfg4, err));
    CHECK(err.find("is a name template") != std::string::npos);
}

TEST_CASE("config and policy files: settings, comments, and errors with file:line") {
    const std::string pol = temp_file("allow_mac = 02:00:00:00:00:01\nallow_vlan = 10, 20-22\n"
                                      "mtu_min = 576 # comment\nmtu_max = 1500\n");
    const std::string conf = temp_file(("# npa-linkd\ntap = npa3\nlower = eth1 af_xdp copy\n"
                                        "lower = eth2 af_packet\nsocket = /tmp/x.sock\n"
                                        "min_dwell_ms = 10\npolicy = " +
                                        pol + "\n")
                                           .c_str());
    daemon_config cfg;
    std::string err;
    REQUIRE_MESSAGE(parse({"--config", conf.c_str()}, cfg, err), err);
    CHECK(cfg.tap == "npa3");
    CHECK(cfg.lowers.size() == 2);
    CHECK(cfg.lowers[0].mode == xdp_mode::copy);
    CHECK(cfg.socket == "/tmp/x.sock");
    CHECK(cfg.min_dwell_ms == 10);
    CHECK(cfg.policy.allowed_macs.size() == 1);
    CHECK(cfg.policy.vlans.test(10));
    CHECK(cfg.policy.vlans.test(21));
    CHECK_FALSE(cfg.policy.vlans.test(23));
    CHECK(cfg.policy.mtu_min == 576);
    // Flags after the file replace its lower list.
    daemon_config cfg2;
    REQUIRE(parse({"--config", conf.c_str(), "--lower", "eth9:af_packet"}, cfg2, err));
    CHECK(cfg2.lowers.size() == 1);

    const std::string bad = temp_file("tap = npa0\n\nlower = eth1 af_xdp\nmtu_max 1500\n");
    daemon_config cfg3;
    CHECK_FALSE(parse({"--config", bad.c_str()}, cfg3, err));
    CHECK(err == bad + ":4: expected 'key = value'");
    const std::string unknown = temp_file("lower = eth1 af_xdp\ncolour = blue\n");
    CHECK_FALSE(parse({"--config", unknown.c_str()}, cfg3, err));
    CHECK(err == unknown + ":2: unknown policy setting 'colour'");
    std::remove(pol.c_str());
    std::remove(conf.c_str());
    std::remove(bad.c_str());
    std::remove(unknown.c_str());
}

TEST_CASE("control protocol: strict requests, JSON replies") {
    request r;
    std::string err;
    REQUIRE(parse_request("status", r, err));
    CHECK(r.cmd == command::status);
    CHECK_FALSE(r.text);
    REQUIRE(parse_request("  switch   va1  text\r", r, err));
    CHECK(r.cmd == command::switch_to);
    CHECK(r.arg == "va1");
    CHECK(r.text);
    CHECK_FALSE(parse_request("", r, err));
    CHECK(err.find("empty request") != std::string::npos);
    CHECK_FALSE(parse_request("switch", r, err));
    CHECK_FALSE(parse_request("switch a b", r, err));
    CHECK_FALSE(parse_request("stats now", r, err));
    CHECK_FALSE(parse_request("reboot", r, err));
    CHECK(err.find("unknown command 'reboot'") != std::string::npos);
    CHECK_FALSE(parse_request(std::string("st\0atus", 7), r, err));
    CHECK_FALSE(parse_request(std::string(300, 'a'), r, err));

    const std::string j = "{\"ok\":false,\"error\":" + json_str("bad \"x\"\n") +
                          ",\"nested\":{\"ok\":true},\"text\":\"a\\tb\"}";
    bool ok = true;
    REQUIRE(json_get_bool(j, "ok", ok));
    CHECK_FALSE(ok); // the top-level key, not the nested one
    std::string s;
    REQUIRE(json_get_string(j, "error", s));
    CHECK(s == "bad \"x\"\n");
    REQUIRE(json_get_string(j, "text", s));
    CHECK(s == "a\tb");
    CHECK_FALSE(json_get_string(j, "missing", s));
    CHECK(json_error("no") == "{\"ok\":false,\"error\":\"no\"}");
}

TEST_CASE("virtio-net header <-> offload_info (virtio 1.2, 5.1.6)") {
    std::array<std::byte, 64> frame{};
    frame[12] = std::byte{0x08}; // IPv4
    virtio_net_hdr h{};
    npa::offload_info o;
    REQUIRE(offload_from_vnet(h, frame.data(), 64, o));
    CHECK(o.flags == 0);
    // TCP over IPv4 with a partial checksum and TSO.
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 34;
    h.csum_offset = 16;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 1448;
    h.hdr_len = 66;
    REQUIRE(offload_from_vnet(h, frame.data(), 64, o));
    CHECK(o.flags == (npa::ol::tx_l4_csum | npa::ol::tx_tso));
    CHECK(o.l2_len == 14);
    CHECK(o.l3_len == 20);
    CHECK(o.l4_len == 32);
    CHECK(o.tso_mss == 1448);
    // A VLAN tag moves L3 by 4 bytes.
    frame[12] = std::byte{0x81};
    frame[13] = std::byte{0x00};
    h.csum_start = 38;
    h.hdr_len = 70;
    REQUIRE(offload_from_vnet(h, frame.data(), 64, o));
    CHECK(o.l2_len == 18);
    CHECK(o.l3_len == 20);
    // Hostile or unsupported headers are refused.
    h.csum_start = 60; // checksum field beyond the frame
    CHECK_FALSE(offload_from_vnet(h, frame.data(), 64, o));
    h.csum_start = 38;
    h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
    CHECK_FALSE(offload_from_vnet(h, frame.data(), 64, o));
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    h.flags = 0; // TSO without a checksum request
    CHECK_FALSE(offload_from_vnet(h, frame.data(), 64, o));
    // RX: a verified checksum becomes DATA_VALID.
    npa::offload_info rx{};
    rx.csum = npa::csum_state::good;
    CHECK(vnet_from_offload(rx).flags == VIRTIO_NET_HDR_F_DATA_VALID);
    CHECK(vnet_from_offload(npa::offload_info{}).flags == 0);
}

TEST_CASE("rtnetlink link messages are parsed within their bounds") {
    alignas(nlmsghdr) char buf[512]{};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
    ifi->ifi_index = 7;
    ifi->ifi_flags = IFF_UP | IFF_RUNNING;
    std::size_t len = NLMSG_LENGTH(sizeof(ifinfomsg));
    auto put = [&](unsigned short type, const void* data, std::size_t n) {
        auto* a = reinterpret_cast<rtattr*>(buf + NLMSG_ALIGN(len));
        a->rta_type = type;
        a->rta_len = static_cast<unsigned short>(RTA_LENGTH(n));
        std::memcpy(RTA_DATA(a), data, n);
        len = NLMSG_ALIGN(len) + RTA_ALIGN(a->rta_len);
    };
    put(IFLA_IFNAME, "va0", 4);
    const std::uint32_t mtu = 1400;
    put(IFLA_MTU, &mtu, 4);
    const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
    put(IFLA_ADDRESS, mac, 6);
    h->nlmsg_len = static_cast<std::uint32_t>(len);
    h->nlmsg_type = RTM_NEWLINK;
    std::vector<link_event> seen;
    link_monitor::parse(buf, len, [&](const link_event& ev) { seen.push_back(ev); });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].ifindex == 7);
    CHECK(std::string(seen[0].ifname) == "va0");
    CHECK(seen[0].mtu == 1400);
    CHECK(seen[0].has_mac);
    CHECK(seen[0].mac[5] == 9);
    CHECK(seen[0].running());
    // Truncated datagram: nothing is read past it.
    seen.clear();
    link_monitor::parse(buf, NLMSG_LENGTH(sizeof(ifinfomsg)) - 4,
                        [&](const link_event& ev) { seen.push_back(ev); });
    CHECK(seen.empty());
    h->nlmsg_type = RTM_DELLINK;
    link_monitor::parse(buf, len, [&](const link_event& ev) { seen.push_back(ev); });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].what == link_event::kind::removed);
    CHECK_FALSE(seen[0].running());
}

TEST_CASE("the MAC announcement is a broadcast RARP request from the MAC") {
    const npa::mac_addr mac = {2, 0x11, 0x22, 0x33, 0x44, 0x55};
    std::array<std::byte, 64> f{};
    REQUIRE(build_announce(mac, f) == announce_frame_len);
    const auto* p = reinterpret_cast<const std::uint8_t*>(f.data());
    for (int i = 0; i < 6; ++i) {
        CHECK(p[i] == 0xff);
        CHECK(p[6 + i] == mac[i]);
        CHECK(p[22 + i] == mac[i]);
    }
    CHECK(p[12] == 0x80);
    CHECK(p[13] == 0x35);
    CHECK(p[21] == 3);
    std::array<std::byte, 59> small{};
    CHECK(build_announce(mac, small) == 0);
}

// Known answers computed independently (RFC 1071 arithmetic): a TCP segment 10.77.0.1:40000
// -> 10.77.0.2:5201 carrying "npa checksum!" (13 bytes, so the sum has an odd tail) has
// checksum 0x5051, and its pseudo-header sum is 0x14c4; as UDP 5353 -> 5353, 0x2718 and
// 0x14c3.
namespace {

std::vector<std::byte> ipv4_frame(bool udp, std::uint16_t l4_csum, std::size_t pad = 0) {
    const char payload[] = "npa checksum!";
    std::vector<std::uint8_t> f = {2, 0x77, 0, 0, 0, 2, 2, 0x77, 0, 0, 0, 1, 0x08, 0x00};
    const std::uint16_t l4_len = udp ? 8 + 13 : 20 + 13;
    const std::uint16_t total = 20 + l4_len;
    const std::uint16_t ip_csum = udp ? 0 : 0x2626; // the IP header checksum is not checked
    const std::uint8_t ip[] = {0x45,
                               0,
                               std::uint8_t(total >> 8),
                               std::uint8_t(total),
                               0,
                               1,
                               0x40,
                               0,
                               64,
                               std::uint8_t(udp ? 17 : 6),
                               std::uint8_t(ip_csum >> 8),
                               std::uint8_t(ip_csum),
                               10,
                               77,
                               0,
                               1,
                               10,
                               77,
                               0,
                               2};
    f.insert(f.end(), ip, ip + 20);
    if (udp) {
        const std::uint8_t h[] = {
            0x14, 0xe9, 0x14, 0xe9, 0, 21, std::uint8_t(l4_csum >> 8), std::uint8_t(l4_csum)};
        f.insert(f.end(), h, h + 8);
    } else {
        const std::uint8_t h[] = {0x9c,
                                  0x40,
                                  0x14,
                                  0x51,
                                  0,
                                  0,
                                  0,
                                  1,
                                  0,
                                  0,
                                  0,
                                  2,
                                  0x50,
                                  0x18,
                                  0xff,
                                  0xff,
                                  std::uint8_t(l4_csum >> 8),
                                  std::uint8_t(l4_csum),
                                  0,
                                  0};
        f.insert(f.end(), h, h + 20);
    }
    f.insert(f.end(), payload, payload + 13);
    f.resize(f.size() + pad, 0);
    std::vector<std::byte> out(f.size());
    std::memcpy(out.data(), f.data(), f.size());
    return out;
}

std::uint16_t l4_field(const std::vector<std::byte>& f, bool udp) {
    const std::size_t at = 34 + (udp ? 6 : 16);
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(f[at]) << 8) |
                                      std::to_integer<unsigned>(f[at + 1]));
}

} // namespace

TEST_CASE("TCP/UDP checksums finished and checked in software (npa/linux/checksum.hpp)") {
    const auto len = [](const std::vector<std::byte>& f) {
        return static_cast<std::uint32_t>(f.size());
    };
    SUBCASE("TX: a checksum the TAP left to finish (NEEDS_CSUM, TCP and UDP)") {
        for (const bool udp : {false, true}) {
            auto f = ipv4_frame(udp, udp ? 0x14c3 : 0x14c4);
            virtio_net_hdr h{};
            h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
            h.csum_start = 34;
            h.csum_offset = udp ? 6 : 16;
            npa::offload_info o;
            REQUIRE(offload_from_vnet(h, f.data(), len(f), o));
            CHECK(o.l4_len == (udp ? 8 : 20));
            REQUIRE(finish_tx_csum(f.data(), len(f), o));
            CHECK(l4_field(f, udp) == (udp ? 0x2718 : 0x5051));
        }
        // A checksum offset that is neither TCP's nor UDP's is refused at the TAP.
        auto f = ipv4_frame(false, 0);
        virtio_net_hdr h{};
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.csum_start = 34;
        h.csum_offset = 8;
        npa::offload_info o;
        CHECK_FALSE(offload_from_vnet(h, f.data(), len(f), o));
        // No request: the frame is not touched.
        auto g = ipv4_frame(false, 0x1234);
        REQUIRE(finish_tx_csum(g.data(), len(g), npa::offload_info{}));
        CHECK(l4_field(g, false) == 0x1234);
        // A request beyond the frame is refused and the frame is not touched.
        npa::offload_info bad;
        bad.flags = npa::ol::tx_l4_csum;
        bad.l2_len = 14;
        bad.l3_len = 200;
        CHECK_FALSE(finish_tx_csum(g.data(), len(g), bad));
        CHECK(l4_field(g, false) == 0x1234);
    }
    SUBCASE("RX with the kernel's word (TP_STATUS_CSUMNOTREADY): finished, padding ignored") {
        auto f = ipv4_frame(false, 0x14c4, 7);
        CHECK(finish_rx_partial(f.data(), len(f)) == npa::csum_state::good);
        CHECK(l4_field(f, false) == 0x5051);
        std::array<std::byte, 20> arp{};
        arp[12] = std::byte{0x08};
        arp[13] = std::byte{0x06};
        CHECK(finish_rx_partial(arp.data(), 20) == npa::csum_state::unknown);
    }
    SUBCASE("RX without a word (AF_XDP): good, partial (finished), bad, none") {
        auto good = ipv4_frame(false, 0x5051);
        CHECK(check_rx_csum(good.data(), len(good)) == npa::csum_state::good);
        CHECK(l4_field(good, false) == 0x5051);
        auto partial = ipv4_frame(true, 0x14c3, 3);
        CHECK(check_rx_csum(partial.data(), len(partial)) == npa::csum_state::good);
        CHECK(l4_field(partial, true) == 0x2718);
        auto wrong = ipv4_frame(false, 0x5052);
        CHECK(check_rx_csum(wrong.data(), len(wrong)) == npa::csum_state::bad);
        CHECK(l4_field(wrong, false) == 0x5052); // left for the stack to drop
        auto none = ipv4_frame(true, 0);
        CHECK(check_rx_csum(none.data(), len(none)) == npa::csum_state::unknown);
        // Lengths the frame does not hold are not followed.
        auto cut = ipv4_frame(false, 0x5051);
        cut.resize(40);
        CHECK(check_rx_csum(cut.data(), len(cut)) == npa::csum_state::unknown);
        // A fragment is not checked (its L4 header covers more than this frame).
        auto frag = ipv4_frame(false, 0x5051);
        frag[14 + 6] = std::byte{0x20}; // MF
        CHECK(check_rx_csum(frag.data(), len(frag)) == npa::csum_state::unknown);
    }
}
