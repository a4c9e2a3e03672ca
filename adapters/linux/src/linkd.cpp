// npa-linkd: the daemon's lifecycle and its poll loop. init() opens the TAP, the pool,
// the shell, the lowers' paths, rtnetlink and the control socket and brings the first
// usable lower up; run() polls them all and moves frames between the TAP and the shell.
// The other jobs live beside it: switching and failover (linkd_switch.cpp), the control
// path (linkd_control_path.cpp), the control socket (linkd_control_socket.cpp).
#include "linkd.hpp"

#include "control_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <ranges>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace npa::lnx::tools {

namespace {

// ---- tuning ---------------------------------------------------------------------------
/// Frames moved per queue and direction per loop iteration: enough to amortise the
/// syscalls, small enough that one direction cannot starve the other.
constexpr std::uint32_t burst = 64;
/// RX bursts per queue and loop iteration while large frames received whole end them (one
/// goes up between two bursts): up to about 1 MB of a TCP flow per queue per iteration.
constexpr unsigned rx_rounds = 16;
/// Buffers in the UMEM pool: two attached paths' RX rings (2 x 2048) during a switch,
/// a TX ring (2048), the shell's backlog (4096) under load and TAP bursts, with slack.
constexpr std::uint32_t pool_buffers = 16384;
/// Ring sizes asked of the plugins: a switch's prepare and release steps (an AF_XDP
/// attach loads an XDP program, a detach removes it: tens of ms) stall this thread, and
/// the old path's RX ring must absorb what arrives meanwhile (about 12,000 packets/s
/// of ACKs under an iperf3 run).
constexpr std::uint32_t ring_size = 2048;
/// TAP transmit queue (packets): what the stack may queue while the loop is stalled in
/// a switch's prepare step; the default 1000 overflows at ~25,000 packets/s in 40 ms.
constexpr int tap_txqueuelen = 10000;
/// How long the old path's RX must stay empty before a switch releases it: frames already
/// on their way to the old lower when the peer learns the new one must still be read, and
/// AF_PACKET shows received frames only when their TPACKET_V3 block retires (after
/// packet_rx_retire_ms, later on a loaded machine). Without it, a ping reply that reached
/// the old lower in the last millisecond before the release was lost with its socket.
constexpr std::uint64_t switch_rx_quiet_ns = 2'000'000;
/// A drain that takes longer gives up on the old path (its unconfirmed TX comes back and
/// is resent); above switch_rx_quiet_ns with room for a loaded machine's scheduling.
constexpr std::uint64_t switch_drain_timeout_ns = 50'000'000;
/// Poll timeout when idle (ms): bounds how long a TX completion waits to be reaped.
constexpr int idle_timeout_ms = 20;
/// The same with a PCI lower configured: its RX has no file descriptor to wake the loop,
/// so this bounds the latency a received frame sees when nothing else happens.
constexpr int polled_timeout_ms = 1;
/// PCI lowers: ring sizes (both plugins take 256; two RX rings attached during a switch,
/// a TX ring and the backlog fit the pool below) and the pool, one 2 MiB hugepage of
/// default-sized buffers (2048 bytes of data: a VF's RX buffer is counted in whole KiB).
/// Every hugepage block must be physically contiguous, which one page always is.
constexpr std::uint32_t pci_ring_size = 256;
constexpr std::uint32_t pci_pool_buffers = 896;
/// Hugepages the daemon reserves if fewer are: the pool's and the rings'.
constexpr unsigned pci_hugepages = 2;

/// The shell's pool: a UMEM, or one hugepage of DMA memory with PCI lowers.
result<linkd_pool> make_pool(bool dma) {
    if (!dma) {
        const pool_config c = umem_pool_config(pool_buffers);
        umem_memory mem(linkd_pool::required_bytes(c));
        if (mem.base() == nullptr)
            return {errc::no_memory, "mmap of the UMEM failed"};
        return linkd_pool::create(c, linkd_memory(std::move(mem)));
    }
    pool_config c;
    c.count = pci_pool_buffers;
    static pci::pci_error e; // its text outlives the status that points into it
    if (!pci::reserve_hugepages(e, pci_hugepages))
        return e.as_status();
    pci::dma_memory mem = pci::dma_memory::create(e, linkd_pool::required_bytes(c));
    if (!mem)
        return e.as_status();
    return linkd_pool::create(c, linkd_memory(std::move(mem)));
}

bool iface_running(const char* name, int& ifindex) {
    ifindex = static_cast<int>(::if_nametoindex(name));
    if (ifindex == 0)
        return false;
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    const bool ok = s >= 0 && ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) &&
                    (ifr.ifr_flags & IFF_RUNNING);
    if (s >= 0)
        ::close(s);
    return ok;
}

} // namespace

// ---- environment ----------------------------------------------------------------------

std::uint64_t linkd_env::now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

void linkd_env::log(log_level level, const char* msg) noexcept {
    static constexpr const char* names[] = {"debug", "info", "warning", "error"};
    if (level == log_level::debug)
        return;
    std::fprintf(stderr, "npa-linkd: %s: %s\n", names[static_cast<int>(level)], msg);
}

std::string fmt_us(std::uint64_t ns) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", static_cast<double>(ns) / 1000.0);
    return b;
}

// ---- lifecycle ------------------------------------------------------------------------

linkd::linkd(daemon_config cfg) : cfg_(std::move(cfg)) {}

linkd::~linkd() {
    if (shell_) {
        shell_->stop();
    }
    for (auto& q : pending_tx_) {
        for (auto b : q)
            pool_->free(b);
    }
    for (const int c : clients_)
        ::close(c);
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        ::unlink(cfg_.socket.c_str());
    }
}

bool linkd::init(std::string& err) {
    // 1. The TAP the stack sees.
    tap_options to;
    to.queues = cfg_.queues;
    // Checksum offload from the stack: both plugins finish TCP/UDP checksums before a
    // frame leaves (npa/linux/checksum.hpp). TCP segmentation too: one read takes up to
    // 64 KB of a flow, sent whole to an AF_PACKET lower or cut into MTU-sized segments
    // here (npa/linux/tap_tso.hpp). No UDP fragmentation or segmentation offload.
    to.offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    auto t = tap_device::open(cfg_.tap.c_str(), to);
    if (!t.ok()) {
        err = "TAP '" + cfg_.tap + "': " + t.error().reason();
        return false;
    }
    tap_ = std::move(*t);
    // Persistent: a crash leaves the interface and its configuration; this run may be
    // the one re-attaching to it (its MAC is then kept, below). No carrier until a lower
    // carries traffic.
    if (cfg_.persist) {
        if (const status st = tap_.set_persist(true); !st.ok()) {
            err = "TAP '" + cfg_.tap + "': " + st.reason();
            return false;
        }
    }
    (void)tap_.set_carrier(false);
    // 2. Its MAC and MTU: the configured MAC, else the first the policy allows, else
    //    the TAP's own; the MTU must fit the policy.
    mac_addr mac{};
    if (cfg_.has_mac) {
        mac = cfg_.mac;
    } else if (!cfg_.policy.allowed_macs.empty()) {
        mac = cfg_.policy.allowed_macs.front();
    } else if (auto m = tap_.mac(); m.ok()) {
        mac = *m;
    }
    if (const status st = tap_.set_mac(mac); !st.ok()) {
        err = std::string("TAP '") + cfg_.tap + "': cannot set MAC: " + st.reason();
        return false;
    }
    std::uint32_t mtu = 1500;
    if (auto m = tap_.mtu(); m.ok())
        mtu = *m;
    if (mtu > cfg_.policy.mtu_max || mtu < cfg_.policy.mtu_min) {
        mtu = std::min(std::max(mtu, cfg_.policy.mtu_min), cfg_.policy.mtu_max);
        (void)tap_.set_mtu(mtu);
    }
    // 3. The pool (in a UMEM, or in hugepage memory for PCI lowers), the PCI lowers'
    //    functions (a VF's PF may assign the MAC), and the shell over the pool.
    for (const auto& lc : cfg_.lowers)
        polled_ = polled_ || lc.kind == plugin_kind::pci;
    auto p = make_pool(polled_);
    if (!p.ok()) {
        err = std::string("buffer pool: ") + p.error().reason();
        return false;
    }
    pool_ = std::make_unique<linkd_pool>(std::move(*p));
    pools_.assign(cfg_.queues, pool_.get());
    if (!open_pci_lowers(err, mac))
        return false;
    policy_ = std::make_unique<policy_channel>(cfg_.policy);
    shell_config sc;
    sc.queues.queues = cfg_.queues;
    sc.queues.rx_ring_size = polled_ ? pci_ring_size : ring_size;
    sc.queues.tx_ring_size = polled_ ? pci_ring_size : ring_size;
    sc.queues.mtu = mtu;
    sc.policy.min_dwell_ns = std::uint64_t{cfg_.min_dwell_ms} * 1'000'000u;
    sc.policy.rx_quiet_ns = switch_rx_quiet_ns;
    sc.policy.drain_timeout_ns = switch_drain_timeout_ns;
    sc.inline_switch = true;
    shell_ = std::make_unique<linkd_shell>(env_, std::span<linkd_pool* const>(pools_), sc);
    if (!shell_->init_status().ok()) {
        err = std::string("shell: ") + shell_->init_status().reason();
        return false;
    }
    // The largest MTU every path carries: the plugins' limits, and with PCI lowers the
    // buffers (a frame is one buffer).
    policy_->max_mtu = af_packet_plugin<linkd_shell::api>{}.capabilities().max_mtu;
    if (polled_) {
        policy_->max_mtu = std::min<std::uint32_t>(
            {policy_->max_mtu, std::uint32_t{pool_->config().buf_size} - pool_->config().headroom - 18u,
             vmxnet3_plugin<linkd_shell::api>{}.capabilities().max_mtu,
             igbvf_plugin<linkd_shell::api>{}.capabilities().max_mtu});
    } else {
        policy_->max_mtu = std::min(policy_->max_mtu,
                                    af_xdp_plugin<linkd_shell::api>{}.capabilities().max_mtu);
    }
    if (const status st = shell_->set_mac(mac); !st.ok()) {
        err = std::string("MAC ") + format_mac(mac) + ": " + st.reason();
        return false;
    }
    if (const status st = shell_->set_mtu(mtu); !st.ok()) {
        err = "MTU " + std::to_string(mtu) + ": " + st.reason();
        return false;
    }
    pending_tx_.resize(cfg_.queues);
    tap_rx_.resize(cfg_.queues);
    // 4. Lowers: their current state, then a shell path each (of its plugin kind).
    for (lower_state& l : lowers_) {
        if (l.pci)
            continue; // opened above
        const lower_config& lc = l.cfg;
        l.packet_dev = af_packet_device::named(lc.ifname.c_str());
        l.xdp_dev = af_xdp_device::over(lc.ifname.c_str(), *pool_, lc.mode);
        l.running = iface_running(lc.ifname.c_str(), l.ifindex);
        // A run killed while attached left its XDP program on the lower: remove it now,
        // or it would stay after this run too.
        if (lc.kind == plugin_kind::af_xdp && l.ifindex != 0 &&
            remove_stale_xsk_program(lc.ifname.c_str()) > 0) {
            linkd_env{}.log(
                log_level::warning,
                ("removed the XDP program (xsk_def_prog) an earlier run left on " + lc.ifname)
                    .c_str());
        }
    }
    for (lower_state& l : lowers_) {
        const control_link link = control_link::to(*policy_);
        if (l.pci && l.cfg.device == pci_device::vmxnet3) {
            l.pci->vmx_link.emplace(*policy_, *l.pci->vmx_ctl);
            l.path = shell_->add_path<vmxnet3_plugin>(l.pci->vmx.window(),
                                                      control_link::to(*l.pci->vmx_link));
        } else if (l.pci) {
            l.pci->vf_link.emplace(*policy_, *l.pci->vf_ctl);
            l.path = l.pci->image
                         ? shell_->add_path<npa::image::loaded_plugin>(
                               l.pci->image->dev, control_link::to(*l.pci->vf_link))
                         : shell_->add_path<igbvf_plugin>(l.pci->vf.window(),
                                                          control_link::to(*l.pci->vf_link));
        } else {
            l.path = l.cfg.kind == plugin_kind::af_xdp
                         ? shell_->add_path<af_xdp_plugin>(l.xdp_dev, link)
                         : shell_->add_path<af_packet_plugin>(l.packet_dev, link);
            // Large received TCP frames go to the TAP whole with their GSO header
            // (rx_whole in data_iteration) instead of being cut into the shell's buffers,
            // while the shell is steady (npa/linux/rx_whole_gate.hpp, before every RX pass).
        }
        if (l.path == linkd_shell::no_path) {
            err = "too many lowers: the shell holds " + std::to_string(linkd_shell::max_paths);
            return false;
        }
    }
    rx_whole_gate_.allow(tap_.vnet_hdr());
    // 5. Link events and the control socket.
    if (!mon_.open()) {
        err = "cannot subscribe to rtnetlink link events";
        return false;
    }
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", cfg_.socket.c_str());
    {
        // Only a stale socket of ours is removed; anything else at the path stays.
        std::string note;
        if (std::string why = prepare_socket_path(cfg_.socket, note); !why.empty()) {
            err = std::move(why);
            ::close(listen_fd_);
            listen_fd_ = -1;
            return false;
        }
        if (!note.empty())
            linkd_env{}.log(log_level::warning, note.c_str());
    }
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
        err = "control socket " + cfg_.socket + ": " + std::strerror(errno);
        ::close(listen_fd_);
        listen_fd_ = -1;
        return false;
    }
    ::chmod(cfg_.socket.c_str(), 0600);
    // 6. Up: the first usable lower, in order of preference.
    (void)tap_.set_txqueuelen(tap_txqueuelen);
    if (const status st = tap_.set_up(true); !st.ok()) {
        err = st.reason();
        return false;
    }
    std::string why;
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        if (!lowers_[i].running) {
            why += " " + lowers_[i].cfg.ifname +
                   (lowers_[i].pci || lowers_[i].ifindex != 0 ? ": not up;"
                                                              : ": no such interface;");
            continue;
        }
        const status st = request_switch(i, switch_reason::boot);
        if (st.ok()) {
            while (shell_->switching()) {
                (void)data_iteration();
                (void)shell_->service();
            }
            was_switching_ = false;
            after_switch();
            return true;
        }
        why += " " + lowers_[i].cfg.ifname + ": " + st.reason() + ";";
    }
    err = "no lower interface could be brought up:" + why;
    return false;
}

bool linkd::open_pci_lowers(std::string& err, mac_addr& mac) {
    // Every lower gets its state here; the PCI ones their function, bound and mapped, and
    // their rings in one hugepage of DMA memory shared by all of them.
    pci::pci_error e;
    std::optional<pci::dma_arena> arena;
    // The keys images may be signed by, read once for every 'pci image' lower.
    std::vector<trusted_key> keys;
    const bool images = std::any_of(cfg_.lowers.begin(), cfg_.lowers.end(), [](const auto& lc) {
        return lc.kind == plugin_kind::pci && lc.device == pci_device::image;
    });
    for (const std::string& f : images ? cfg_.trusted_keys : std::vector<std::string>{}) {
        if (!read_trusted_key(f, keys.emplace_back(), err))
            return false;
    }
    for (const auto& lc : cfg_.lowers) {
        lower_state& l = lowers_.emplace_back();
        l.cfg = lc;
        if (lc.kind != plugin_kind::pci)
            continue;
        if (!arena) {
            rings_ = pci::dma_memory::create(e, pci::hugepage_size);
            if (!rings_) {
                err = std::string("PCI lowers' ring memory: ") + e.what();
                return false;
            }
            arena.emplace(rings_);
        }
        // The device decides a 'pci image' lower's image, and the daemon must be able to
        // open that device and run its control path (plugin_images.hpp).
        // (A compiled-in lower whose function is missing is named by its open, below.)
        std::uint32_t device_id = 0;
        std::string id_err;
        const bool have_id = read_pci_device_id(pci::sysfs_devices, lc.ifname, device_id, id_err);
        if (lc.device == pci_device::image && !have_id) {
            err = "lower " + lc.ifname + " (pci image): " + id_err;
            return false;
        }
        if (lc.device == pci_device::image && !image_device_supported(device_id)) {
            image_file f;
            std::string why;
            err = "lower " + lc.ifname + " (pci image): " +
                  (select_image(cfg_.plugin_dir, device_id, f, why)
                       ? f.path + " is an image for " + format_device_id(device_id) +
                             ", but npa-linkd runs images only on 82576 VFs (" +
                             format_device_id(igbvf_window::image_device_id) +
                             "): name the compiled-in plugin for this function"
                       : why);
            return false;
        }
        l.pci = std::make_unique<pci_lower>();
        pci_lower& d = *l.pci;
        const bool vmx = lc.device == pci_device::vmxnet3;
        const bool opened =
            vmx ? d.vmx.open(e, lc.ifname.c_str(), *arena, cfg_.queues, pci_ring_size,
                             pci_ring_size)
                : d.vf.open(e, lc.ifname.c_str(), *arena, cfg_.queues, pci_ring_size,
                            pci_ring_size);
        if (!opened) {
            err = "lower " + lc.ifname + " (" + lc.plugin_name() + "): " + e.what();
            return false;
        }
        if (lc.device == pci_device::image) {
            std::string why;
            if (!load_lower_image(cfg_.plugin_dir, keys, device_id, d.vf.window(),
                                  d.image.emplace(), why)) {
                err = "lower " + lc.ifname + " (pci image): " + why;
                return false;
            }
            linkd_env{}.log(log_level::info,
                            (lc.ifname + ": plugin image " + d.image->file + " (" + d.image->name +
                             ") sha512 " + d.image->digest + " signed by " + d.image->signer)
                                .c_str());
        } else if (have_id) {
            l.image_note = unused_image_note(cfg_.plugin_dir, device_id, to_string(lc.device));
            if (!l.image_note.empty())
                linkd_env{}.log(log_level::info, (lc.ifname + ": " + l.image_note).c_str());
        }
        l.running = true;
        if (vmx) {
            d.vmx_ctl.emplace(d.vmx.control_port());
            continue;
        }
        // A VF: function-level reset, then the mailbox RESET, whose answer carries the
        // MAC the PF assigned (ip link set PF vf N mac M). The PF refuses any other MAC
        // for this VF, so without a MAC of its own the daemon takes the PF's (on every
        // path: the TAP has one MAC); with one, a switch to this VF will be refused.
        (void)d.vf.reset();
        d.vf_ctl.emplace(d.vf.mailbox_port(), &pci::igbvf_mailbox_sleep, nullptr);
        if (const status st = d.vf_ctl->reset(d.assigned); !st.ok()) {
            err = "lower " + lc.ifname + " (pci igbvf): mailbox RESET: " + st.reason();
            return false;
        }
        if (d.assigned == mac_addr{})
            continue;
        if (!cfg_.has_mac) {
            mac = d.assigned;
            l.note = "the PF assigned MAC " + format_mac(d.assigned) + ": in use";
            if (const status st = tap_.set_mac(mac); !st.ok()) {
                err = std::string("TAP '") + cfg_.tap + "': cannot set MAC: " + st.reason();
                return false;
            }
        } else if (d.assigned != mac) {
            l.note = "the PF assigned MAC " + format_mac(d.assigned) + ", not " +
                     format_mac(mac) + ": the PF refuses this path";
        } else {
            l.note = "the PF assigned MAC " + format_mac(d.assigned) + ": in use";
        }
        linkd_env{}.log(d.assigned != mac ? log_level::warning : log_level::info,
                        (lc.ifname + ": " + l.note).c_str());
    }
    return true;
}

// ---- the loop -------------------------------------------------------------------------

bool linkd::tap_to_shell(std::uint16_t q) {
    bool work = false;
    // First what the shell could not take last time (in order), then the TAP.
    auto& pend = pending_tx_[q];
    if (!pend.empty()) {
        const std::uint16_t n = shell_->tx_burst(q, pend);
        pend.erase(pend.begin(), pend.begin() + n);
        work = n != 0;
        if (!pend.empty())
            return work;
    }
    std::array<buffer_ref, burst> bufs{};
    std::uint32_t got = shell_->alloc(q, bufs);
    std::uint32_t filled = 0;
    // Hands the buffers filled so far to the shell; false if it left some (they wait in
    // pend, and nothing may overtake them).
    const auto flush = [&]() -> bool {
        if (filled == 0)
            return true;
        work = true;
        const std::uint16_t n = shell_->tx_burst(q, std::span<buffer_ref>(bufs.data(), filled));
        pend.assign(bufs.begin() + n, bufs.begin() + filled);
        // The buffers not filled yet move to the front.
        std::copy(bufs.begin() + filled, bufs.begin() + got, bufs.begin());
        got -= filled;
        filled = 0;
        return pend.empty();
    };
    // A frame is read whole (up to 64 KB with TSO) into the queue's scratch. A TSO frame
    // goes to the lower whole when the queue is steady on a path that takes GSO frames
    // (tx_gso: AF_PACKET); otherwise, or when that path refuses it, it is handed out one
    // segment per buffer (npa/linux/tap_tso.hpp). What does not fit this burst stays in
    // the scratch for the next.
    tap_gso_scratch& s = tap_rx_[q];
    const std::uint32_t buf_cap = pool_->config().buf_size - pool_->config().headroom;
    bool blocked = false;
    for (std::uint32_t reads = 0; !blocked;) {
        if (!s.holding()) {
            if (reads == burst)
                break;
            const int r = tap_read_gso(tap_.fd(q), s, buf_cap);
            if (r == 0)
                break;
            ++reads;
            if (r < 0) {
                ++tc_.read_dropped;
                continue;
            }
            ++tc_.read;
        }
        if (s.whole_pending()) {
            // Whatever was cut before it goes first.
            if (!flush()) {
                blocked = true;
                break;
            }
            const gso_send r = send_whole(q, s);
            if (r == gso_send::sent) {
                s.sent_whole();
                work = true;
                continue;
            }
            if (r == gso_send::busy) {
                blocked = true;
                break;
            }
            // refused: cut below
        }
        if (filled == got)
            break;
        s.emit(bufs[filled]);
        ++filled;
    }
    work = work || s.holding();
    if (!blocked)
        (void)flush();
    if (got != 0) {
        shell_->free(q, std::span<const buffer_ref>(bufs.data() + filled, got - filled));
    }
    return work;
}

gso_send linkd::send_whole(std::uint16_t q, const tap_gso_scratch& s) {
    const path_id p = shell_->steady_path(q);
    if (p == linkd_shell::no_path)
        return gso_send::refused; // a switch is under way: cut, the shell keeps the order
    return shell_->with_plugin(p, [&](auto& pl) {
        if constexpr (requires { pl.tx_gso(q, s.header(), s.bytes(), 1u); })
            return pl.tx_gso(q, s.header(), s.bytes(), s.segment_count());
        else
            return gso_send::refused; // no GSO on this plugin (AF_XDP, PCI): cut
    });
}

bool linkd::rx_whole(std::uint16_t q) {
    bool any = false;
    for (const lower_state& l : lowers_) {
        any = shell_->with_plugin(l.path, [&](auto& pl) {
            if constexpr (requires { pl.set_rx_whole(true); })
                return pl.rx_whole(q, [&](std::span<const iovec> iov, std::uint32_t segments) {
                    if (!tap_.write_whole(q, iov, segments))
                        return false; // cut by the next rx_burst, as without whole mode
                    ++tc_.written;
                    return true;
                });
            else
                return false;
        }) || any;
    }
    return any;
}

bool linkd::data_iteration() {
    bool work = false;
    // Switches are requested on this thread, between iterations: one sync covers every
    // queue's RX pass below.
    (void)rx_whole_gate_.sync(*shell_, cfg_.queues,
                              lowers_ | std::views::transform(&lower_state::path));
    for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
        work = tap_to_shell(q) || work;
        // RX: what the shell received goes into the stack, a TCP flow's consecutive
        // segments merged into one frame (npa/linux/tap_gro.hpp). A large TCP frame an
        // AF_PACKET lower received (the peer's TSO, the lower's GRO) ends the shell's burst
        // and goes up whole after it, straight from the ring; then the next burst. Only
        // while no switch is under way (the gate, synced above): then it is cut and goes
        // through the shell.
        for (unsigned round = 0; round < rx_rounds; ++round) {
            std::array<buffer_ref, burst> rx{};
            const std::uint16_t n = shell_->rx_burst(q, rx);
            if (n != 0) {
                const std::uint32_t taken =
                    tap_.write_burst(q, std::span<const buffer_ref>(rx.data(), n));
                tc_.written += taken;
                tc_.write_dropped += n - taken;
                shell_->free(q, std::span<const buffer_ref>(rx.data(), n));
                work = true;
            }
            if (!rx_whole(q))
                break;
            work = true;
        }
        if (shell_->poll(q) != 0)
            work = true;
    }
    return work;
}

void linkd::run() {
    std::vector<pollfd> fds;
    bool work = false;
    while (!stop_.load(std::memory_order_relaxed)) {
        fds.clear();
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            if (pending_tx_[q].empty())
                fds.push_back({tap_.fd(q), POLLIN, 0});
            for (const lower_state& l : lowers_) {
                const int fd = shell_->with_plugin(l.path, [q](auto& pl) {
                    if constexpr (requires { pl.fd(q); })
                        return pl.fd(q);
                    else
                        return -1; // a PCI lower: polled
                });
                if (fd >= 0)
                    fds.push_back({fd, POLLIN, 0});
            }
        }
        const std::size_t ctl_at = fds.size();
        fds.push_back({mon_.fd(), POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        for (const int c : clients_)
            fds.push_back({c, POLLIN, 0});
        bool busy_tx = false;
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            busy_tx = busy_tx || !pending_tx_[q].empty();
        }
        const int timeout = work ? 0
                            : (shell_->switching() || busy_tx || announces_left_ != 0)
                                ? 1
                            : polled_ ? polled_timeout_ms
                                      : idle_timeout_ms;
        const int pr = ::poll(fds.data(), fds.size(), timeout);
        if (pr < 0 && errno != EINTR)
            break;

        if (fds[ctl_at].revents & POLLIN) {
            (void)mon_.drain([this](const link_event& ev) { handle_link_event(ev); });
        }
        if (fds[ctl_at + 1].revents & POLLIN)
            accept_client();
        for (std::size_t i = clients_.size(); i-- > 0;) {
            const std::size_t at = ctl_at + 2 + i;
            if (at < fds.size() && fds[at].fd == clients_[i] &&
                (fds[at].revents & (POLLIN | POLLHUP | POLLERR))) {
                handle_client(i);
            }
        }

        work = data_iteration();
        (void)shell_->service();
        supervise_paths();
    }
}

// ---- link events ----------------------------------------------------------------------

void linkd::handle_link_event(const link_event& ev) {
    if (ev.ifindex == tap_.ifindex()) {
        if (ev.what == link_event::kind::changed)
            apply_tap_change(ev);
        return;
    }
    if (apply_vlan_change(ev))
        return;
    handle_lower_event(ev);
}

} // namespace npa::lnx::tools
