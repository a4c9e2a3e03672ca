// switch_guest_test: the npa switch on real devices (QEMU's vmxnet3), inside a guest.
//
// Run as root in the rig's vmxnet3-trio profile (tests/guest/README.md): three vmxnet3 on one
// private hub. The two behind root ports (nic0 01:00.0, nic1 02:00.0) are the shell's paths
// A and B; the one on the root bus (nic2 00:03.0) is the peer, driven by a plain vmxnet3
// plugin. Everything goes through the userspace PCI binding (npa/linux/pci: uio_pci_generic,
// BARs, hugepage DMA memory).
//
//   1. The shell starts on A; its MAC and RX mode are set once through the shell's control
//      path (it replays them on every attach: QEMU's ACTIVATE_DEV restores the permanent MAC).
//   2. Numbered frames (60 .. 1514 bytes, payload checked) flow both ways between the shell
//      and the peer, at most `window` in flight each way, while the shell switches A -> B ->
//      A ... (request_switch by path id, then service() until the switch is through) 100
//      times. Asserted: the peer got every frame the shell sent, in order, none twice; the
//      shell lost no TX; its RX gaps equal the drops the devices counted; none late or
//      damaged; both paths received frames sent to the one MAC; both pools balance after
//      stop(). At a gap the test prints both devices' counters next to the plugins' (and,
//      with NPA_TRACE=1, the steps before it): how the lost bursts of docs/real-devices.md
//      ("Frames lost at the switch") were found.
//      The hub copies every frame to every port, so while both of the shell's devices are
//      up (between the new path's attach and the old one's release) the peer's frames
//      reach both: the shell's receiver counts these copies (numbers it already had) as
//      duplicates and reports them.
//   3. Removal: the shell goes to B, A is the fallback; under traffic the rig unplugs nic1
//      (`NPA-GUEST-MONITOR device_del nic1`); the shell, told by its health check or by the
//      hotplug event (the function's sysfs directory going away), falls back to A. Asserted:
//      no TX lost (what B's device had taken and not confirmed is resent on A, so the peer
//      may see it twice: counted, not a failure), the peer's numbers never go backwards
//      past a gap.
//
// Environment: NPA_STRICT_RX=0 only reports peer frames missing at the shell that no
// device counted (by default they fail the test), NPA_TRACE=1 keeps the last steps (device
// and plugin RX counts) to print at a gap, NPA_PACE=0 lets the peer send during switches, NPA_SWITCHES (default 100), NPA_GAP_FRAMES (frames each way between two
// switches, default 200), NPA_VMX_A / NPA_VMX_B / NPA_VMX_PEER (PCI addresses; default: in
// bus order the peer, A, B), NPA_REMOVE=0 skips step 3.
// Output: one line NPA-GUEST-RESULT {"test":"switch_guest_test",...} (switch durations
// p50/p99/max in microseconds, packets held per switch), then `switch_guest_test PASS|FAIL`.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/linux/pci/vmxnet3.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/shell.hpp>
#include <npa/sim/test_api.hpp>

#include "guest_test_support.hpp"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace npa_guest;
namespace pci = npa::lnx::pci;
using pool_t = npa::fixed_pool<pci::dma_memory>;

using env = shell_env; // the shell over hugepage pools, timed by CLOCK_MONOTONIC
using shell_t = npa::shell<env, npa::vmxnet3_plugin>;
using peer_api_t = npa::sim::test_api<pool_t>;
using peer_plugin_t = npa::vmxnet3_plugin<peer_api_t>;

constexpr std::uint32_t ring_size = 256;
constexpr std::uint64_t window = 64;  // frames in flight each way: well under an RX ring
constexpr npa::mac_addr shell_mac{0x02, 0x4e, 0x50, 0x41, 0x00, 0x01};
constexpr npa::mac_addr peer_mac{0x02, 0x4e, 0x50, 0x41, 0x00, 0xfe};
static_assert(3 * pci::vmxnet3_dma_bytes(1, ring_size, ring_size) + 3 * 4096 <= pci::hugepage_size);

bool exists(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

// Both ends of the traffic, their counters, one step of it.
struct traffic {
    traffic(shell_t& s, peer_plugin_t& p, peer_api_t& a) : sh(s), peer(p), papi(a) {}
    shell_t& sh;
    peer_plugin_t& peer;
    peer_api_t& papi;
    bool send = true;
    bool pace = true;  // the peer holds its TX while the shell switches
    // shell -> peer
    std::uint64_t s_next = 0, p_expect = 0, p_dups = 0, p_gaps = 0, p_lost = 0;
    // peer -> shell
    std::uint64_t p_next = 0, s_expect = 0, s_dups = 0, s_gaps = 0;
    std::uint64_t bad = 0;
    std::uint64_t s_late = 0;                  // peer -> shell frames that came after a later one
    std::vector<bool> s_seen;                  // peer -> shell numbers received
    int gap_reports = 0;
    std::function<void(const char*)> diag;  // prints the devices' state at a gap

    // One round: each side sends what its window allows, receives, reaps. Returns whether
    // anything moved.
    bool step() {
        npa::buffer_ref bufs[32];
        bool moved = false;
        if (send && s_next - p_expect < window) {
            const std::uint32_t want = static_cast<std::uint32_t>(std::min<std::uint64_t>(32, window - (s_next - p_expect)));
            const std::uint32_t got = sh.alloc(0, std::span(bufs, want));
            for (std::uint32_t i = 0; i < got; ++i) {
                build(bufs[i].data(), peer_mac, shell_mac, s_next + i);
                bufs[i].set_length(frame_len(s_next + i));
            }
            const std::uint16_t k = sh.tx_burst(0, std::span(bufs, got));
            sh.free(0, std::span<const npa::buffer_ref>(bufs + k, got - k));
            s_next += k;
            moved = moved || k != 0;
        }
        const std::uint16_t n = sh.rx_burst(0, bufs);
        for (std::uint16_t i = 0; i < n; ++i) {
            if (!check_intact(bufs[i].data(), bufs[i].length(), shell_mac, peer_mac)) {
                ++bad;
                continue;
            }
            const std::uint64_t s = seq_of(bufs[i].data(), bufs[i].length());
            if (s >= s_seen.size()) {
                s_seen.resize(s + 4096);
            }
            if (s < s_expect) {
                if (s_seen[s]) {
                    ++s_dups;  // a hub copy: both devices were up
                } else {
                    ++s_late;
                    --s_gaps;
                }
            } else {
                if (s > s_expect && gap_reports++ < 8) {
                    auto* pl = sh.plugin<npa::vmxnet3_plugin>(sh.active_path());
                    if (sh.switching()) {  // both paths attached: the new one's counters too
                        auto* nw = sh.plugin<npa::vmxnet3_plugin>(sh.target_path());
                        std::printf("  new path %u: device out of buffers %" PRIu64 ", rx ok %" PRIu64 "\n", sh.target_path(),
                                    std::uint64_t{nw->device_stats(0).rx.pktsRxOutOfBuf},
                                    std::uint64_t{nw->device_stats(0).rx.ucastPktsRxOK});
                    }
                    const npa::queue_stats t = sh.queue_totals(0);
                    std::printf("peer -> shell: frame %" PRIu64 " after %" PRIu64 " (%s, active path %u, switches %" PRIu64
                                "; active device: %" PRIu64 " out of buffers; rx_no_buffer %" PRIu64 ", rx_dropped %" PRIu64 ")\n",
                                s, s_expect - 1, sh.switching() ? "switching" : "steady", sh.active_path(),
                                sh.history().switches(),
                                pl != nullptr ? std::uint64_t{pl->device_stats(0).rx.pktsRxOutOfBuf} : 0,
                                t.rx_no_buffer, t.rx_dropped);
                    std::printf("  peer: %" PRIu64 " frames given to its plugin, device sent %" PRIu64 ", %u in flight\n",
                                p_next, std::uint64_t{peer.device_stats(0).tx.ucastPktsTxOK}, peer.tx_in_flight(0));
                    if (diag) {
                        diag("gap");
                    }
                }
                s_gaps += s - s_expect;
                s_expect = s + 1;
            }
            s_seen[s] = true;
        }
        sh.free(0, std::span<const npa::buffer_ref>(bufs, n));
        (void)sh.poll(0);
        moved = moved || n != 0;

        if (send && p_next - s_expect < window && !(pace && sh.switching())) {
            const std::uint32_t want = static_cast<std::uint32_t>(std::min<std::uint64_t>(32, window - (p_next - s_expect)));
            const std::uint32_t got = papi.alloc_tx(std::span(bufs, want));
            for (std::uint32_t i = 0; i < got; ++i) {
                build(bufs[i].data(), shell_mac, peer_mac, p_next + i);
                bufs[i].set_length(frame_len(p_next + i));
            }
            papi.offer(std::span<const npa::buffer_ref>(bufs, got));
            const std::uint16_t k = peer.tx_burst(0, std::span(bufs, got));
            papi.not_accepted(std::span<const npa::buffer_ref>(bufs + k, got - k));
            papi.free(std::span<const npa::buffer_ref>(bufs + k, got - k));
            p_next += k;
            moved = moved || k != 0;
        }
        (void)peer.tx_reap(0);
        const std::uint16_t m = peer.rx_burst(0, std::span(bufs, 32));
        papi.received(std::span<const npa::buffer_ref>(bufs, m));
        for (std::uint16_t i = 0; i < m; ++i) {
            if (!check_intact(bufs[i].data(), bufs[i].length(), peer_mac, shell_mac)) {
                ++bad;
                continue;
            }
            const std::uint64_t s = seq_of(bufs[i].data(), bufs[i].length());
            if (s < p_expect) {
                ++p_dups;
            } else {
                p_gaps += s > p_expect ? 1 : 0;
                p_lost += s - p_expect;
                p_expect = s + 1;
            }
        }
        papi.free(std::span<const npa::buffer_ref>(bufs, m));
        moved = moved || m != 0;
        return moved;
    }

    // Stops sending and lets everything in flight arrive (or time out).
    void settle(double limit_s) {
        send = false;
        const double t0 = now_s();
        while ((p_expect < s_next || s_expect < p_next) && now_s() - t0 < limit_s) {
            (void)step();
            (void)sh.service();
        }
        send = true;
    }
};

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double t_start = now_s();
    const std::uint64_t switches = env_u64("NPA_SWITCHES", 100);
    const std::uint64_t gap_frames = env_u64("NPA_GAP_FRAMES", 200);
    const bool do_remove = env_u64("NPA_REMOVE", 1) != 0;
    const bool strict_rx = env_u64("NPA_STRICT_RX", 1) != 0;
    const bool trace_on = env_u64("NPA_TRACE", 0) != 0;

    pci::dma_memory rings;  // outlives every device (they DMA into it until detach)
    pci::vmxnet3_function fa, fb, fp;
    std::optional<pool_t> shell_pool, peer_pool;
    std::optional<peer_api_t> papi;
    peer_plugin_t peer;
    bool peer_attached = false;
    std::optional<shell_t> sh;
    std::string addr_a, addr_b, addr_p;
    std::vector<double> dur_us, held;
    std::uint64_t dev_oob = 0;
    std::uint64_t sw_done = 0, rx_a = 0, rx_b = 0, dev_drops = 0, tx_lost = 0, requeued = 0;
    std::uint64_t rm_rx_lost = 0, rm_after = 0;
    std::uint64_t rm_lost = 0, rm_requeued = 0, rm_peer_dups = 0;
    double rm_fallback_ms = -1;
    const char* rm_trigger = "none";
    bool removed = false;
    std::optional<traffic> tr;
    do {
        const std::vector<std::string> found = find_vmxnet3();
        const char* ea = std::getenv("NPA_VMX_A");
        const char* eb = std::getenv("NPA_VMX_B");
        const char* ep = std::getenv("NPA_VMX_PEER");
        addr_p = ep != nullptr ? ep : found.size() > 0 ? found[0] : "";
        addr_a = ea != nullptr ? ea : found.size() > 1 ? found[1] : "";
        addr_b = eb != nullptr ? eb : found.size() > 2 ? found[2] : "";
        if (addr_a.empty() || addr_b.empty() || addr_p.empty()) {
            failf("need three vmxnet3 functions (15ad:07b0), found %zu", found.size());
            break;
        }
        pci::dma_memory ms, mp;
        if (!dma_hugepages({&rings, &ms, &mp})) {
            break;
        }
        pci::pci_error e;
        pci::dma_arena arena(rings);
        if (!fa.open(e, addr_a.c_str(), arena, 1, ring_size, ring_size) ||
            !fb.open(e, addr_b.c_str(), arena, 1, ring_size, ring_size) ||
            !fp.open(e, addr_p.c_str(), arena, 1, ring_size, ring_size)) {
            failf("%s", e.what());
            break;
        }
        std::printf("paths: A %s, B %s; peer %s (all on uio_pci_generic)\n", addr_a.c_str(), addr_b.c_str(),
                    addr_p.c_str());
        if (!make_pool("shell", shell_pool, std::move(ms)) || !make_pool("peer", peer_pool, papi, std::move(mp))) {
            break;
        }
        // The peer: a plain plugin, its MAC and RX mode through its own control path.
        port_ref<pci::vmxnet3_function, peer_api_t, peer_plugin_t> pp{"peer", peer_mac, fp, papi, peer};
        const bool peer_up = attach_vmxnet3(pp, ring_size);
        peer_attached = pp.attached; // attached, though its control step may have failed
        if (!peer_up) {
            break;
        }

        // The shell: two paths, each its vmxnet3 and that device's control path.
        static npa::vmxnet3_control ctl_a(fa.control_port()), ctl_b(fb.control_port());
        if (!make_switch_shell(sh, *shell_pool, ring_size)) {
            break;
        }
        const npa::path_id pa = sh->add_path<npa::vmxnet3_plugin>(fa.window(), npa::control_link::to(ctl_a));
        const npa::path_id pb = sh->add_path<npa::vmxnet3_plugin>(fb.window(), npa::control_link::to(ctl_b));
        std::printf("peer attached; shell starting on A\n");
        if (!start_shell(*sh, pa, "A", shell_mac)) {
            break;
        }

        std::printf("shell on A, MAC and RX mode set through its control path\n");
        // 2. Traffic both ways, a switch every gap_frames frames.
        tr.emplace(*sh, peer, *papi);
        static std::vector<std::string> trace;  // the last steps, printed at a gap
        auto snap = [&, pa, pb](const char* label) {
            auto* la = sh->plugin<npa::vmxnet3_plugin>(pa);
            auto* lb = sh->plugin<npa::vmxnet3_plugin>(pb);
            char line[256];
            std::snprintf(line, sizeof line,
                          "%-14s peer sent %6" PRIu64 " shell expects %6" PRIu64 " | A dev ok %4" PRIu64 " plugin %4" PRIu64
                          " | B dev ok %4" PRIu64 " plugin %4" PRIu64 " | flips %" PRIu64 " | %s",
                          label, tr->p_next, tr->s_expect, std::uint64_t{la->device_stats(0).rx.ucastPktsRxOK},
                          la->stats(0).rx_packets, std::uint64_t{lb->device_stats(0).rx.ucastPktsRxOK},
                          lb->stats(0).rx_packets, sh->counters(0).flips, sh->switching() ? "switching" : "steady");
            trace.emplace_back(line);
            if (trace.size() > 24) {
                trace.erase(trace.begin());
            }
        };
        static double t_switch_done = 0;
        static std::uint64_t p_next_at_switch = 0;
        tr->diag = [&, pa, pb](const char* why) {
            const double t = now_s();
            std::printf("DIAG %s: t %.4f, %.4f s after switch %" PRIu64 " completed (peer had sent %" PRIu64
                        " then); active %s, %s; peer sent %" PRIu64 ", shell expects %" PRIu64 "\n",
                        why, t, t - t_switch_done, sh->history().switches(), p_next_at_switch,
                        sh->active_path() == pa ? "A" : "B", sh->switching() ? "switching" : "steady", tr->p_next,
                        tr->s_expect);
            for (const npa::path_id p : {pa, pb}) {
                auto* pl = sh->plugin<npa::vmxnet3_plugin>(p);
                npa::vmxnet3_control& c = p == pa ? ctl_a : ctl_b;
                const npa::mac_addr m = c.mac();
                const auto ds = pl->device_stats(0);
                std::printf("DIAG   %s: MAC %02x:%02x:%02x:%02x:%02x:%02x, device rx ok %" PRIu64 " oob %" PRIu64
                            " err %" PRIu64 " (since its ACTIVATE_DEV), plugin rx %" PRIu64 " dropped %" PRIu64
                            " bad %" PRIu64 " (since attach)\n",
                            p == pa ? "A" : "B", m[0], m[1], m[2], m[3], m[4], m[5],
                            std::uint64_t{ds.rx.ucastPktsRxOK}, std::uint64_t{ds.rx.pktsRxOutOfBuf},
                            std::uint64_t{ds.rx.pktsRxError}, pl->stats(0).rx_packets, pl->stats(0).rx_dropped,
                            pl->stats(0).bad_completion);
            }
            const auto ps = peer.device_stats(0);
            for (const std::string& l : trace) {
                std::printf("TRACE %s\n", l.c_str());
            }
            std::printf("DIAG   peer: device tx ok %" PRIu64 " discard %" PRIu64 " err %" PRIu64 ", rx ok %" PRIu64
                        "; plugin tx %" PRIu64 "\n",
                        std::uint64_t{ps.tx.ucastPktsTxOK}, std::uint64_t{ps.tx.pktsTxDiscard},
                        std::uint64_t{ps.tx.pktsTxError}, std::uint64_t{ps.rx.ucastPktsRxOK}, peer.stats(0).tx_packets);
        };
        tr->pace = env_u64("NPA_PACE", 1) != 0;
        const double t_traffic = now_s();
            while (sw_done < switches && failures.empty()) {
            const std::uint64_t mark = std::min(tr->p_expect, tr->s_expect);
            const double t_gap = now_s();
            double t_moved = now_s();
            std::uint64_t last_rx = tr->s_expect, last_tx = tr->p_next;
            while (std::min(tr->p_expect, tr->s_expect) < mark + gap_frames && now_s() - t_gap < 10) {
                (void)tr->step();
                if (tr->s_expect != last_rx || tr->p_next != last_tx) {
                    if (trace_on) {
                        snap("step");
                    }
                    last_rx = tr->s_expect;
                    last_tx = tr->p_next;
                    t_moved = now_s();
                } else if (now_s() - t_moved > 1 && tr->s_expect < tr->p_next) {
                    if (tr->diag) {
                        tr->diag("stall");
                    }
                    // The peer's whole window went missing: counted as missing (a failure
                    // unless NPA_STRICT_RX=0), so the peer can go on.
                    std::printf("WARNING: peer -> shell: frames %" PRIu64 "..%" PRIu64 " never arrived\n", tr->s_expect,
                                tr->p_next - 1);
                    tr->s_gaps += tr->p_next - tr->s_expect;
                    tr->s_expect = tr->p_next;
                    t_moved = now_s();
                }
            }
            if (now_s() - t_gap >= 10) {
                failf("traffic stalled on %s: shell sent %" PRIu64 ", peer got %" PRIu64 "; peer sent %" PRIu64
                      ", shell got %" PRIu64, sh->active_path() == pa ? "A" : "B", tr->s_next, tr->p_expect,
                      tr->p_next, tr->s_expect);
                break;
            }
            const npa::path_id to = sh->active_path() == pa ? pb : pa;
            // What the device on the way out counted since its ACTIVATE_DEV (which zeroes
            // its counters); paced, nothing reaches it after this.
            dev_oob += sh->plugin<npa::vmxnet3_plugin>(sh->active_path())->device_stats(0).rx.pktsRxOutOfBuf;
            if (const npa::status st = sh->request_switch(to, npa::switch_reason::operator_request); !st) {
                failf("switch %" PRIu64 " to %s refused: %s", sw_done + 1, to == pa ? "A" : "B", st.reason());
                break;
            }
            if (trace_on) {
                snap(to == pa ? "requested A" : "requested B");
            }
            // Traffic goes on while the switch drains and flips; service() completes it.
            const double t0 = now_s();
            while (sh->service() || sh->switching()) {
                if (trace_on) {
                    snap("serviced");
                }
                (void)tr->step();
                if (trace_on) {
                    snap("step (switch)");
                }
                if (now_s() - t0 > 10) {
                    failf("switch %" PRIu64 " not complete after 10 s", sw_done + 1);
                    break;
                }
            }
            t_switch_done = now_s();
            p_next_at_switch = tr->p_next;
            const npa::switch_record& r = sh->history().recent(0);
            if (r.result != npa::errc::ok || sh->active_path() != to) {
                failf("switch %" PRIu64 " failed: %s", sw_done + 1, r.detail != nullptr ? r.detail : "?");
                break;
            }
            dur_us.push_back(static_cast<double>(r.duration_ns) / 1000.0);
            held.push_back(static_cast<double>(r.held));
            tx_lost += r.tx_lost;
            requeued += r.requeued;
            npa::vmxnet3_control& c = to == pa ? ctl_a : ctl_b;
            if (c.mac() != shell_mac) {
                failf("switch %" PRIu64 ": the new path's device does not have the shell's MAC", sw_done + 1);
            }
            ++sw_done;
            if (sw_done % 10 == 0) {
                std::printf("%" PRIu64 " switches, %" PRIu64 " frames each way, %.1f s\n", sw_done,
                            std::min(tr->p_expect, tr->s_expect), now_s() - t_traffic);
            }
        }
        tr->settle(10);
        dev_oob += sh->plugin<npa::vmxnet3_plugin>(sh->active_path())->device_stats(0).rx.pktsRxOutOfBuf;
        const double traffic_s = now_s() - t_traffic;
        rx_a = sh->path_stats(pa, 0).rx_packets;
        rx_b = sh->path_stats(pb, 0).rx_packets;
        dev_drops = dev_oob + sh->path_stats(pa, 0).rx_dropped + sh->path_stats(pb, 0).rx_dropped;
        std::printf("%" PRIu64 " switches in %.2f s: shell -> peer %" PRIu64 " sent, %" PRIu64 " received (%" PRIu64
                    " duplicates, %" PRIu64 " missing); peer -> shell %" PRIu64 " sent, %" PRIu64
                    " received (%" PRIu64 " hub copies, %" PRIu64 " missing, devices counted %" PRIu64
                    " drops); RX on A %" PRIu64 ", on B %" PRIu64 "\n",
                    sw_done, traffic_s, tr->s_next, tr->p_expect, tr->p_dups, tr->p_lost, tr->p_next, tr->s_expect,
                    tr->s_dups, tr->s_gaps, dev_drops, rx_a, rx_b);
        if (sw_done != switches) {
            break;
        }
        if (tr->p_expect != tr->s_next || tr->p_lost != 0 || tr->p_dups != 0) {
            failf("shell -> peer: %" PRIu64 " sent, up to %" PRIu64 " received, %" PRIu64 " missing, %" PRIu64
                  " duplicated or reordered", tr->s_next, tr->p_expect, tr->p_lost, tr->p_dups);
        }
        if (tr->s_late != 0) {
            failf("peer -> shell: %" PRIu64 " frames arrived after a later one", tr->s_late);
        }
        if (tr->s_expect != tr->p_next || (strict_rx && tr->s_gaps != dev_drops)) {
            failf("peer -> shell: %" PRIu64 " sent, up to %" PRIu64 " received, %" PRIu64
                  " missing, the devices counted %" PRIu64 " drops", tr->p_next, tr->s_expect, tr->s_gaps, dev_drops);
        } else if (tr->s_gaps != dev_drops) {
            // Peer frames that no device counted, with NPA_STRICT_RX=0: reported only.
            std::printf("WARNING: peer -> shell: %" PRIu64 " frames missing, the devices counted %" PRIu64 "\n",
                        tr->s_gaps, dev_drops);
        }
        if (tx_lost != 0 || sh->counters(0).tx_lost != 0) {
            failf("the shell lost %" PRIu64 " TX packets", sh->counters(0).tx_lost);
        }
        if (rx_a == 0 || rx_b == 0) {
            failf("frames to the shell's MAC arrived on A %" PRIu64 " and on B %" PRIu64 ": both must", rx_a, rx_b);
        }
        if (tr->bad != 0) {
            failf("%" PRIu64 " frames damaged", tr->bad);
        }
        if (!failures.empty()) {
            break;
        }

        // 3. Removal of B (nic1) while the shell runs on it, under traffic.
        if (!do_remove) {
            break;
        }
        sh->set_fallback(pa);
        if (const npa::status st = sh->switch_to(pb, npa::switch_reason::operator_request); !st) {
            failf("switch to B before the removal: %s", st.reason());
            break;
        }
        const std::string dir_b = std::string(pci::sysfs_devices) + "/" + addr_b;
        const std::uint64_t lost_before = sh->counters(0).tx_lost, requeued_before = sh->counters(0).tx_requeued;
        const std::uint64_t dups_before = tr->p_dups, hist_before = sh->history().count();
        for (int i = 0; i < 2000; ++i) {
            (void)tr->step();
        }
        std::printf("NPA-GUEST-MONITOR device_del nic1\n");
        const double t_del = now_s();
        double t_seen = -1;
        std::uint64_t n = 0;
        while (now_s() - t_del < 30) {
            (void)tr->step();
            const bool busy = sh->service();
            if (sh->history().count() > hist_before && sh->active_path() == pa && !busy && !sh->switching()) {
                removed = true;
                break;
            }
            // The hotplug event: the function left sysfs. The shell is told unless its health
            // check already started the fallback.
            if (++n % 256 == 0 && t_seen < 0 && !exists(dir_b)) {
                t_seen = now_s();
                if (!sh->switching() && sh->active_path() == pb) {
                    rm_trigger = "hotplug event";
                    if (const npa::status st = sh->surprise_removal(); !st) {
                        failf("surprise_removal: %s", st.reason());
                        break;
                    }
                } else {
                    rm_trigger = "health check";
                }
            }
        }
        if (!removed) {
            failf("no fallback to A within 30 s of device_del nic1 (function %s)", exists(dir_b) ? "still there" : "gone");
            break;
        }
        if (std::strcmp(rm_trigger, "none") == 0) {
            rm_trigger = "health check";
        }
        const npa::switch_record& r = sh->history().recent(0);
        rm_fallback_ms = (now_s() - t_del) * 1000.0;
        // Frames the peer had sent into B's ring went with the device: at most one window.
        tr->settle(2);
        rm_rx_lost = tr->p_next - tr->s_expect;
        tr->s_expect = tr->p_next;
        const std::uint64_t after_from = std::min(tr->p_expect, tr->s_expect);
        for (int i = 0; i < 500; ++i) {
            (void)tr->step();
        }
        tr->settle(10);
        rm_after = std::min(tr->p_expect, tr->s_expect) - after_from;
        rm_lost = sh->counters(0).tx_lost - lost_before;
        rm_requeued = sh->counters(0).tx_requeued - requeued_before;
        rm_peer_dups = tr->p_dups - dups_before;
        std::printf("removal: device_del nic1, fallback to A (%s, reason %s) %.0f ms later; %" PRIu64
                    " TX requeued and resent, %" PRIu64 " lost; the peer saw %" PRIu64 " twice, %" PRIu64
                    " missing; %" PRIu64 " peer frames went with B's ring; then %" PRIu64 " frames each way on A\n",
                    rm_trigger, npa::to_string(r.reason), rm_fallback_ms, rm_requeued, rm_lost, rm_peer_dups, tr->p_lost,
                    rm_rx_lost, rm_after);
        if (rm_rx_lost > window) {
            failf("removal: %" PRIu64 " peer frames lost, more than the %" PRIu64 " that can be in flight", rm_rx_lost, window);
        }
        if (rm_after == 0) {
            failf("removal: no traffic on A after the fallback");
        }
        if (rm_lost != 0 || tr->p_lost != 0 || tr->p_expect != tr->s_next) {
            failf("removal: %" PRIu64 " TX lost by the shell, %" PRIu64 " missing at the peer (%" PRIu64 " sent, up to %" PRIu64
                  " received)", rm_lost, tr->p_lost, tr->s_next, tr->p_expect);
        }
        if (tr->s_expect != tr->p_next || (strict_rx && tr->s_gaps != dev_drops)) {
            failf("removal: peer -> shell %" PRIu64 " sent, up to %" PRIu64 " received, %" PRIu64 " missing besides"
                  " what went with B", tr->p_next, tr->s_expect, tr->s_gaps);
        }
    } while (false);

    // Stop: every path detached, every buffer back in its pool.
    if (sh) {
        stop_and_audit(*sh);
    }
    if (peer_attached) {
        detach_peer_and_audit(peer, *papi);
    }
    const bool ok = failures.empty();
    std::printf("NPA-GUEST-RESULT {\"test\":\"switch_guest_test\",\"status\":\"%s\",\"a\":\"%s\",\"b\":\"%s\","
                "\"peer\":\"%s\",\"paced\":%s,\"switches\":%" PRIu64 ",\"switch_us_p50\":%.0f,\"switch_us_p99\":%.0f,"
                "\"switch_us_max\":%.0f,\"held_per_switch_avg\":%.1f,\"held_per_switch_max\":%.0f,"
                "\"requeued\":%" PRIu64 ",\"tx_lost\":%" PRIu64 ",\"shell_to_peer\":%" PRIu64 ",\"peer_to_shell\":%" PRIu64
                ",\"hub_copies\":%" PRIu64 ",\"rx_on_a\":%" PRIu64 ",\"rx_on_b\":%" PRIu64 ",\"rx_missing\":%" PRIu64 ",\"device_rx_drops\":%" PRIu64
                ",\"removal\":%s,\"removal_trigger\":\"%s\",\"removal_fallback_ms\":%.0f,\"removal_requeued\":%" PRIu64
                ",\"removal_tx_lost\":%" PRIu64 ",\"removal_rx_lost\":%" PRIu64 ",\"removal_peer_dups\":%" PRIu64 ",\"seconds\":%.2f,\"first_failure\":\"%s\"}\n",
                ok ? "pass" : "fail", addr_a.c_str(), addr_b.c_str(), addr_p.c_str(), tr && !tr->pace ? "false" : "true", sw_done,
                percentile(dur_us, 0.5), percentile(dur_us, 0.99), percentile(dur_us, 1.0),
                held.empty() ? 0.0 : [&] { double s = 0; for (double h : held) s += h; return s / static_cast<double>(held.size()); }(),
                percentile(held, 1.0), requeued, tx_lost, tr ? tr->p_expect : 0, tr ? tr->s_expect : 0,
                tr ? tr->s_dups : 0, rx_a, rx_b, tr ? tr->s_gaps : 0, dev_drops, removed ? "true" : "false", rm_trigger, rm_fallback_ms,
                rm_requeued, rm_lost, rm_rx_lost, rm_peer_dups, now_s() - t_start,
                ok ? "" : json_text(failures.front()).c_str());
    std::printf("switch_guest_test %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
