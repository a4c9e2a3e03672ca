// guest_test_support.hpp: what the guest tests of the userspace PCI plugins share (vmxnet3,
// igbvf, the switch; tests/guest/README.md): numbered test frames of 60..1514 bytes with a payload
// derived from the number, their check on arrival, PCI functions found by id, the igb PF
// brought up with its VFs, a paced transfer between two ports driven by npa plugins, failure
// collection, the pools, the shell of the switching scenarios, and the pool audit after
// detach.
//
// A port is any struct with `name`, `mac`, `fn`, `api` (std::optional<npa::sim::test_api<...>>),
// `plugin` and `attached`; port_ref is one over state kept elsewhere.
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/config.hpp>
#include <npa/control.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/status.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/shell.hpp>
#include <npa/sim/test_api.hpp>

#include <dirent.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace npa_guest {

inline constexpr std::uint32_t min_len = 60, max_len = 1514;
inline constexpr std::uint16_t ethertype = 0x88b5;  // IEEE local experimental
inline double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// A number from the environment (the rig turns npa.KEY=VALUE on the kernel command line
/// into NPA_KEY=VALUE), or `dflt` when it is not set.
inline std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::strtoull(v, nullptr, 10) : dflt;
}

// The p-quantile (0..1) of v, nearest rank; 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
    return v[i];
}

inline std::vector<std::string> failures;
inline void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void failf(const char* fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    std::printf("FAIL: %s\n", line);
    if (failures.size() < 16) {
        failures.emplace_back(line);
    }
}

inline std::uint32_t frame_len(std::uint64_t seq) {
    return min_len + static_cast<std::uint32_t>((seq * 7919) % (max_len - min_len + 1));
}
inline std::uint8_t pattern(std::uint64_t seq, std::uint32_t i) {
    return static_cast<std::uint8_t>((seq * 131 + i * 7 + (seq >> 8)) & 0xff);
}

/// Writes frame `seq` (`len` bytes) at p.
inline void build(std::byte* p, std::uint32_t len, const npa::mac_addr& dst, const npa::mac_addr& src,
           std::uint64_t seq) {
    auto* b = reinterpret_cast<std::uint8_t*>(p);
    std::memcpy(b, dst.data(), 6);
    std::memcpy(b + 6, src.data(), 6);
    b[12] = ethertype >> 8;
    b[13] = ethertype & 0xff;
    for (int i = 0; i < 8; ++i) {
        b[14 + i] = static_cast<std::uint8_t>(seq >> (8 * i));
    }
    for (std::uint32_t i = 22; i < len; ++i) {
        b[i] = pattern(seq, i);
    }
}

/// Writes frame `seq` at its own length, frame_len(seq).
inline void build(std::byte* p, const npa::mac_addr& dst, const npa::mac_addr& src, std::uint64_t seq) {
    build(p, frame_len(seq), dst, src, seq);
}

// The sequence number a test frame carries (0 for a runt).
inline std::uint64_t seq_of(const std::byte* p, std::uint32_t len) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    std::uint64_t seq = 0;
    for (int i = 0; len >= 22 && i < 8; ++i) {
        seq |= std::uint64_t{b[14 + i]} << (8 * i);
    }
    return seq;
}

/// Checks a received frame: length, addresses, ethertype and every payload byte against
/// what build() wrote for the number it carries; a failure and false if anything differs.
inline bool check_intact(const std::byte* p, std::uint32_t len, const npa::mac_addr& dst,
                         const npa::mac_addr& src) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    if (len < 22) {
        failf("frame of %u bytes, shorter than its header", len);
        return false;
    }
    const std::uint64_t seq = seq_of(p, len);
    if (len != frame_len(seq)) {
        failf("frame %" PRIu64 ": %u bytes, sent %u", seq, len, frame_len(seq));
        return false;
    }
    if (std::memcmp(b, dst.data(), 6) != 0 || std::memcmp(b + 6, src.data(), 6) != 0 ||
        b[12] != (ethertype >> 8) || b[13] != (ethertype & 0xff)) {
        failf("frame %" PRIu64 ": addresses or ethertype changed", seq);
        return false;
    }
    for (std::uint32_t i = 22; i < len; ++i) {
        if (b[i] != pattern(seq, i)) {
            failf("frame %" PRIu64 ": byte %u is 0x%02x, sent 0x%02x", seq, i, b[i], pattern(seq, i));
            return false;
        }
    }
    return true;
}

/// check_intact() and the frame is number `want`.
inline bool check(const std::byte* p, std::uint32_t len, const npa::mac_addr& dst, const npa::mac_addr& src,
                  std::uint64_t want) {
    if (len >= 22 && seq_of(p, len) != want) {
        failf("frame %" PRIu64 " expected, frame %" PRIu64 " received (%u bytes)", want, seq_of(p, len), len);
        return false;
    }
    return check_intact(p, len, dst, src);
}

/// The PCI addresses of the functions with this vendor:device, in bus order.
inline std::vector<std::string> find_functions(std::uint16_t vendor, std::uint16_t device) {
    namespace pci = npa::lnx::pci;
    std::vector<std::string> out;
    DIR* d = ::opendir(pci::sysfs_devices);
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        pci::pci_function f;
        pci::pci_error err;
        if (f.open(err, e->d_name) && f.vendor() == vendor && f.device() == device) {
            out.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

/// The first function with this vendor:device in bus order, "" if none.
inline std::string find_function(std::uint16_t vendor, std::uint16_t device) {
    const std::vector<std::string> all = find_functions(vendor, device);
    return all.empty() ? std::string{} : all.front();
}

/// The PCI addresses of the vmxnet3 functions (15ad:07b0), in bus order.
inline std::vector<std::string> find_vmxnet3() {
    return find_functions(npa::vmxnet3::pci_vendor_vmware, npa::vmxnet3::pci_device_vmxnet3);
}

inline bool write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    f.flush();
    return static_cast<bool>(f);
}

inline bool path_exists(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

inline std::string mac_text(const npa::mac_addr& m) {
    char t[24];
    std::snprintf(t, sizeof t, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return t;
}

/// The network interface of a PCI function bound to a kernel driver, "" if none.
inline std::string interface_of(const std::string& addr) {
    const std::string dir = std::string(npa::lnx::pci::sysfs_devices) + "/" + addr + "/net";
    DIR* d = ::opendir(dir.c_str());
    std::string name;
    while (d != nullptr) {
        dirent* e = ::readdir(d);
        if (e == nullptr) {
            break;
        }
        if (e->d_name[0] != '.') {
            name = e->d_name;
        }
    }
    if (d != nullptr) {
        ::closedir(d);
    }
    return name;
}

/// Waits up to `limit_s` for PCI function `addr` to appear in sysfs.
inline bool wait_function(const std::string& addr, double limit_s = 5) {
    const std::string dir = std::string(npa::lnx::pci::sysfs_devices) + "/" + addr;
    const double t0 = now_s();
    while (!path_exists(dir)) {
        if (now_s() - t0 > limit_s) {
            return false;
        }
        ::usleep(100000);
    }
    return true;
}

/// The 82576 PF under Linux's igb: loads igb, brings the PF's interface up and creates
/// `vfs` VFs (sriov_numvfs). `pf` and `pf_if` are its PCI address and interface. A
/// failure and false if any of it fails.
inline bool sriov_pf_up(unsigned vfs, std::string& pf, std::string& pf_if) {
    if (std::system("npa-modprobe igb") != 0) {
        failf("igb does not load");
        return false;
    }
    pf = find_function(0x8086, 0x10c9);
    if (pf.empty()) {
        failf("need an 82576 PF (8086:10c9)");
        return false;
    }
    pf_if.clear();
    for (int i = 0; i < 50 && pf_if.empty(); ++i) {
        pf_if = interface_of(pf);
        ::usleep(100000);
    }
    if (pf_if.empty() || std::system(("ip link set dev " + pf_if + " up").c_str()) != 0) {
        failf("PF %s: no interface to bring up", pf.c_str());
        return false;
    }
    const std::string n = std::to_string(vfs);
    if (!write_file(std::string(npa::lnx::pci::sysfs_devices) + "/" + pf + "/sriov_numvfs", n)) {
        failf("PF %s: sriov_numvfs = %s refused", pf.c_str(), n.c_str());
        return false;
    }
    std::printf("PF %s (%s) up, %u VFs\n", pf.c_str(), pf_if.c_str(), vfs);
    return true;
}

// `ip link set <ifname> vf <vf> mac <mac>`: RTM_SETLINK with IFLA_VFINFO_LIST, written here
// (busybox's ip has no `vf`). The PF driver pins that MAC for the VF. Returns the kernel's
// error (0: done).
inline int pin_vf_mac(const std::string& ifname, std::uint32_t vf, const npa::mac_addr& mac) {
    const int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) {
        return errno;
    }
    struct {
        nlmsghdr nh;
        ifinfomsg ifi;
        char attrs[256];
    } req{};
    req.nh.nlmsg_type = RTM_SETLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.nh.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;
    req.ifi.ifi_index = static_cast<int>(::if_nametoindex(ifname.c_str()));
    char* p = req.attrs;
    auto* list = reinterpret_cast<rtattr*>(p);
    list->rta_type = IFLA_VFINFO_LIST | NLA_F_NESTED;
    auto* info = reinterpret_cast<rtattr*>(p + RTA_LENGTH(0));
    info->rta_type = IFLA_VF_INFO | NLA_F_NESTED;
    auto* m = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(info) + RTA_LENGTH(0));
    m->rta_type = IFLA_VF_MAC;
    m->rta_len = RTA_LENGTH(sizeof(ifla_vf_mac));
    ifla_vf_mac vm{};
    vm.vf = vf;
    std::memcpy(vm.mac, mac.data(), 6);
    std::memcpy(RTA_DATA(m), &vm, sizeof vm);
    info->rta_len = static_cast<unsigned short>(RTA_LENGTH(0) + RTA_ALIGN(m->rta_len));
    list->rta_len = static_cast<unsigned short>(RTA_LENGTH(0) + info->rta_len);
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg)) + RTA_ALIGN(list->rta_len);
    int err = 0;
    if (::send(s, &req, req.nh.nlmsg_len, 0) < 0) {
        err = errno;
    } else {
        char buf[512];
        const ssize_t n = ::recv(s, buf, sizeof buf, 0);
        const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
        if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) || h->nlmsg_type != NLMSG_ERROR) {
            err = EPROTO;
        } else {
            err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        }
    }
    ::close(s);
    return err;
}

/// Waits (up to 10 s) for the carrier of interface `ifname`: the PF's link comes up a
/// moment after `ip link set up` (QEMU's autonegotiation), and frames sent to a VF before
/// it are held by QEMU (docs/real-devices.md, igb 6). Returns whether it came.
inline bool wait_carrier(const std::string& ifname) {
    bool carrier = false;
    const double tc = now_s();
    for (int i = 0; i < 100 && !carrier; ++i) {
        std::ifstream f("/sys/class/net/" + ifname + "/carrier");
        std::string line;
        carrier = std::getline(f, line) && line == "1";
        if (!carrier) {
            ::usleep(100000);
        }
    }
    std::printf("PF %s: carrier %s after %.2f s\n", ifname.c_str(), carrier ? "up" : "still down", now_s() - tc);
    return carrier;
}

/// Reserves the guest's hugepages and maps one hugepage of DMA memory into each of `out`;
/// a failure and false if any of it fails.
inline bool dma_hugepages(std::initializer_list<npa::lnx::pci::dma_memory*> out) {
    namespace pci = npa::lnx::pci;
    pci::pci_error e;
    if (!pci::reserve_hugepages(e, 8)) {
        failf("%s", e.what());
        return false;
    }
    for (pci::dma_memory* m : out) {
        *m = pci::dma_memory::create(e, pci::hugepage_size);
        if (!*m) {
            failf("DMA memory: %s", e.what());
            return false;
        }
    }
    return true;
}

/// The environment a guest test's shell runs in: pools over hugepage DMA memory, time from
/// CLOCK_MONOTONIC.
struct shell_env {
    using pool_type = npa::fixed_pool<npa::lnx::pci::dma_memory>;
    static std::uint64_t now_ns() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
    }
};

/// Stops a shell (every path detached, every buffer back) and audits its pool; a failure
/// when it does not balance.
template <class Shell>
void stop_and_audit(Shell& sh) {
    sh.stop();
    const auto au = sh.audit();
    std::printf("shell stopped: pool %" PRIu64 " of %" PRIu64 " back, caller %" PRId64 ", leaked %" PRIu64 "\n",
                au.in_pool, au.pool_size, au.caller, au.leaked);
    if (!au.ok() || au.in_pool != au.pool_size) {
        failf("shell pool not balanced after stop (%" PRIu64 " of %" PRIu64 " back)", au.in_pool, au.pool_size);
    }
}

/// Detaches a plain plugin driven over a test shell API and audits that API's pool.
template <class Plugin, class Api>
void detach_peer_and_audit(Plugin& peer, Api& papi) {
    peer.detach();
    auto unsent = papi.take_unsent();
    papi.free(unsent);
    const npa::sim::buffer_audit au = papi.audit();
    if (!au.balanced() || au.in_pool != au.total) {
        failf("peer pool not balanced after detach (%u of %u back)", au.in_pool, au.total);
    }
}

/// Numbered frames arriving in order at one end of a paced exchange: the next number
/// expected, the numbers that never came, those seen again (hub copies), damaged frames.
struct in_order {
    std::uint64_t expect = 0, missing = 0, dups = 0, damaged = 0;
    /// Takes one received frame sent from `src` to `dst`.
    void take(const npa::buffer_ref& b, const npa::mac_addr& dst, const npa::mac_addr& src) {
        if (!check_intact(b.data(), b.length(), dst, src)) {
            ++damaged;
            return;
        }
        const std::uint64_t s = seq_of(b.data(), b.length());
        if (s < expect) {
            ++dups;
        } else {
            missing += s - expect;
            expect = s + 1;
        }
    }
};

/// Sends up to `want` (at most 32) numbered frames, numbers from `next`, from `src` to `dst`
/// through a plain plugin over a test shell API; returns how many the plugin took (the rest
/// go back to the pool).
template <class Api, class Plugin>
std::uint16_t peer_send(Api& api, Plugin& plugin, const npa::mac_addr& dst, const npa::mac_addr& src,
                        std::uint64_t next, std::uint32_t want) {
    npa::buffer_ref b[32];
    const std::uint32_t got = api.alloc_tx(std::span(b, std::min<std::uint32_t>(want, 32)));
    for (std::uint32_t i = 0; i < got; ++i) {
        build(b[i].data(), dst, src, next + i);
        b[i].set_length(frame_len(next + i));
    }
    api.offer(std::span<const npa::buffer_ref>(b, got));
    const std::uint16_t k = plugin.tx_burst(0, std::span(b, got));
    api.not_accepted(std::span<const npa::buffer_ref>(b + k, got - k));
    api.free(std::span<const npa::buffer_ref>(b + k, got - k));
    return k;
}

struct run_result {
    std::uint64_t sent = 0, received = 0, bytes = 0;
    std::uint64_t lost = 0;  ///< never arrived (only with allow_loss)
    std::uint64_t late = 0;  ///< arrived after the window had moved past them (allow_loss)
    std::uint64_t stalls = 0;  ///< times the window was moved on with frames outstanding
    double seconds = 0;
};

// Sends `frames` frames from `tx` to `rx`, at most `window` in flight, checking each one.
// Frames must arrive in order; with `allow_loss` a frame may be missing: once nothing has
// moved for a while the window moves on (a stall), and a frame that turns up after that
// is checked against its own number and counted as late. `lost` is what never came.
template <class TxPort, class RxPort>
run_result transfer(TxPort& tx, RxPort& rx, std::uint64_t frames, std::uint32_t window,
                    bool allow_loss = false) {
    run_result r;
    const double t0 = now_s();
    std::uint64_t next = 0, expect = 0, idle = 0;
    npa::buffer_ref bufs[32];
    std::vector<bool> arrived(allow_loss ? frames : 0, false);
    while (expect < frames) {
        bool progress = false;
        // send
        if (next < frames && next - expect < window) {
            std::uint32_t want = static_cast<std::uint32_t>(std::min<std::uint64_t>({32, frames - next, window - (next - expect)}));
            const std::uint32_t got = tx.api->alloc_tx(std::span(bufs, want));
            for (std::uint32_t i = 0; i < got; ++i) {
                const std::uint32_t len = frame_len(next + i);
                build(bufs[i].data(), len, rx.mac, tx.mac, next + i);
                bufs[i].set_length(len);
            }
            tx.api->offer(std::span<const npa::buffer_ref>(bufs, got));
            const std::uint16_t k = tx.plugin.tx_burst(0, std::span(bufs, got));
            tx.api->not_accepted(std::span<const npa::buffer_ref>(bufs + k, got - k));
            tx.api->free(std::span<const npa::buffer_ref>(bufs + k, got - k));
            next += k;
            r.sent += k;
            progress = progress || k != 0;
        }
        (void)tx.plugin.tx_reap(0);
        // receive
        const std::uint16_t n = rx.plugin.rx_burst(0, std::span(bufs, 32));
        rx.api->received(std::span<const npa::buffer_ref>(bufs, n));
        for (std::uint16_t i = 0; i < n; ++i) {
            const std::uint64_t got_seq = seq_of(bufs[i].data(), bufs[i].length());
            if (allow_loss && got_seq < expect && !arrived[got_seq]) {
                // A frame the window had moved past: late, checked against its own number.
                if (!check(bufs[i].data(), bufs[i].length(), rx.mac, tx.mac, got_seq)) {
                    rx.api->free(std::span<const npa::buffer_ref>(bufs, n));
                    r.seconds = now_s() - t0;
                    return r;
                }
                arrived[got_seq] = true;
                r.bytes += bufs[i].length();
                ++r.late;
                ++r.received;
                continue;
            }
            if (allow_loss && got_seq > expect && got_seq < frames) {
                expect = got_seq;  // the ones between are missing (so far)
            }
            if (allow_loss && got_seq < frames) {
                arrived[got_seq] = true;
            }
            if (!check(bufs[i].data(), bufs[i].length(), rx.mac, tx.mac, expect)) {
                rx.api->free(std::span<const npa::buffer_ref>(bufs, n));
                r.seconds = now_s() - t0;
                return r;
            }
            r.bytes += bufs[i].length();
            ++expect;
            ++r.received;
        }
        rx.api->free(std::span<const npa::buffer_ref>(bufs, n));
        progress = progress || n != 0;
        idle = progress ? 0 : idle + 1;
        if (allow_loss && idle > 200000 && next > expect &&
            tx.plugin.tx_in_flight(0) == 0) {
            // Everything sent has left the sender and nothing came for a while: the frames
            // still expected were lost on the way.
            ++r.stalls;
            expect = next;
            idle = 0;
            continue;
        }
        if (idle > 2000000) {
            failf("%s -> %s: stalled after %" PRIu64 " sent, %" PRIu64 " received (tx in flight %u, "
                  "rx health %s, tx health %s)", tx.name, rx.name, r.sent, r.received,
                  tx.plugin.tx_in_flight(0), npa::to_string(rx.plugin.health()),
                  npa::to_string(tx.plugin.health()));
            break;
        }
    }
    if (allow_loss) {
        // What turns up late after the last frame was sent.
        for (int spin = 0; spin < 200000 && r.received < frames; ++spin) {
            const std::uint16_t n = rx.plugin.rx_burst(0, std::span(bufs, 32));
            rx.api->received(std::span<const npa::buffer_ref>(bufs, n));
            for (std::uint16_t i = 0; i < n; ++i) {
                const std::uint64_t got_seq = seq_of(bufs[i].data(), bufs[i].length());
                if (got_seq < frames && !arrived[got_seq] &&
                    check(bufs[i].data(), bufs[i].length(), rx.mac, tx.mac, got_seq)) {
                    arrived[got_seq] = true;
                    r.bytes += bufs[i].length();
                    ++r.late;
                    ++r.received;
                }
            }
            rx.api->free(std::span<const npa::buffer_ref>(bufs, n));
        }
        r.lost = frames - r.received;
    }
    // Let the last completions come back.
    for (int i = 0; i < 1000 && tx.plugin.tx_in_flight(0) != 0; ++i) {
        (void)tx.plugin.tx_reap(0);
    }
    r.seconds = now_s() - t0;
    return r;
}

// A failure line as a JSON string body: quotes and backslashes become single quotes.
inline std::string json_text(const std::string& s) {
    std::string o = s;
    for (char& c : o) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
            c = '\'';
        }
    }
    return o;
}

inline void compare(const char* what, std::uint64_t device, std::uint64_t npa_side) {
    if (device != npa_side) {
        failf("%s: device %" PRIu64 ", npa %" PRIu64, what, device, npa_side);
    }
}

// One queue pair of `ring` slots each way, MTU 1500: what every guest test attaches.
inline npa::queue_config one_queue(std::uint32_t ring) {
    npa::queue_config qc;
    qc.queues = 1;
    qc.tx_ring_size = ring;
    qc.rx_ring_size = ring;
    qc.mtu = 1500;
    return qc;
}

// A pool of 896 buffers over `mem` (a fixed_pool over dma_memory) in `pool`; a failure and
// false when the pool cannot be made.
template <class Pool>
bool make_pool(const char* name, std::optional<Pool>& pool, npa::lnx::pci::dma_memory mem) {
    npa::pool_config pc;
    pc.count = 896;
    auto p = Pool::create(pc, std::move(mem));
    if (!p) {
        failf("%s: pool: %s", name, p.error().reason());
        return false;
    }
    pool.emplace(std::move(*p));
    return true;
}

// make_pool(), and the test shell API over the pool in `api`.
template <class Pool, class Api>
bool make_pool(const char* name, std::optional<Pool>& pool, std::optional<Api>& api,
               npa::lnx::pci::dma_memory mem) {
    if (!make_pool(name, pool, std::move(mem))) {
        return false;
    }
    api.emplace(*pool);
    api->set_verbose(true);
    return true;
}

// A port over state its caller keeps, for attach_plugin(), attach_vmxnet3() and
// detach_and_audit(): the switching scenarios' peer, whose plugin and API outlive the block
// that attaches it.
template <class Function, class Api, class Plugin>
struct port_ref {
    const char* name;
    npa::mac_addr mac;
    Function& fn;
    std::optional<Api>& api;
    Plugin& plugin;
    bool attached = false;
};

// The shell of the switching scenarios in `sh`, over `pool`: one_queue(ring), no dwell time
// between switches, and the thread that calls switch_to() serving the queues while it waits
// (inline_switch: the tests are single-threaded). A failure and false when it does not
// initialise.
template <class Shell, class Pool>
bool make_switch_shell(std::optional<Shell>& sh, Pool& pool, std::uint32_t ring) {
    static typename Shell::env_type en;
    Pool* pools[] = {&pool};
    npa::shell_config cfg;
    cfg.queues = one_queue(ring);
    cfg.policy.min_dwell_ns = 0;
    cfg.inline_switch = true;
    sh.emplace(en, pools, cfg);
    if (!sh->init_status()) {
        failf("shell: %s", sh->init_status().reason());
        return false;
    }
    return true;
}

// Starts shell `sh` on path `first` (named `where` in a failure) and gives it `mac` and
// the RX mode unicast + broadcast through its control path, which replays both at every
// attach.
template <class Shell>
bool start_shell(Shell& sh, npa::path_id first, const char* where, const npa::mac_addr& mac) {
    if (const npa::status st = sh.start(first); !st) {
        failf("shell start on %s: %s", where, st.reason());
        return false;
    }
    if (const npa::status st = sh.set_mac(mac); !st) {
        failf("shell set_mac: %s", st.reason());
        return false;
    }
    if (const npa::status st = sh.set_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast); !st) {
        failf("shell rx mode: %s", st.reason());
        return false;
    }
    return true;
}

// Detach (quiesce, buffers back, reset) and audit the pool: every buffer back, no error.
template <class Port>
void detach_and_audit(Port& p) {
    if (!p.attached) {
        return;
    }
    p.plugin.detach();
    p.attached = false;
    auto unsent = p.api->take_unsent();
    p.api->free(unsent);
    const npa::sim::buffer_audit au = p.api->audit();
    std::printf("%s: detached; pool %u of %u buffers back, %" PRIu64 " ownership errors\n", p.name,
                au.in_pool, au.total, au.errors);
    if (!au.balanced() || au.in_pool != au.total) {
        failf("%s: pool not balanced after detach (%u of %u back, %" PRIu64 " errors)", p.name, au.in_pool,
              au.total, au.errors);
        for (const std::string& m : p.api->error_messages()) {
            std::printf("  %s\n", m.c_str());
        }
    }
}

// Attaches port `p`'s plugin to its function's window: one queue pair of `ring` slots each
// way, MTU 1500. A failure is recorded; true when attached.
template <class Port>
bool attach_plugin(Port& p, std::uint32_t ring) {
    if (const npa::status st = p.plugin.attach(*p.api, p.fn.window(), one_queue(ring)); !st) {
        failf("%s: attach: %s", p.name, st.reason());
        return false;
    }
    p.attached = true;
    return true;
}

// Attaches a vmxnet3 port's plugin (attach_plugin), then gives it its MAC and RX mode
// (unicast, broadcast) through the vmxnet3 control path, in the shell's order: QEMU's
// vmxnet3 takes its permanent MAC back at ACTIVATE_DEV (docs/real-devices.md).
template <class Port>
bool attach_vmxnet3(Port& x, std::uint32_t ring) {
    if (!attach_plugin(x, ring)) {
        return false;
    }
    npa::vmxnet3_control ctl(x.fn.control_port());
    const npa::control_request init[] = {
        npa::control_request::make_set_mac(x.mac),
        npa::control_request::make_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast)};
    if (const npa::status st = ctl.submit_batch(init); !st) {
        failf("%s: control after attach: %s", x.name, st.reason());
        return false;
    }
    return true;
}

} // namespace npa_guest
