// igbvf_guest_test: the igbvf plugin on a real 82576 VF (QEMU's igb), inside a guest whose
// PF is driven by Linux's own igb driver, which answers the VF's mailbox.
//
// Run as root in the rig's igb-sriov profile (tests/guest/README.md): the PF (8086:10c9) and a
// vmxnet3 share a private hub. The program loads igb, brings the PF's interface up, creates
// two VFs (sriov_numvfs), binds VF 0 and the vmxnet3 to uio_pci_generic and maps their BARs
// (npa/linux/pci). The VF is brought up through npa: function-level reset (CTRL.RST, RSTD),
// the mailbox RESET handshake (igbvf_control::reset, the MAC the PF assigned), a MAC of its
// own through SET_MAC_ADDR when the PF assigned none; then the igbvf plugin is attached, and
// the vmxnet3 plugin on the other side, and the PF's carrier is waited for. Frames of 60..1514 bytes go VF -> vmxnet3, then
// vmxnet3 -> VF, each carrying its number and a payload derived from it; every frame that
// arrives is checked. The VF's own counters (VFGPTC/VFGPRC, VFGOTC/VFGORC) are compared with
// the plugin's, and both pools must be balanced after detach. Then, through the PF driver's
// mailbox: SET_VLAN (add), SET_MULTICAST, SET_LPE, and a MAC the PF pinned
// (RTM_SETLINK IFLA_VF_MAC on the PF, `ip link set PF vf 0 mac ...`): after a new reset the
// PF hands that MAC out, and asking for another is refused, as an error the caller sees.
//
// Environment: NPA_FRAMES (frames each way, default 100000).
// Output: progress on stdout, one line NPA-GUEST-RESULT {...}, then `igbvf_guest_test PASS`
// or `FAIL`; exit 0 only on PASS.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/linux/pci/igbvf.hpp>
#include <npa/linux/pci/vmxnet3.hpp>
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/test_api.hpp>

#include "guest_test_support.hpp"

#include <dirent.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace pci = npa::lnx::pci;
using namespace npa_guest;
using pool_t = npa::fixed_pool<pci::dma_memory>;
using api_t = npa::sim::test_api<pool_t>;

constexpr std::uint32_t ring_size = 256;
constexpr std::uint32_t window = 32;  // frames in flight: well under either RX ring
constexpr const char* vf_addr = "0000:01:10.0";
const npa::mac_addr pinned_mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

template <class Plugin, class Fn>
struct port {
    const char* name;
    npa::mac_addr mac;
    Fn fn;
    std::optional<pool_t> pool;
    std::optional<api_t> api;
    Plugin plugin;
    bool attached = false;
};
using vf_port = port<npa::igbvf_plugin<api_t>, pci::igbvf_function>;
using vmx_port = port<npa::vmxnet3_plugin<api_t>, pci::vmxnet3_function>;

// VF bring-up through npa: CTRL.RST and the PF's RSTD, then the mailbox RESET; the MAC the
// PF assigned, or (none assigned) ours through SET_MAC_ADDR.
bool vf_bring_up(vf_port& v, std::optional<npa::igbvf_control>& ctl, npa::mac_addr& assigned) {
    const bool rstd = v.fn.reset();
    std::printf("VF: CTRL.RST written; RSTD/RSTI in V2PMAILBOX within 10 ms: %s\n", rstd ? "yes" : "no");
    ctl.emplace(v.fn.mailbox_port(), &pci::igbvf_mailbox_sleep, nullptr);
    assigned = {};
    if (const npa::status st = ctl->reset(assigned); !st) {
        failf("VF: mailbox RESET: %s", st.reason());
        return false;
    }
    std::printf("VF: reset; the PF assigned %s (%" PRIu64 " message(s) of the PF's own ACKed on the way)\n",
                mac_text(assigned).c_str(), ctl->pf_messages());
    return true;
}

// The VF's statistics registers (82576 VF: good packets/octets received and sent).
struct vf_counters {
    std::uint32_t gprc = 0, gptc = 0, gorc = 0, gotc = 0;
};
vf_counters read_counters(vf_port& v) {
    const npa::igbvf_bar b = v.fn.bar();
    return {b.read(npa::igbvf::reg::vfgprc), b.read(npa::igbvf::reg::vfgptc), b.read(npa::igbvf::reg::vfgorc),
            b.read(npa::igbvf::reg::vfgotc)};
}

// The PF driver's answers to the VF's mailbox requests, and the refusal of a pinned MAC.
void mailbox_checks(vf_port& v, npa::igbvf_control& ctl) {
    if (const npa::status st = ctl.submit(npa::control_request::make_vlan(true, 100)); !st) {
        failf("VF: SET_VLAN add 100: %s", st.reason());
    } else {
        std::printf("VF: VLAN filter 100 added by the PF\n");
    }
    npa::control_request mc;
    mc.op = npa::control_op::set_mcast_list;
    mc.mcast_count = 3;
    mc.mcast[0] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
    mc.mcast[1] = {0x01, 0x00, 0x5e, 0x7f, 0x12, 0x34};
    mc.mcast[2] = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01};
    if (const npa::status st = ctl.submit(mc); !st) {
        failf("VF: SET_MULTICAST of 3: %s", st.reason());
    } else {
        std::printf("VF: 3 multicast addresses set by the PF\n");
    }
    if (const npa::status st = ctl.submit(npa::control_request::make_mtu(1500)); !st) {
        failf("VF: SET_LPE 1522: %s", st.reason());
    }
    const npa::mac_addr own{0x02, 0x00, 0x00, 0x00, 0x01, 0x0c};
    if (const npa::status st = ctl.submit(npa::control_request::make_set_mac(own)); !st) {
        failf("VF: SET_MAC_ADDR %s: %s", mac_text(own).c_str(), st.reason());
    } else {
        std::printf("VF: MAC %s set by the PF\n", mac_text(own).c_str());
    }
    (void)v;
}

} // namespace

int main() {
    const std::uint64_t frames = env_u64("NPA_FRAMES", 100000);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double t_start = now_s();

    pci::dma_memory rings;
    vf_port v{"VF", {0x02, 0x00, 0x00, 0x00, 0x00, 0x0c}, {}, {}, {}, {}, false};
    vmx_port x{"vmxnet3", {0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}, {}, {}, {}, {}, false};
    std::optional<npa::igbvf_control> ctl;
    run_result vx, xv;
    vf_counters c0{}, c1{};
    npa::mac_addr assigned{}, assigned_pinned{};
    bool pinned = false, refused = false;
    std::string refusal;
    do {
        std::string pf, pf_if;
        if (!sriov_pf_up(2, pf, pf_if)) {
            break;
        }
        const std::string vmx = find_function(npa::vmxnet3::pci_vendor_vmware, npa::vmxnet3::pci_device_vmxnet3);
        if (vmx.empty()) {
            failf("need a vmxnet3 (15ad:07b0)");
            break;
        }
        pci::dma_memory pv, px;
        if (!dma_hugepages({&rings, &pv, &px})) {
            break;
        }
        pci::pci_error e;
        pci::dma_arena arena(rings);
        if (!wait_function(vf_addr)) {
            failf("VF %s did not appear", vf_addr);
            break;
        }
        if (!v.fn.open(e, vf_addr, arena, 1, ring_size, ring_size)) {
            failf("VF %s: %s", vf_addr, e.what());
            break;
        }
        if (!x.fn.open(e, vmx.c_str(), arena, 1, ring_size, ring_size)) {
            failf("vmxnet3 %s: %s", vmx.c_str(), e.what());
            break;
        }
        if (!make_pool("VF", v.pool, v.api, std::move(pv)) || !make_pool("vmxnet3", x.pool, x.api, std::move(px))) {
            break;
        }
        std::printf("VF %s and vmxnet3 %s bound to uio_pci_generic, BARs mapped\n", vf_addr, vmx.c_str());
        if (!vf_bring_up(v, ctl, assigned)) {
            break;
        }
        if (assigned == npa::mac_addr{}) {
            if (const npa::status st = ctl->submit(npa::control_request::make_set_mac(v.mac)); !st) {
                failf("VF: SET_MAC_ADDR %s: %s", mac_text(v.mac).c_str(), st.reason());
                break;
            }
        } else {
            v.mac = assigned;
        }
        if (!attach_plugin(v, ring_size) || !attach_vmxnet3(x, ring_size)) {
            break;
        }
        // The PF's link (autonegotiation in QEMU takes a moment after `ip link set up`):
        // traffic before it is up is what QEMU holds back (docs/real-devices.md).
        (void)wait_carrier(pf_if);
        c0 = read_counters(v);
        vx = transfer(v, x, frames, window, true);
        std::printf("VF -> vmxnet3: %" PRIu64 " sent, %" PRIu64 " received (%" PRIu64 " late, %" PRIu64
                    " stalls), %" PRIu64 " lost in %.2f s\n", vx.sent, vx.received, vx.late, vx.stalls, vx.lost, vx.seconds);
        xv = transfer(x, v, frames, window, true);
        std::printf("vmxnet3 -> VF: %" PRIu64 " sent, %" PRIu64 " received (%" PRIu64 " late, %" PRIu64
                    " stalls), %" PRIu64 " lost in %.2f s\n", xv.sent, xv.received, xv.late, xv.stalls, xv.lost, xv.seconds);
        if (xv.received != frames || xv.stalls != 0) {
            // The VF's RX ring as the device left it, around where delivery stopped.
            const npa::igbvf_bar b = v.fn.bar();
            const npa::igbvf_dma_area a = v.fn.window().ring_area(0);
            const auto* w = reinterpret_cast<const volatile std::uint32_t*>(a.virt + ring_size * npa::igbvf::desc_size);
            const npa::queue_stats qs = v.plugin.stats(0);
            std::printf("VF RX: RDH %u RDT %u; npa rx %" PRIu64 " dropped %" PRIu64 " no-buffer %" PRIu64
                        " bad %" PRIu64 " health %s\n", b.read(npa::igbvf::reg::rdh(0)), b.read(npa::igbvf::reg::rdt(0)),
                        qs.rx_packets, qs.rx_dropped, qs.rx_no_buffer, qs.bad_completion, npa::to_string(v.plugin.health()));
            const std::uint32_t at = static_cast<std::uint32_t>(qs.rx_packets % ring_size);
            for (std::uint32_t i = at >= 4 ? at - 4 : 0; i < at + 8 && i < ring_size; ++i) {
                std::printf("  slot %3u: %08x %08x %08x %08x\n", i, w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
            }
        }
        c1 = read_counters(v);
        const npa::queue_stats s = v.plugin.stats(0);
        std::printf("VF device: tx %u pkts %u bytes, rx %u pkts %u bytes; npa: tx %" PRIu64 " pkts %" PRIu64
                    " bytes, rx %" PRIu64 " pkts %" PRIu64 " bytes, bad completions %" PRIu64 "\n",
                    c1.gptc - c0.gptc, c1.gotc - c0.gotc, c1.gprc - c0.gprc, c1.gorc - c0.gorc, s.tx_packets,
                    s.tx_bytes, s.rx_packets, s.rx_bytes, s.bad_completion);
        compare("VF tx packets", c1.gptc - c0.gptc, s.tx_packets);
        compare("VF rx packets", c1.gprc - c0.gprc, s.rx_packets);
        compare("VF -> vmxnet3 lost vs. what neither device counted", vx.lost, vx.sent - x.plugin.stats(0).rx_packets);
        compare("vmxnet3 -> VF lost vs. what neither device counted", xv.lost, xv.sent - s.rx_packets);
        compare("VF bad completions", 0, s.bad_completion);
        if (vx.received + vx.lost != frames || xv.received + xv.lost != frames) {
            failf("not every frame accounted for");
        }
        compare("VF tx octets (frames + 4-byte FCS each)", c1.gotc - c0.gotc, s.tx_bytes + 4 * s.tx_packets);
        compare("VF rx octets (frames + 4-byte FCS each)", c1.gorc - c0.gorc, s.rx_bytes + 4 * s.rx_packets);
        mailbox_checks(v, *ctl);
        std::printf("VF: %" PRIu64 " mailbox round trips, %" PRIu64 " PF messages ACKed\n", ctl->messages(),
                    ctl->pf_messages());
        // What a function-level reset does to the queues the plugin enabled.
        {
            const npa::igbvf_bar b = v.fn.bar();
            b.write(npa::igbvf::reg::ctrl, npa::igbvf::ctrl_rst);
            ::usleep(10000);
            std::printf("VF: after CTRL.RST: TXDCTL 0x%08x RXDCTL 0x%08x TDH %u TDT %u RDH %u RDT %u, "
                        "plugin health %s\n", b.read(npa::igbvf::reg::txdctl(0)), b.read(npa::igbvf::reg::rxdctl(0)),
                        b.read(npa::igbvf::reg::tdh(0)), b.read(npa::igbvf::reg::tdt(0)),
                        b.read(npa::igbvf::reg::rdh(0)), b.read(npa::igbvf::reg::rdt(0)),
                        npa::to_string(v.plugin.health()));
        }
        detach_and_audit(v);
        detach_and_audit(x);
        // A MAC the PF pins: a new reset hands it out, and another is refused.
        const int err = pin_vf_mac(pf_if, 0, pinned_mac);
        if (err != 0) {
            failf("PF %s: pinning VF 0's MAC (IFLA_VF_MAC): %s", pf_if.c_str(), std::strerror(err));
            break;
        }
        pinned = true;
        if (!vf_bring_up(v, ctl, assigned_pinned)) {
            break;
        }
        if (assigned_pinned != pinned_mac) {
            failf("VF: the PF pinned %s, the reset handed out %s", mac_text(pinned_mac).c_str(),
                  mac_text(assigned_pinned).c_str());
        }
        const npa::status st = ctl->submit(npa::control_request::make_set_mac(v.mac));
        refused = st.code() == npa::errc::refused;
        refusal = st ? "accepted" : st.reason();
        std::printf("VF: SET_MAC_ADDR %s with %s pinned: %s (%s)\n", mac_text(v.mac).c_str(),
                    mac_text(pinned_mac).c_str(), st ? "accepted" : "refused", refusal.c_str());
        if (!refused) {
            failf("VF: a MAC other than the pinned one was not refused as errc::refused (%s)", refusal.c_str());
        }
    } while (false);

    detach_and_audit(v);
    detach_and_audit(x);
    const bool ok = failures.empty();
    std::printf("NPA-GUEST-RESULT {\"test\":\"igbvf_guest_test\",\"status\":\"%s\",\"frames_each_way\":%" PRIu64
                ",\"vf_to_vmxnet3\":%" PRIu64 ",\"vmxnet3_to_vf\":%" PRIu64 ",\"lost_vf_to_vmxnet3\":%" PRIu64
                ",\"lost_vmxnet3_to_vf\":%" PRIu64 ",\"late_vmxnet3_to_vf\":%" PRIu64 ",\"stalls_vmxnet3_to_vf\":%" PRIu64 ",\"vf_to_vmxnet3_s\":%.2f,\"vmxnet3_to_vf_s\":%.2f,"
                "\"reset_mac\":\"%s\",\"pinned\":%s,\"pinned_refused\":%s,\"seconds\":%.2f,\"first_failure\":\"%s\"}\n",
                ok ? "pass" : "fail", frames, vx.received, xv.received, vx.lost, xv.lost, xv.late, xv.stalls, vx.seconds, xv.seconds,
                mac_text(assigned).c_str(), pinned ? "true" : "false", refused ? "true" : "false", now_s() - t_start,
                failures.empty() ? "" : json_text(failures.front()).c_str());
    std::printf("igbvf_guest_test %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
