// tests/dpdk/net_npa_image_test.cpp: net_npa's image paths (dev(sim:simnic),plugin=...).
//
// The simnic image the sim loads, the same file, runs as a net_npa path over a simnic
// model in this process, cabled to a loop (what it sends comes back), beside a looping
// net_ring sub-port: packets circulate through net_npa, every one counted and put in
// order, while the data path switches between the two. Then every refusal, each with its
// sentence in the log and no port left behind. EAL runs with --no-huge --no-pci, as root.
#include <doctest/doctest.h>

#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>
#include <npa/image/format.hpp>
#include <npa/image/image_files.hpp>
#include <npa/image/signing.hpp>

#include "log_capture.hpp"

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_log.h>

#include <array>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

using npa::dpdk::mbuf_ref;
using npa::dpdk::mempool_pool;
namespace img = npa::image;

namespace {
using npa::test::log_capture;

constexpr std::uint32_t pool_size = 4095;
constexpr std::uint32_t circulating = 256; // packets in the loop
constexpr std::uint16_t burst = 32;
mempool_pool* g_pool = nullptr;
std::string g_tmp; // this run's scratch directory

const std::string image_args = std::string("plugin=") + NPA_SIMNIC_IMAGE +
                               ",trusted_key=" + NPA_IMAGE_TEST_PUB;

std::uint16_t port_by_name(const char* name) {
    std::uint16_t id = RTE_MAX_ETHPORTS;
    REQUIRE(rte_eth_dev_get_port_by_name(name, &id) == 0);
    return id;
}

void start_port(std::uint16_t port) {
    const rte_eth_conf conf{};
    REQUIRE(rte_eth_dev_configure(port, 1, 1, &conf) == 0);
    REQUIRE(rte_eth_rx_queue_setup(port, 0, 512, 0, nullptr, g_pool->get()) == 0);
    REQUIRE(rte_eth_tx_queue_setup(port, 0, 512, 0, nullptr) == 0);
    REQUIRE(rte_eth_dev_start(port) == 0);
}

/// A 64-byte frame: a broadcast Ethernet header, then the sequence number.
mbuf_ref make_packet(std::uint32_t seq) {
    std::array<mbuf_ref, 1> b{};
    REQUIRE(g_pool->alloc_bulk(b) == 1);
    b[0].set_length(64);
    std::memset(b[0].data(), 0, 64);
    std::memset(b[0].data(), 0xff, 6);
    b[0].data()[6] = std::byte{0x02};
    b[0].data()[12] = std::byte{0x88}; // the sim's test EtherType
    b[0].data()[13] = std::byte{0xb5};
    std::memcpy(b[0].data() + 16, &seq, sizeof seq);
    return b[0];
}
std::uint32_t seq_of(rte_mbuf* m) {
    std::uint32_t s;
    std::memcpy(&s, rte_pktmbuf_mtod(m, const std::byte*) + 16, sizeof s);
    return s;
}

struct loop_result {
    std::uint64_t received = 0, out_of_order = 0, tx_refused = 0, in_flight_end = 0;
};

/// Puts `circulating` packets into the port, forwards RX to TX for `rounds` rounds that
/// received something (and on while more() says so), calling mid(round) each round, then
/// drains. The image path's
/// device runs on its own thread, so an empty burst waits a little rather than counting
/// as a round, and the drain is bounded by time (the last frames may be on the wire).
template <class Mid, class More = bool (*)()>
loop_result circulate(std::uint16_t port, int rounds, Mid mid, More more = [] { return false; }) {
    loop_result r;
    std::uint32_t expect = 0;
    for (std::uint32_t s = 0; s < circulating; s += burst) {
        std::array<mbuf_ref, burst> b;
        for (std::uint16_t i = 0; i < burst; ++i) b[i] = make_packet(s + i);
        std::uint16_t sent = 0;
        while (sent < burst) {
            sent += rte_eth_tx_burst(port, 0, npa::dpdk::as_mbufs(std::span<mbuf_ref>(b)) + sent,
                                     static_cast<std::uint16_t>(burst - sent));
        }
    }
    std::array<rte_mbuf*, burst> pkts;
    auto check = [&](std::uint16_t n) {
        for (std::uint16_t i = 0; i < n; ++i) {
            CHECK(pkts[i]->port == port);
            if (seq_of(pkts[i]) != expect) ++r.out_of_order;
            expect = (seq_of(pkts[i]) + 1) % circulating;
        }
        r.received += n;
    };
    for (int round = 0, idle = 0; (round < rounds || more()) && idle < 30'000;) {
        mid(round);
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        check(n);
        if (n == 0) {
            ++idle;
            usleep(100);
        } else {
            ++round;
            idle = 0;
        }
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        r.tx_refused += n - k;
        rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
    }
    for (int idle = 0; idle < 200 && r.in_flight_end < circulating; ++idle) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        check(n);
        r.received -= n; // drained, not forwarded
        r.in_flight_end += n;
        rte_pktmbuf_free_bulk(pkts.data(), n);
        if (n == 0) usleep(1000);
    }
    return r;
}

void wait_switch_done(std::uint16_t port) {
    rte_pmd_npa_status_info s{};
    for (int i = 0; i < 60'000; ++i) {
        REQUIRE(rte_pmd_npa_status(port, &s) == 0);
        if (s.switching == 0) return;
        (void)rte_eth_tx_burst(port, 0, nullptr, 0);
        (void)rte_eth_rx_burst(port, 0, nullptr, 0);
        usleep(1000);
    }
    FAIL("switch not completed within 60 s");
}

std::uint64_t xstat(std::uint16_t port, const char* name) {
    std::uint64_t id = 0, v = ~0ull;
    REQUIRE(rte_eth_xstats_get_id_by_name(port, name, &id) == 0);
    REQUIRE(rte_eth_xstats_get_by_id(port, &id, &v, 1) == 1);
    return v;
}

std::string write_file(const std::string& name, std::span<const std::byte> bytes) {
    const std::string path = g_tmp + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
}

} // namespace

TEST_CASE("the simnic image is a net_npa path: frames go round, counted, in order") {
    const std::string args = "dev(sim:simnic)," + image_args;
    REQUIRE(rte_vdev_init("net_npa1", args.c_str()) == 0);
    const std::uint16_t port = port_by_name("net_npa1");
    rte_eth_dev_info info{};
    REQUIRE(rte_eth_dev_info_get(port, &info) == 0);
    CHECK(info.max_rx_queues == 4);
    CHECK(info.rx_desc_lim.nb_max == 1024);
    CHECK(info.max_mtu == 1500);
    start_port(port);
    rte_eth_link link{};
    REQUIRE(rte_eth_link_get_nowait(port, &link) == 0);
    CHECK(unsigned{link.link_status} == RTE_ETH_LINK_UP);

    const loop_result r = circulate(port, 3000, [](int) {});
    CHECK(r.received > 0);
    CHECK(r.out_of_order == 0);
    CHECK(r.tx_refused == 0);
    CHECK(r.in_flight_end == circulating); // none lost
    rte_eth_stats st{};
    REQUIRE(rte_eth_stats_get(port, &st) == 0);
    CHECK(st.opackets == r.received + circulating);
    CHECK(st.ipackets == r.received + r.in_flight_end);
    CHECK(st.obytes == 64 * st.opackets); // the image's own byte counts
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.paths == 1);
    CHECK(s.sub_port[0] == RTE_MAX_ETHPORTS); // no DPDK port behind it
    CHECK(rte_eth_dev_stop(port) == 0);
    REQUIRE(rte_eth_link_get_nowait(port, &link) == 0);
    CHECK(unsigned{link.link_status} == RTE_ETH_LINK_DOWN);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa1") == 0);
    CHECK(g_pool->available() == pool_size); // every mbuf back
}

TEST_CASE("switches between a net_ring path and the image path under traffic lose nothing") {
    const std::string args = "dev(net_ring21),dev(sim:simnic),dwell_ms=0," + image_args;
    REQUIRE(rte_vdev_init("net_npa2", args.c_str()) == 0);
    const std::uint16_t port = port_by_name("net_npa2");
    start_port(port);
    constexpr int switches = 8;
    constexpr int every = 500;
    int done = 0;
    int switched_at = -1, stalled_at = -1;
    const loop_result r = circulate(port, every * (switches + 1), [&](int round) {
        // The lcore is descheduled mid-drain for longer than the drain timeout of a port
        // with an image path (50 ms), twice after each switch, as on a loaded machine:
        // the old path has delivered a burst or so and still holds the rest. All of it is
        // delivered all the same, before anything from the new path (the image path's
        // drain was cut short by the timeout, and what its RX ring held was left on the
        // released device: four bursts gone, the rest out of order).
        if (switched_at >= 0 && round > switched_at && round <= switched_at + 2 &&
            round != stalled_at) {
            usleep(60'000);
            stalled_at = round;
        }
        if (done == switches || round < (done + 1) * every) return;
        // The last switch may not be released yet (a switch away from the image path
        // reads its RX until it has been quiet for 20 ms): then ask again next round.
        const int rc = rte_pmd_npa_switch(port, static_cast<std::uint32_t>((done + 1) % 2));
        if (rc == -EBUSY) return;
        REQUIRE(rc == 0);
        ++done;
        switched_at = round;
    }, [&] { return done < switches; }); // and rounds after the last switch
    wait_switch_done(port);
    CHECK(done == switches);
    CHECK(r.out_of_order == 0);
    CHECK(r.tx_refused == 0);
    CHECK(r.in_flight_end == circulating); // every packet still there: none lost
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.active == 0);
    CHECK(s.switches == switches + 1); // the boot attach, then the requested ones
    CHECK(s.lost == 0);
    CHECK(xstat(port, "path0_tx_packets") > 0);
    CHECK(xstat(port, "path1_tx_packets") > 0);
    CHECK(xstat(port, "path0_tx_packets") + xstat(port, "path1_tx_packets") ==
          r.received + circulating);
    rte_eth_stats st{};
    REQUIRE(rte_eth_stats_get(port, &st) == 0);
    CHECK(st.opackets == r.received + circulating);
    CHECK(st.ipackets == r.received + r.in_flight_end);
    CHECK(st.imissed == 0); // the sim device dropped nothing either
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa2") == 0);
    CHECK(g_pool->available() == pool_size);
}

TEST_CASE("refusals: each a sentence in the log, and no port or sub-device left behind") {
    const auto simnic = img::read_file(NPA_SIMNIC_IMAGE);
    REQUIRE(simnic.has_value());
    // A signed image that carries the plugin for npa::packet_buffer only.
    std::vector<std::byte> no_mbuf = *simnic;
    const std::uint32_t pb = img::layout_bit(img::buffer_layout::packet_buffer);
    std::memcpy(no_mbuf.data() + offsetof(img::image_header, buffer_layout), &pb, sizeof pb);
    const auto seed = img::read_seed(NPA_IMAGE_TEST_KEY);
    REQUIRE(seed.has_value());
    REQUIRE(img::sign_image(no_mbuf, *seed));
    const std::string no_mbuf_file = write_file("no_mbuf.npai", no_mbuf);
    const std::string bad_key = write_file("bad.pub", std::as_bytes(std::span("not a key", 9)));
    const std::string empty_dir = g_tmp + "/empty";
    std::filesystem::create_directory(empty_dir);
    const std::string key = std::string(",trusted_key=") + NPA_IMAGE_TEST_PUB;

    struct bad {
        std::string args;
        std::string message;
    };
    const bad cases[] = {
        {"dev(sim:simnic),plugin=/nonexistent/simnic.npai" + key,
         "plugin=/nonexistent/simnic.npai: No such file or directory"},
        {"dev(sim:simnic),plugin=" + empty_dir + key,
         "plugin=" + empty_dir + ": no image in the directory is for sim:simnic"},
        {std::string("dev(sim:simnic),plugin=") + NPA_SIMNIC_IMAGE + ",trusted_key=" + NPA_OTHER_PUB,
         "image: not signed by a trusted key (unknown signer)"},
        {std::string("dev(sim:simnic),plugin=") + NPA_IGBVF_IMAGE + key,
         "image: built for another device"},
        {"dev(sim:simnic),plugin=" + no_mbuf_file + key,
         "image: built without this host's buffer layout"},
        {std::string("dev(sim:simnic),plugin=") + NPA_SIMNIC_IMAGE + ",trusted_key=" + bad_key,
         "trusted_key=" + bad_key + ": not a public key (expected 64 hex digits"},
        {std::string("dev(sim:simnic),plugin=") + NPA_SIMNIC_IMAGE + ",trusted_key=/nonexistent.pub",
         "trusted_key=/nonexistent.pub: cannot read the file"},
        {"dev(0000:03:10.0),plugin=" + no_mbuf_file + key,
         "net_npa runs plugin images over sim device models only (dev(sim:simnic)); mapping a "
         "PCI function's BAR for an image (VFIO) is not supported"},
        {"dev(sim:simnic)", "a sim device runs a plugin image: give plugin="},
        {"dev(net_ring71),dev(sim:simnic),plugin=/nonexistent" + key,
         "plugin=/nonexistent: No such file or directory"},
    };
    const std::uint16_t ports_before = rte_eth_dev_count_total();
    for (const bad& c : cases) {
        CAPTURE(c.args);
        log_capture log;
        CHECK(rte_vdev_init("net_npa7", c.args.c_str()) < 0);
        const std::string text = log.text();
        CAPTURE(text);
        CHECK(text.find("net_npa: net_npa7: ") != std::string::npos);
        CHECK(text.find(c.message) != std::string::npos);
        std::uint16_t id;
        CHECK(rte_eth_dev_get_port_by_name("net_npa7", &id) != 0);
        CHECK(rte_eth_dev_get_port_by_name("net_ring71", &id) != 0); // never probed
    }
    CHECK(rte_eth_dev_count_total() == ports_before);

    // A directory with the image in it is as good as the file.
    const std::string dir = g_tmp + "/images";
    std::filesystem::create_directory(dir);
    std::filesystem::copy_file(NPA_SIMNIC_IMAGE, dir + "/simnic.npai");
    std::filesystem::copy_file(NPA_IGBVF_IMAGE, dir + "/igbvf.npai");
    const std::string ok = "dev(sim:simnic),plugin=" + dir + key;
    REQUIRE(rte_vdev_init("net_npa8", ok.c_str()) == 0);
    CHECK(rte_vdev_uninit("net_npa8") == 0);
}

int main(int argc, char** argv) {
    const std::string prefix = "npa_imgpath_" + std::to_string(getpid());
    const char* eal[] = {"dpdk_net_npa_image", "--no-huge",      "--no-pci",      "-m", "256",
                         "-l",                 "0",              "--file-prefix", prefix.c_str(),
                         "--log-level",        "pmd.net.npa:info", "--no-telemetry"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "dpdk_net_npa_image: rte_eal_init failed (run as root)\n");
        return 1;
    }
    char tmpl[] = "/tmp/npa_imgpath_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    g_tmp = tmpl;
    int rc = 1;
    {
        auto pool = mempool_pool::create("npa_imgpath_pool", pool_size, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (!pool.ok()) {
            std::fprintf(stderr, "dpdk_net_npa_image: %s\n", pool.error().reason());
        } else {
            g_pool = &*pool;
            doctest::Context ctx(argc, argv);
            rc = ctx.run();
            g_pool = nullptr;
        }
    }
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(g_tmp, ec);
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec); // EAL leaves its runtime dir
    return rc;
}
