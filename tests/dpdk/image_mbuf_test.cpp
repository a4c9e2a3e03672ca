// tests/dpdk/image_mbuf_test.cpp: a plugin image over DPDK mbufs (buffer_layout::rte_mbuf).
//
// The simnic image the sim loads, the same file, is loaded here for an rte_mbuf host and
// drives a simnic device model in this DPDK process: its mbufs' data lie in the model's
// guest memory (an external-buffer mempool), so the device reaches them by their buf_iova
// as a NIC would. Frames go both ways and each one is counted by the sim's traffic
// checker; every mbuf is back in its mempool after detach. EAL runs with --no-huge
// --no-pci, as the other DPDK tests.
#include <doctest/doctest.h>

#include <npa/dpdk/mbuf.hpp>
#include <npa/image/image_files.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/mbuf_layout.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/image/signing.hpp>

#include "mbuf_sim_world.hpp"

#include <rte_eal.h>
#include <rte_mbuf.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

using npa::dpdk::mbuf_ref;
using npa::dpdk::mempool_pool;
using npa::dpdk::test::mbuf_api;
using npa::dpdk::test::mbuf_sim_world;
namespace img = npa::image;

namespace {

constexpr std::uint32_t simnic_id = npa::sim::simnic_window::image_device_id;
constexpr std::uint32_t pool_size = 1024;
constexpr std::uint32_t guest_flow = 100;
using npa::dpdk::test::guest_mac;
using npa::dpdk::test::peer_flow;
using npa::dpdk::test::peer_mac;

/// The world of a test: made, or the test stops with the reason.
struct world : mbuf_sim_world {
    explicit world(const char* name) : mbuf_sim_world(name, pool_size, 128) {
        REQUIRE_MESSAGE(error.empty(), error);
    }
};

std::vector<std::byte> file_bytes(const char* path) {
    auto b = img::read_file(path);
    REQUIRE_MESSAGE(b.has_value(), "cannot read " << path);
    return std::move(*b);
}
std::vector<img::public_key> trusted() {
    auto s = img::read_seed(NPA_IMAGE_TEST_KEY);
    REQUIRE(s.has_value());
    return {img::public_key_of(*s)};
}

} // namespace

TEST_CASE("the image's view of an rte_mbuf is DPDK's") {
    auto pool = mempool_pool::create("npa_img_view", 63, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    REQUIRE(pool.ok());
    std::array<mbuf_ref, 1> b{};
    REQUIRE(pool->alloc_bulk(b) == 1);
    rte_mbuf* m = b[0].get();
    const img::mbuf::mbuf_view v(m);
    CHECK(v.data() == rte_pktmbuf_mtod(m, std::byte*));
    CHECK(v.iova() == rte_pktmbuf_iova(m));
    CHECK(v.headroom() == rte_pktmbuf_headroom(m));
    CHECK(v.capacity() == b[0].capacity());
    v.set_length(300);
    CHECK(m->data_len == 300);
    CHECK(m->pkt_len == 300);
    CHECK(v.length() == 300);

    // Offloads written through the image's view read back through DPDK's fields, and the
    // outer header lengths (which npa does not carry) survive.
    m->outer_l2_len = 14;
    m->outer_l3_len = 20;
    npa::offload_info o;
    o.flags = npa::ol::tx_ip_csum | npa::ol::tx_l4_csum | npa::ol::tx_tso | npa::ol::tx_vlan;
    o.vlan_tci = 0x0123;
    o.tso_mss = 1448;
    o.l2_len = 14;
    o.l3_len = 40;
    o.l4_len = 32;
    v.set_offload(o);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_VLAN) != 0);
    CHECK(m->vlan_tci == 0x0123);
    CHECK(std::uint64_t{m->tso_segsz} == 1448);
    CHECK(std::uint64_t{m->l2_len} == 14);
    CHECK(std::uint64_t{m->l3_len} == 40);
    CHECK(std::uint64_t{m->l4_len} == 32);
    CHECK(std::uint64_t{m->outer_l2_len} == 14);
    CHECK(std::uint64_t{m->outer_l3_len} == 20);

    // And what DPDK writes, the image reads.
    m->ol_flags = RTE_MBUF_F_RX_RSS_HASH | RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED |
                  RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_BAD;
    m->hash.rss = 0xdeadbeef;
    m->vlan_tci = 7;
    const npa::offload_info r = v.offload();
    CHECK(r.flags == (npa::ol::rx_rss | npa::ol::rx_vlan));
    CHECK(r.rss_hash == 0xdeadbeef);
    CHECK(r.vlan_tci == 7);
    CHECK(r.csum == npa::csum_state::bad);
    pool->free_burst(b);
}

TEST_CASE("the simnic image, loaded for rte_mbuf, carries frames both ways over mbufs") {
    const std::vector<std::byte> file = file_bytes(NPA_SIMNIC_IMAGE);
    auto image = img::load_image(file, simnic_id, trusted(), img::buffer_layout::rte_mbuf);
    REQUIRE_MESSAGE(image.ok(), (image.ok() ? "" : image.error().reason()));
    world w("npa_img_rx_tx");
    mbuf_api& api = w.api;
    auto dev = image->bind(w.dev->window());
    REQUIRE(dev.ok());
    CHECK(dev->layout == img::buffer_layout::rte_mbuf);

    constexpr std::uint32_t frames = 2000;
    npa::sim::traffic_gen gen(guest_flow, guest_mac, peer_mac, 0, 128);
    npa::sim::traffic_sink sink;
    std::uint64_t received = 0;
    {
        img::loaded_plugin<mbuf_api> p;
        const npa::status st = p.attach(api, *dev, mbuf_sim_world::queue_cfg());
        REQUIRE_MESSAGE(st.ok(), st.reason());
        CHECK(std::string(p.plugin_name()) == "simnic");
        w.dev->step(); // the device takes the RX buffers the doorbell announced
        CHECK(api.rx_allocated == 256);

        // RX: the peer sends, the device writes into the mbufs' data, the image hands them up.
        std::array<mbuf_ref, 32> burst{};
        for (std::uint32_t sent = 0; sent < frames; sent += 100) {
            REQUIRE(w.peer.send(100) == 100);
            (void)w.dev->step();
            for (std::uint16_t n; (n = p.rx_burst(0, burst)) != 0;) {
                for (std::uint16_t i = 0; i < n; ++i) {
                    rte_mbuf* m = burst[i].get();
                    CHECK(m->pkt_len == m->data_len); // set_length through the image's view
                    CHECK(sink.record({rte_pktmbuf_mtod(m, const std::byte*), m->data_len}));
                }
                received += n;
                w.pool.free_burst(std::span<const mbuf_ref>(burst.data(), n));
                (void)w.dev->step();
            }
        }
        CHECK(received == frames);
        const auto rx = sink.report(peer_flow, frames);
        CHECK(rx.lost == 0);
        CHECK(rx.reordered == 0);
        CHECK(rx.corrupt == 0);

        // TX: the image reads each mbuf's buf_iova + data_off and data_len for the device.
        std::uint64_t accepted = 0;
        for (std::uint32_t sent = 0; sent < frames; sent += burst.size()) {
            REQUIRE(w.pool.alloc_bulk(burst) == burst.size());
            for (mbuf_ref& b : burst) {
                b.set_length(gen.build(std::span<std::byte>(b.data(), b.capacity())));
            }
            std::uint16_t done = 0;
            while (done < burst.size()) {
                done += p.tx_burst(0, std::span<mbuf_ref>(burst).subspan(done));
                (void)w.dev->step();
                (void)p.tx_reap(0);
            }
            accepted += done;
        }
        for (int i = 0; i < 4 && p.tx_in_flight(0) != 0; ++i) {
            (void)w.dev->step();
            (void)p.tx_reap(0);
        }
        CHECK(accepted == gen.sent());
        CHECK(p.tx_in_flight(0) == 0);
        CHECK(api.tx_completed == accepted);
        const auto tx = w.peer.report(guest_flow, gen.sent());
        CHECK(tx.lost == 0);
        CHECK(tx.reordered == 0);
        CHECK(tx.corrupt == 0);
        p.detach();
    }
    // The audit: every mbuf the plugin took is back, and the pool is whole.
    CHECK(api.rx_allocated == api.rx_released + received);
    CHECK(api.unsent == 0);
    CHECK(w.pool.available() == pool_size);
}

TEST_CASE("refusals: an mbuf shell does not run an image entered for npa::packet_buffer") {
    const std::vector<std::byte> file = file_bytes(NPA_SIMNIC_IMAGE);
    auto image = img::load_image(file, simnic_id, trusted()); // packet_buffer's entry
    REQUIRE(image.ok());
    world w("npa_img_refuse");
    mbuf_api& api = w.api;
    auto dev = image->bind(w.dev->window());
    REQUIRE(dev.ok());
    img::loaded_plugin<mbuf_api> p;
    const npa::status st = p.attach(api, *dev, mbuf_sim_world::queue_cfg());
    CHECK_FALSE(st.ok());
    CHECK(std::string(st.reason()).find("another buffer layout") != std::string::npos);
    CHECK(api.rx_allocated == 0);
    CHECK(w.pool.available() == pool_size);
}

int main(int argc, char** argv) {
    const std::string prefix = "npa_imgmbuf_" + std::to_string(getpid());
    const char* eal[] = {"dpdk_image_mbuf", "--no-huge",    "--no-pci",      "-m", "256", "-l", "0",
                         "--file-prefix",   prefix.c_str(), "--no-telemetry"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "dpdk_image_mbuf: rte_eal_init failed (run as root)\n");
        return 1;
    }
    doctest::Context ctx(argc, argv);
    const int rc = ctx.run();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec); // EAL leaves its runtime dir
    return rc;
}
