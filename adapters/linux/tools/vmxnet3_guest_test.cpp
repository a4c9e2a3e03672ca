// vmxnet3_guest_test: the vmxnet3 plugin on a real vmxnet3 (QEMU's), inside a guest.
//
// Run as root in a guest with two vmxnet3 functions on one private hub (tests/guest/README.md
// describes the rig), with uio_pci_generic loaded. For each function: bound to
// uio_pci_generic, BARs mapped, bus mastering on (npa/linux/pci), rings and shared area in
// hugepage DMA memory, a buffer pool in another hugepage block; then attached
// (vmxnet3_plugin) and given its MAC and RX mode through vmxnet3_control afterwards, in the
// shell's order (attach, then the control replay). Frames of 60 ..
// 1514 bytes go from A to B, then from B to A, each carrying its sequence number and a
// pattern derived from it; every received frame is checked (length, addresses, sequence,
// every payload byte). Then the device's counters (GET_STATS into the queue descriptors)
// are compared with the plugin's, both plugins are detached and both pools must be balanced.
// A second round attaches both again (to devices reset by the detach) and sends 1,000 frames
// each way the same way; in the rig's vmxnet3-pair profile it then takes A's link down and up
// through QEMU's monitor and waits for the plugin to see both events.
//
// Environment: NPA_FRAMES (frames each way, default 1000), NPA_VMX_A / NPA_VMX_B (PCI
// addresses; default: the first two 15ad:07b0 functions in bus order).
// Output: progress and differences on stdout, then one line
//     NPA-GUEST-RESULT {"test":"vmxnet3_guest_test","status":"pass"|"fail",...}
// and `vmxnet3_guest_test PASS` or `FAIL ...`; exit 0 only on PASS.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/linux/pci/vmxnet3.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/test_api.hpp>

#include "guest_test_support.hpp"

#include <dirent.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace pci = npa::lnx::pci;
using namespace npa_guest;
using pool_t = npa::fixed_pool<pci::dma_memory>;
using api_t = npa::sim::test_api<pool_t>;
using plugin_t = npa::vmxnet3_plugin<api_t>;

constexpr std::uint32_t ring_size = 256;
constexpr std::uint32_t window = 64;  // frames in flight: well under the RX ring
// Both devices' shared areas, queue tables and rings come from one hugepage.
static_assert(2 * pci::vmxnet3_dma_bytes(1, ring_size, ring_size) + 2 * 4096 <= pci::hugepage_size);


struct port {
    const char* name;
    npa::mac_addr mac;
    pci::vmxnet3_function fn;
    std::optional<pool_t> pool;
    std::optional<api_t> api;
    std::optional<npa::vmxnet3_control> ctl;
    plugin_t plugin;
    bool attached = false;
};

bool setup(port& p, const char* addr, pci::dma_arena& arena, pci::dma_memory pool_mem) {
    pci::pci_error e;
    char before[320] = "?";
    {
        pci::pci_function f;
        if (f.open(e, addr) && f.current_driver(e, before, sizeof before) && before[0] == '\0') {
            std::snprintf(before, sizeof before, "no driver");
        }
    }
    if (!p.fn.open(e, addr, arena, 1, ring_size, ring_size)) {
        failf("%s (%s): %s", p.name, addr, e.what());
        return false;
    }
    std::uint16_t cmd = 0;
    (void)p.fn.function().read_command(e, cmd);
    std::printf("%s: %s bound to uio_pci_generic (was: %s), BARs mapped, PCI command 0x%04x\n", p.name,
                addr, before, cmd);
    npa::pool_config pc;
    pc.count = 896;
    auto pool = pool_t::create(pc, std::move(pool_mem));
    if (!pool) {
        failf("%s: pool: %s", p.name, pool.error().reason());
        return false;
    }
    p.pool.emplace(std::move(*pool));
    p.api.emplace(*p.pool);
    p.api->set_verbose(true);
    return true;
}

// Attaches the plugin, then the control path (MAC, RX mode), in the shell's order.
bool attach(port& p) {
    if (!attach_plugin(p, ring_size)) {
        return false;
    }
    // Then the control path (MAC, RX mode), as the shell replays it after every attach:
    // QEMU's device takes its permanent MAC back at ACTIVATE_DEV (docs/real-devices.md).
    p.ctl.emplace(p.fn.control_port());
    const npa::control_request init[] = {
        npa::control_request::make_set_mac(p.mac),
        npa::control_request::make_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast)};
    if (const npa::status st = p.ctl->submit_batch(init); !st) {
        failf("%s: control after attach: %s", p.name, st.reason());
        return false;
    }
    if (p.ctl->mac() != p.mac) {
        failf("%s: the MAC set through the control path does not read back", p.name);
        return false;
    }
    std::printf("%s: attached, link %s %u Mbit/s, health %s\n", p.name, p.plugin.link_up() ? "up" : "down",
                p.plugin.link_speed_mbps(), npa::to_string(p.plugin.health()));
    return true;
}


void print_counters(const char* name, const plugin_t::device_queue_stats& d, const npa::queue_stats& s) {
    std::printf("%s device: tx ucast %" PRIu64 " pkts %" PRIu64 " bytes, err %" PRIu64 " discard %" PRIu64
                "; rx ucast %" PRIu64 " pkts %" PRIu64 " bytes, out-of-buf %" PRIu64 " err %" PRIu64 "\n",
                name, std::uint64_t{d.tx.ucastPktsTxOK}, std::uint64_t{d.tx.ucastBytesTxOK},
                std::uint64_t{d.tx.pktsTxError}, std::uint64_t{d.tx.pktsTxDiscard},
                std::uint64_t{d.rx.ucastPktsRxOK}, std::uint64_t{d.rx.ucastBytesRxOK},
                std::uint64_t{d.rx.pktsRxOutOfBuf}, std::uint64_t{d.rx.pktsRxError});
    std::printf("%s npa:    tx %" PRIu64 " pkts %" PRIu64 " bytes, errors %" PRIu64 "; rx %" PRIu64
                " pkts %" PRIu64 " bytes, dropped %" PRIu64 ", bad completions %" PRIu64 "\n",
                name, s.tx_packets, s.tx_bytes, s.tx_errors, s.rx_packets, s.rx_bytes, s.rx_dropped,
                s.bad_completion);
}


// Takes the link of QEMU device `nic` down and up again through the rig's monitor (a line
// NPA-GUEST-MONITOR on the console) and waits for the plugin to see each change: the device
// raises ECR.LINK in the shared area (vmxnet3_set_link_status), the plugin asks GET_LINK.
void link_flap(port& p, const char* nic) {
    for (const bool up : {false, true}) {
        std::printf("NPA-GUEST-MONITOR set_link %s %s\n", nic, up ? "on" : "off");
        const double t0 = now_s();
        bool seen = false;
        while (now_s() - t0 < 20) {
            if (p.plugin.link_up() == up) {
                seen = true;
                break;
            }
            timespec ms{0, 1000000};
            nanosleep(&ms, nullptr);
        }
        if (!seen) {
            failf("%s: link %s through the monitor, the plugin still says %s after 20 s", p.name,
                  up ? "up" : "down", up ? "down" : "up");
            return;
        }
        std::printf("%s: link %s seen by the plugin after %.2f s (%u Mbit/s)\n", p.name, up ? "up" : "down",
                    now_s() - t0, p.plugin.link_speed_mbps());
    }
}


} // namespace

int main() {
    const std::uint64_t frames = env_u64("NPA_FRAMES", 1000);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double t_start = now_s();

    pci::dma_memory rings;  // outlives both ports (the device DMAs into it until detach)
    port a{"A", {0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}, {}, {}, {}, {}, {}, false};
    port b{"B", {0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}, {}, {}, {}, {}, {}, false};
    run_result ab, ba;
    std::string addr_a, addr_b;
    bool ok = false;
    do {
        const std::vector<std::string> found = find_vmxnet3();
        const char* ea = std::getenv("NPA_VMX_A");
        const char* eb = std::getenv("NPA_VMX_B");
        addr_a = ea != nullptr ? ea : found.size() > 0 ? found[0] : "";
        addr_b = eb != nullptr ? eb : found.size() > 1 ? found[1] : "";
        if (addr_a.empty() || addr_b.empty()) {
            failf("need two vmxnet3 functions (15ad:07b0), found %zu under %s", found.size(), pci::sysfs_devices);
            break;
        }
        pci::dma_memory pa, pb;
        if (!dma_hugepages({&rings, &pa, &pb})) {
            break;
        }
        std::printf("DMA memory: rings at IOVA 0x%" PRIx64 "\n", std::uint64_t{rings.iova_base()});
        pci::dma_arena arena(rings);
        if (!setup(a, addr_a.c_str(), arena, std::move(pa)) || !setup(b, addr_b.c_str(), arena, std::move(pb))) {
            break;
        }
        // Round 1: the frames asked for. Round 2, after detach (QUIESCE_DEV, RESET_DEV) and
        // a new attach: 1,000 more, so that re-attaching to the reset device is exercised.
        ok = true;
        for (int round = 1; round <= 2 && ok; ++round) {
            const std::uint64_t n = round == 1 ? frames : 1000;
            if (!attach(a) || !attach(b)) {
                ok = false;
                break;
            }
            const run_result rab = transfer(a, b, n, window);
            std::printf("round %d: A -> B: %" PRIu64 " sent, %" PRIu64 " received in %.2f s\n", round,
                        rab.sent, rab.received, rab.seconds);
            run_result rba;
            if (rab.received == n) {
                rba = transfer(b, a, n, window);
                std::printf("round %d: B -> A: %" PRIu64 " sent, %" PRIu64 " received in %.2f s\n", round,
                            rba.sent, rba.received, rba.seconds);
            }
            if (round == 1) {
                ab = rab;
                ba = rba;
            }
            // Link events on the real device, where the rig's monitor can reach it (A is nic0
            // in the vmxnet3-pair profile).
            const char* profile = std::getenv("NPA_PROFILE");
            if (round == 2 && profile != nullptr && std::strcmp(profile, "vmxnet3-pair") == 0 &&
                std::getenv("NPA_VMX_A") == nullptr) {
                link_flap(a, "nic0");
            }
            // Counters: the device's (GET_STATS; QEMU zeroes them at ACTIVATE_DEV) against the
            // plugin's (zeroed at attach).
            const auto da = a.plugin.device_stats(0), db = b.plugin.device_stats(0);
            const npa::queue_stats sa = a.plugin.stats(0), sb = b.plugin.stats(0);
            print_counters("A", da, sa);
            print_counters("B", db, sb);
            compare("A tx packets", da.tx.ucastPktsTxOK, sa.tx_packets);
            compare("A tx bytes", da.tx.ucastBytesTxOK, sa.tx_bytes);
            compare("B rx packets", db.rx.ucastPktsRxOK, sb.rx_packets);
            compare("B rx bytes", db.rx.ucastBytesRxOK, sb.rx_bytes);
            compare("B tx packets", db.tx.ucastPktsTxOK, sb.tx_packets);
            compare("B tx bytes", db.tx.ucastBytesTxOK, sb.tx_bytes);
            compare("A rx packets", da.rx.ucastPktsRxOK, sa.rx_packets);
            compare("A rx bytes", da.rx.ucastBytesRxOK, sa.rx_bytes);
            compare("A -> B frames received", n, rab.received);
            compare("B -> A frames received", n, rba.received);
            compare("A bad completions", 0, sa.bad_completion);
            compare("B bad completions", 0, sb.bad_completion);
            detach_and_audit(a);
            detach_and_audit(b);
            ok = failures.empty();
        }
    } while (false);

    // On an early failure: detach whatever is attached, so the device stops before its
    // memory goes away.
    detach_and_audit(a);
    detach_and_audit(b);
    ok = ok && failures.empty();
    const double total = now_s() - t_start;
    std::printf("NPA-GUEST-RESULT {\"test\":\"vmxnet3_guest_test\",\"status\":\"%s\",\"a\":\"%s\",\"b\":\"%s\","
                "\"frames_each_way\":%" PRIu64 ",\"a_to_b\":%" PRIu64 ",\"b_to_a\":%" PRIu64
                ",\"a_to_b_s\":%.2f,\"b_to_a_s\":%.2f,\"seconds\":%.2f,\"first_failure\":\"%s\"}\n",
                ok ? "pass" : "fail", addr_a.c_str(), addr_b.c_str(), frames, ab.received, ba.received,
                ab.seconds, ba.seconds, total, failures.empty() ? "" : json_text(failures.front()).c_str());
    std::printf("vmxnet3_guest_test %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
