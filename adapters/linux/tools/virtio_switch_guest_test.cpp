// virtio_switch_guest_test: the npa switch between a vmxnet3 path and a virtio-net path on
// QEMU's devices, inside a guest (tests/guest/README.md, profile virtio-vmxnet3: virtio-net-pci
// nic0 00:03.0, vmxnet3 nic1 00:04.0, vmxnet3 nic2 00:05.0, one hub).
//
// One shell over two paths: X, the vmxnet3 at 00:04.0 (its MAC and RX mode through the
// vmxnet3 control path), and V, the virtio-net function through the virtio-pci transport.
// The peer is the vmxnet3 at 00:05.0 under a plain vmxnet3 plugin. Numbered frames of
// 60..1514 bytes flow both ways, at most `window` in flight each way, while the shell
// switches X -> V -> X ... NPA_SWITCHES times (default 100) every NPA_GAP_FRAMES frames
// (default 200); the peer holds its TX while a switch is under way. Asserted: the peer
// got every frame the shell sent, in order, none missing (0 TX lost); the shell got every
// frame the peer sent, none missing; nothing damaged; both pools balance after stop().
//
// V's control channel is npa::virtio_net_control over QEMU's control virtqueue: at each
// switch to V the shell replays its MAC (MAC_ADDR_SET), RX mode (PROMISC off, NOMULTI) and
// empty multicast table onto the device its plugin just reset (promiscuous again), and
// every command must be answered OK. V then filters as the vmxnet3 does: what X sends while
// both are attached during a switch reaches V only in the moment between V's attach and the
// replay (the shell's receiver counts those as echoes, its own source MAC, and drops them);
// the peer's frames to the shell's MAC reach both paths then and count as duplicates.
//
// Packed virtqueues (NPA_PACKED=1, profile virtio-packed-vmxnet3: QEMU's device with
// packed=on): the transport offers RING_PACKED, and at every switch to V the device must
// hold it in its driver features (the plugin and the control channel on packed rings);
// without NPA_PACKED it must never hold it.
//
// Output: NPA-GUEST-RESULT {"test":"virtio_switch_guest_test",...}, then PASS or FAIL.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/virtio_net.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/virtio_pci.hpp>
#include <npa/linux/pci/vmxnet3.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/shell.hpp>
#include <npa/sim/test_api.hpp>

#include "guest_test_support.hpp"

#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace npa_guest;
namespace pci = npa::lnx::pci;
using pool_t = npa::fixed_pool<pci::dma_memory>;

using env = shell_env; // the shell over hugepage pools, timed by CLOCK_MONOTONIC
using shell_t = npa::shell<env, npa::vmxnet3_plugin, npa::virtio_net_plugin>;
using peer_api_t = npa::sim::test_api<pool_t>;
using peer_plugin_t = npa::vmxnet3_plugin<peer_api_t>;

constexpr std::uint32_t ring_size = 256;
constexpr std::uint64_t window = 64;
constexpr std::size_t virtio_ring_bytes = npa::virtio_net_queue_bytes(ring_size, ring_size) + 64;
constexpr npa::mac_addr shell_mac{0x02, 0x4e, 0x50, 0x41, 0x00, 0x01};
constexpr npa::mac_addr peer_mac{0x02, 0x4e, 0x50, 0x41, 0x00, 0xfe};
static_assert(2 * pci::vmxnet3_dma_bytes(1, ring_size, ring_size) + virtio_ring_bytes +
                  npa::virtio_net_control::memory_bytes + 4 * 4096 <=
              pci::hugepage_size);

// Between polls of V's controlq: QEMU answers from its own thread.
void control_wait(void*) noexcept {
    const timespec ts{0, 50'000};
    nanosleep(&ts, nullptr);
}

struct traffic {
    traffic(shell_t& s, peer_plugin_t& p, peer_api_t& a) : sh(s), peer(p), papi(a) {}
    shell_t& sh;
    peer_plugin_t& peer;
    peer_api_t& papi;
    bool send = true;
    std::uint64_t s_next = 0, p_next = 0; // numbers sent: shell -> peer, peer -> shell
    in_order at_peer, at_shell;           // what arrived at each end
    std::uint64_t echoes = 0;             // the shell's own frames back through V

    void step() {
        npa::buffer_ref bufs[32];
        if (send && s_next - at_peer.expect < window) {
            const auto want = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(32, window - (s_next - at_peer.expect)));
            const std::uint32_t got = sh.alloc(0, std::span(bufs, want));
            for (std::uint32_t i = 0; i < got; ++i) {
                build(bufs[i].data(), peer_mac, shell_mac, s_next + i);
                bufs[i].set_length(frame_len(s_next + i));
            }
            const std::uint16_t k = sh.tx_burst(0, std::span(bufs, got));
            sh.free(0, std::span<const npa::buffer_ref>(bufs + k, got - k));
            s_next += k;
        }
        const std::uint16_t n = sh.rx_burst(0, bufs);
        for (std::uint16_t i = 0; i < n; ++i) {
            const auto* b = reinterpret_cast<const std::uint8_t*>(bufs[i].data());
            if (bufs[i].length() >= 12 && std::equal(shell_mac.begin(), shell_mac.end(), b + 6)) {
                ++echoes; // our own frame, taken by the promiscuous virtio device
                continue;
            }
            at_shell.take(bufs[i], shell_mac, peer_mac); // a number again: a hub copy
        }
        sh.free(0, std::span<const npa::buffer_ref>(bufs, n));
        (void)sh.poll(0);
        if (send && p_next - at_shell.expect < window && !sh.switching()) {
            p_next += peer_send(papi, peer, shell_mac, peer_mac, p_next,
                                static_cast<std::uint32_t>(window - (p_next - at_shell.expect)));
        }
        (void)peer.tx_reap(0);
        const std::uint16_t m = peer.rx_burst(0, std::span(bufs, 32));
        papi.received(std::span<const npa::buffer_ref>(bufs, m));
        for (std::uint16_t i = 0; i < m; ++i) {
            at_peer.take(bufs[i], peer_mac, shell_mac);
        }
        papi.free(std::span<const npa::buffer_ref>(bufs, m));
    }
    [[nodiscard]] bool in_flight() const {
        return at_peer.expect < s_next || at_shell.expect < p_next;
    }
};

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double t_start = now_s();
    const std::uint64_t switches = env_u64("NPA_SWITCHES", 100);
    const std::uint64_t gap_frames = env_u64("NPA_GAP_FRAMES", 200);
    const bool packed = env_u64("NPA_PACKED", 0) != 0;
    std::uint64_t v_layout_wrong = 0; // switches to V whose negotiated layout was not the asked one

    pci::dma_memory rings; // outlives every device
    pci::vmxnet3_function fx, fp;
    pci::virtio_net_function fv;
    std::optional<pool_t> shell_pool, peer_pool;
    std::optional<peer_api_t> papi;
    peer_plugin_t peer;
    bool peer_attached = false;
    std::optional<shell_t> sh;
    std::optional<traffic> tr;
    std::vector<double> dur_us;
    std::uint64_t sw_done = 0, tx_lost = 0, requeued = 0, to_v = 0;
    std::uint64_t v_tx = 0, v_rx = 0; // what V's plugin carried, summed over its attachments
    std::string addr_v, addr_x, addr_p;
    do {
        const std::vector<std::string> vmx = find_vmxnet3();
        addr_v = find_function(pci::virtio_pci::vendor_id, pci::virtio_pci::device_net_modern);
        addr_x = vmx.size() > 0 ? vmx[0] : "";
        addr_p = vmx.size() > 1 ? vmx[1] : "";
        if (addr_v.empty() || addr_p.empty()) {
            failf("need a virtio-net function and two vmxnet3; found \"%s\", %zu vmxnet3",
                  addr_v.c_str(), vmx.size());
            break;
        }
        pci::dma_memory ms, mp;
        if (!dma_hugepages({&rings, &ms, &mp})) {
            break;
        }
        pci::pci_error e;
        pci::dma_arena arena(rings);
        if (!fx.open(e, addr_x.c_str(), arena, 1, ring_size, ring_size) ||
            !fp.open(e, addr_p.c_str(), arena, 1, ring_size, ring_size) ||
            !fv.open(e, addr_v.c_str(), arena, virtio_ring_bytes)) {
            failf("%s", e.what());
            break;
        }
        fv.offer_packed_ring(packed);
        if (packed && (fv.offered() & npa::virtio::feature::RING_PACKED) == 0) {
            failf("packed rings asked for, the device does not offer RING_PACKED (bit 34): "
                  "QEMU's virtio-net-pci needs packed=on");
            break;
        }
        std::printf("paths: X %s (vmxnet3), V %s (virtio-net, %s rings); peer %s\n", addr_x.c_str(),
                    addr_v.c_str(), packed ? "packed" : "split", addr_p.c_str());
        if (!make_pool("shell", shell_pool, std::move(ms)) || !make_pool("peer", peer_pool, papi, std::move(mp))) {
            break;
        }
        port_ref<pci::vmxnet3_function, peer_api_t, peer_plugin_t> pp{"peer", peer_mac, fp, papi, peer};
        const bool peer_up = attach_vmxnet3(pp, ring_size);
        peer_attached = pp.attached; // attached, though its control step may have failed
        if (!peer_up) {
            break;
        }
        static npa::vmxnet3_control ctl_x(fx.control_port());
        const auto cm = arena.take(npa::virtio_net_control::memory_bytes, 4096);
        if (!cm) {
            failf("DMA memory too small for V's control queue");
            break;
        }
        static npa::virtio_net_control ctl_v({cm.virt, cm.iova, cm.size}, &control_wait);
        fv.window().set_control(ctl_v.hook());
        if (!make_switch_shell(sh, *shell_pool, ring_size)) {
            break;
        }
        const npa::path_id px =
            sh->add_path<npa::vmxnet3_plugin>(fx.window(), npa::control_link::to(ctl_x));
        const npa::path_id pv =
            sh->add_path<npa::virtio_net_plugin>(fv.window(), npa::control_link::to(ctl_v));
        if (!start_shell(*sh, px, "X", shell_mac)) {
            break;
        }
        tr.emplace(*sh, peer, *papi);
        while (sw_done < switches && failures.empty()) {
            const std::uint64_t mark = std::min(tr->at_peer.expect, tr->at_shell.expect);
            const double t_gap = now_s();
            while (std::min(tr->at_peer.expect, tr->at_shell.expect) < mark + gap_frames &&
                   now_s() - t_gap < 10) {
                tr->step();
            }
            if (now_s() - t_gap >= 10) {
                failf("traffic stalled on %s: shell sent %" PRIu64 ", peer got %" PRIu64
                      "; peer sent %" PRIu64 ", shell got %" PRIu64,
                      sh->active_path() == px ? "X" : "V", tr->s_next, tr->at_peer.expect,
                      tr->p_next, tr->at_shell.expect);
                break;
            }
            const npa::path_id to = sh->active_path() == px ? pv : px;
            if (to == px) { // leaving V: what it carried since its attach
                const npa::queue_stats vs = sh->plugin<npa::virtio_net_plugin>(pv)->stats(0);
                v_tx += vs.tx_packets;
                v_rx += vs.rx_packets;
            }
            if (const npa::status st = sh->request_switch(to, npa::switch_reason::operator_request);
                !st) {
                failf("switch %" PRIu64 " to %s refused: %s", sw_done + 1, to == px ? "X" : "V",
                      st.reason());
                break;
            }
            const double t0 = now_s();
            while (sh->service() || sh->switching()) {
                tr->step();
                if (now_s() - t0 > 10) {
                    failf("switch %" PRIu64 " not complete after 10 s", sw_done + 1);
                    break;
                }
            }
            const npa::switch_record& r = sh->history().recent(0);
            if (r.result != npa::errc::ok || sh->active_path() != to) {
                failf("switch %" PRIu64 " failed: %s", sw_done + 1,
                      r.detail != nullptr ? r.detail : "?");
                break;
            }
            dur_us.push_back(static_cast<double>(r.duration_ns) / 1000.0);
            tx_lost += r.tx_lost;
            requeued += r.requeued;
            if (to == pv) {
                ++to_v;
                const bool held = (fv.driver_features() & npa::virtio::feature::RING_PACKED) != 0;
                v_layout_wrong += held != packed ? 1 : 0;
            }
            ++sw_done;
            if (sw_done % 10 == 0) {
                std::printf("%" PRIu64 " switches, %" PRIu64 " frames each way, %.1f s\n", sw_done,
                            std::min(tr->at_peer.expect, tr->at_shell.expect), now_s() - t_start);
            }
        }
        // Stop sending and let what is in flight arrive.
        tr->send = false;
        for (const double t0 = now_s(); tr->in_flight() && now_s() - t0 < 10;) {
            tr->step();
            (void)sh->service();
        }
        std::printf("shell -> peer: %" PRIu64 " sent, %" PRIu64 " received, %" PRIu64
                    " missing, %" PRIu64 " twice; peer -> shell: %" PRIu64 " sent, %" PRIu64
                    " received, %" PRIu64 " missing, %" PRIu64 " hub copies; %" PRIu64
                    " echoes of the shell's own frames; %" PRIu64 " damaged\n",
                    tr->s_next, tr->at_peer.expect, tr->at_peer.missing, tr->at_peer.dups,
                    tr->p_next, tr->at_shell.expect, tr->at_shell.missing, tr->at_shell.dups,
                    tr->echoes, (tr->at_peer.damaged + tr->at_shell.damaged));
        std::printf("%" PRIu64 " switches (%" PRIu64 " to V), %" PRIu64 " TX requeued, %" PRIu64
                    " TX lost; switch p50 %.0f us, max %.0f us; V's control commands answered OK %" PRIu64 "\n",
                    sw_done, to_v, requeued, tx_lost, percentile(dur_us, 0.5),
                    percentile(dur_us, 1.0), ctl_v.commands_ok());
        // Each switch to V replays MAC, RX mode and the multicast table: at least PROMISC off
        // and MAC_ADDR_SET answered OK each time.
        if (ctl_v.commands_ok() < 2 * to_v) {
            failf("V: %" PRIu64 " control commands answered OK over %" PRIu64 " switches to V",
                  ctl_v.commands_ok(), to_v);
        }
        if (tx_lost != 0 || sh->counters(0).tx_lost != 0 || tr->at_peer.missing != 0 ||
            tr->at_peer.expect != tr->s_next) {
            failf("shell -> peer: %" PRIu64 " TX lost, %" PRIu64 " missing at the peer", tx_lost,
                  tr->at_peer.missing);
        }
        if (tr->at_shell.missing != 0 || tr->at_shell.expect != tr->p_next) {
            failf("peer -> shell: %" PRIu64 " missing (of %" PRIu64 ")", tr->at_shell.missing,
                  tr->p_next);
        }
        if (v_layout_wrong != 0) {
            failf("%" PRIu64 " of %" PRIu64 " switches to V negotiated %s rings, not %s", v_layout_wrong, to_v,
                  packed ? "split" : "packed", packed ? "packed" : "split");
        }
        std::printf("V carried %" PRIu64 " frames out and %" PRIu64 " in\n", v_tx, v_rx);
        if (to_v != 0 && (v_tx == 0 || v_rx == 0)) {
            failf("the virtio-net path carried %" PRIu64 " out, %" PRIu64
                  " in: the traffic did not go through it",
                  v_tx, v_rx);
        }
        if ((tr->at_peer.damaged + tr->at_shell.damaged) != 0) {
            failf("%" PRIu64 " damaged frames", (tr->at_peer.damaged + tr->at_shell.damaged));
        }
    } while (false);

    if (sh) {
        stop_and_audit(*sh);
    }
    if (peer_attached) {
        detach_peer_and_audit(peer, *papi);
    }
    const bool ok = failures.empty();
    std::printf("NPA-GUEST-RESULT "
                "{\"test\":\"virtio_switch_guest_test\",\"status\":\"%s\",\"rings\":\"%s\",\"switches\":%" PRIu64
                ",\"switch_us_p50\":%.0f,\"switch_us_max\":%.0f,\"tx_lost\":%" PRIu64
                ",\"requeued\":%" PRIu64 ",\"shell_to_peer\":%" PRIu64 ",\"peer_to_shell\":%" PRIu64
                ",\"seconds\":%.2f,\"first_failure\":\"%s\"}\n",
                ok ? "pass" : "fail", packed ? "packed" : "split", sw_done, percentile(dur_us, 0.5),
                percentile(dur_us, 1.0),
                tx_lost, requeued, tr ? tr->at_peer.expect : 0, tr ? tr->at_shell.expect : 0,
                now_s() - t_start, ok ? "" : json_text(failures.front()).c_str());
    std::printf("virtio_switch_guest_test %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
