// npa-linkd: the daemon's event loop, control path and control socket.
#include "linkd.hpp"

#include "control_protocol.hpp"

#include <npa/linux/announce.hpp>

#include <linux/if_packet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
/// Spacing of the repeated post-switch announcements.
constexpr std::uint64_t announce_gap_ns = 20'000'000;
/// An operator switch waits this long for completion before replying "in progress".
constexpr std::uint64_t switch_reply_wait_ns = 3'000'000'000;
constexpr std::size_t max_clients = 16;

std::uint64_t mono_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// The lower's interface still exists (same index, or at least its name).
bool lower_exists(const lower_state& l) {
    char name[IF_NAMESIZE] = {};
    if (l.ifindex != 0 && ::if_indextoname(static_cast<unsigned>(l.ifindex), name) != nullptr)
        return true;
    return ::if_nametoindex(l.cfg.ifname.c_str()) != 0;
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

std::string fmt_us(std::uint64_t ns) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", static_cast<double>(ns) / 1000.0);
    return b;
}

} // namespace

// ---- environment and policy ---------------------------------------------------------

std::uint64_t linkd_env::now_ns() noexcept { return mono_ns(); }

void linkd_env::log(log_level level, const char* msg) noexcept {
    static constexpr const char* names[] = {"debug", "info", "warning", "error"};
    if (level == log_level::debug)
        return;
    std::fprintf(stderr, "npa-linkd: %s: %s\n", names[static_cast<int>(level)], msg);
}

status policy_channel::submit(const control_request& r) const {
    switch (r.op) {
    case control_op::set_mac:
        if (!pol_.allowed_macs.empty()) {
            for (const auto& m : pol_.allowed_macs) {
                if (m == r.mac)
                    return {};
            }
            return {errc::refused, "MAC not allowed by policy"};
        }
        return {};
    case control_op::add_vlan:
        return r.vlan <= max_vlan_id && pol_.vlans.test(r.vlan)
                   ? status{}
                   : status{errc::refused, "VLAN not allowed by policy"};
    case control_op::del_vlan: return {};
    case control_op::set_mtu:
        if (r.mtu < pol_.mtu_min || r.mtu > pol_.mtu_max) {
            return {errc::refused, "MTU outside the policy's range"};
        }
        if (r.mtu > max_mtu) {
            return {errc::not_supported, "MTU larger than the data paths carry"};
        }
        return {};
    default: return {};
    }
}

status policy_channel::submit_batch(std::span<const control_request> b) const {
    for (const auto& r : b) {
        const status st = submit(r);
        if (!st.ok())
            return st;
    }
    return {};
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
    // frame leaves (npa/linux/checksum.hpp). No TSO: neither plugin segments.
    to.offloads = TUN_F_CSUM;
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
    // 3. The pool (in a UMEM) and the shell over it.
    auto p = make_umem_pool(pool_buffers);
    if (!p.ok()) {
        err = std::string("buffer pool: ") + p.error().reason();
        return false;
    }
    pool_ = std::make_unique<umem_pool>(std::move(*p));
    pools_.assign(cfg_.queues, pool_.get());
    policy_ = std::make_unique<policy_channel>(cfg_.policy);
    shell_config sc;
    sc.queues.queues = cfg_.queues;
    sc.queues.rx_ring_size = ring_size;
    sc.queues.tx_ring_size = ring_size;
    sc.queues.mtu = mtu;
    sc.policy.min_dwell_ns = std::uint64_t{cfg_.min_dwell_ms} * 1'000'000u;
    sc.policy.rx_quiet_ns = switch_rx_quiet_ns;
    sc.policy.drain_timeout_ns = switch_drain_timeout_ns;
    sc.inline_switch = true;
    shell_ = std::make_unique<linkd_shell>(env_, std::span<umem_pool* const>(pools_), sc);
    if (!shell_->init_status().ok()) {
        err = std::string("shell: ") + shell_->init_status().reason();
        return false;
    }
    policy_->max_mtu = std::min(af_packet_plugin<linkd_shell::api>{}.capabilities().max_mtu,
                                af_xdp_plugin<linkd_shell::api>{}.capabilities().max_mtu);
    if (const status st = shell_->set_mac(mac); !st.ok()) {
        err = std::string("MAC ") + format_mac(mac) + ": " + st.reason();
        return false;
    }
    if (const status st = shell_->set_mtu(mtu); !st.ok()) {
        err = "MTU " + std::to_string(mtu) + ": " + st.reason();
        return false;
    }
    pending_tx_.resize(cfg_.queues);
    // 4. Lowers: their current state, then a shell path each (of its plugin kind).
    for (const auto& lc : cfg_.lowers) {
        lower_state l;
        l.cfg = lc;
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
        lowers_.push_back(l);
    }
    for (lower_state& l : lowers_) {
        const control_link link = control_link::to(*policy_);
        l.path = l.cfg.kind == plugin_kind::af_xdp
                     ? shell_->add_path<af_xdp_plugin>(l.xdp_dev, link)
                     : shell_->add_path<af_packet_plugin>(l.packet_dev, link);
        if (l.path == linkd_shell::no_path) {
            err = "too many lowers: the shell holds " + std::to_string(linkd_shell::max_paths);
            return false;
        }
    }
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
                   (lowers_[i].ifindex == 0 ? ": no such interface;" : ": not up;");
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

// ---- switching ------------------------------------------------------------------------

int linkd::lower_of_path(std::uint8_t path) const noexcept {
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        if (lowers_[i].path == path)
            return static_cast<int>(i);
    }
    return -1;
}

status linkd::request_switch(std::size_t li, switch_reason why) {
    lower_state& l = lowers_[li];
    const status st = shell_->request_switch(l.path, why);
    if (st.ok()) {
        // The new path is attached and its RX posted: tell the network now, so replies
        // already head for it while the old path drains.
        send_raw_announce(l);
        was_switching_ = true;
    }
    return st;
}

void linkd::failover(switch_reason why) {
    if (shell_->switching()) {
        failover_pending_ = true;
        failover_reason_ = why;
        return;
    }
    const int active = lower_of_path(shell_->active_path());
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        if (static_cast<int>(i) == active || !lowers_[i].running)
            continue;
        const status st = request_switch(i, why);
        if (st.ok()) {
            failover_pending_ = false;
            return;
        }
        linkd_env{}.log(log_level::warning, (std::string("failover to ") + lowers_[i].cfg.ifname +
                                             " failed: " + st.reason())
                                                .c_str());
    }
    failover_pending_ = true; // nothing usable now: retry when a lower comes up
    failover_reason_ = why;
    (void)tap_.set_carrier(false); // the stack sees the link down, not a black hole
}

void linkd::after_switch() {
    const auto& h = shell_->history();
    if (h.size() != 0) {
        const switch_record& r = h.recent(0);
        const int li = lower_of_path(r.to);
        if (r.result == errc::ok)
            (void)tap_.set_carrier(true);
        if (li >= 0 && r.result == errc::ok)
            ++lowers_[static_cast<std::size_t>(li)].switches_to;
        char line[256];
        std::snprintf(
            line, sizeof line,
            "switch %llu: %s -> %s (%s): %s, %s us, held %llu, requeued %llu, lost %llu",
            static_cast<unsigned long long>(r.seq),
            r.from == linkd_shell::no_path || lower_of_path(r.from) < 0
                ? "none"
                : lowers_[static_cast<std::size_t>(lower_of_path(r.from))].cfg.ifname.c_str(),
            li >= 0 ? lowers_[static_cast<std::size_t>(li)].cfg.ifname.c_str() : "?",
            to_string(r.reason), r.result == errc::ok ? "ok" : r.detail,
            fmt_us(r.duration_ns).c_str(), static_cast<unsigned long long>(r.held),
            static_cast<unsigned long long>(r.requeued),
            static_cast<unsigned long long>(r.tx_lost));
        linkd_env{}.log(log_level::info, line);
    }
    announce();
    announces_left_ = announce_count - 1;
    next_announce_ns_ = mono_ns() + announce_gap_ns;
}

void linkd::announce() {
    if (shell_->active_path() == linkd_shell::no_path)
        return;
    std::array<buffer_ref, 1> b{};
    if (shell_->alloc(0, b) != 1)
        return;
    const std::size_t n = build_announce(shell_->desired_control().mac(),
                                         std::span<std::byte>(b[0].data(), b[0].capacity()));
    b[0].set_length(static_cast<std::uint32_t>(n));
    if (shell_->tx_burst(0, b) == 1) {
        ++tc_.announces;
    } else {
        shell_->free(0, b);
    }
}

void linkd::send_raw_announce(const lower_state& l) {
    const int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (s < 0)
        return;
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(l.cfg.ifname.c_str()));
    sll.sll_halen = 6;
    std::memset(sll.sll_addr, 0xff, 6);
    std::array<std::byte, announce_frame_len> f{};
    const std::size_t n = build_announce(shell_->desired_control().mac(), f);
    if (::sendto(s, f.data(), n, 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll) > 0) {
        ++tc_.announces;
    }
    ::close(s);
}

// ---- the loop -------------------------------------------------------------------------

bool linkd::data_iteration() {
    bool work = false;
    for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
        // TX: first what the shell could not take last time (in order), then the TAP.
        auto& pend = pending_tx_[q];
        if (!pend.empty()) {
            const std::uint16_t n = shell_->tx_burst(q, pend);
            pend.erase(pend.begin(), pend.begin() + n);
            work = work || n != 0;
        }
        if (pend.empty()) {
            std::array<buffer_ref, burst> bufs{};
            const std::uint32_t got = shell_->alloc(q, bufs);
            std::uint32_t filled = 0;
            for (std::uint32_t i = 0; i < got; ++i) {
                const int r = tap_.read_frame(q, bufs[filled]);
                if (r == 0)
                    break;
                if (r < 0) {
                    ++tc_.read_dropped;
                    continue; // reuse the buffer for the next frame
                }
                ++filled;
                ++tc_.read;
            }
            if (filled < got) {
                shell_->free(q, std::span<const buffer_ref>(bufs.data() + filled, got - filled));
            }
            if (filled != 0) {
                work = true;
                const std::uint16_t n =
                    shell_->tx_burst(q, std::span<buffer_ref>(bufs.data(), filled));
                pend.assign(bufs.begin() + n, bufs.begin() + filled);
            }
        }
        // RX: what the shell received goes into the stack.
        std::array<buffer_ref, burst> rx{};
        const std::uint16_t n = shell_->rx_burst(q, rx);
        for (std::uint16_t i = 0; i < n; ++i) {
            if (tap_.write_frame(q, rx[i])) {
                ++tc_.written;
            } else {
                ++tc_.write_dropped;
            }
        }
        if (n != 0) {
            shell_->free(q, std::span<const buffer_ref>(rx.data(), n));
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
                const int fd = shell_->with_plugin(l.path, [q](auto& pl) { return pl.fd(q); });
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
                                : idle_timeout_ms;
        const int pr = ::poll(fds.data(), fds.size(), timeout);
        if (pr < 0 && errno != EINTR)
            break;

        if (fds[ctl_at].revents & POLLIN) {
            (void)mon_.drain([this](const link_event& ev) { handle_link_event(ev); });
        }
        if (fds[ctl_at + 1].revents & POLLIN) {
            const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0) {
                unsigned uid = 0;
                const bool known = peer_uid(c, uid);
                if (!known || !peer_trusted(uid)) {
                    // SO_PEERCRED: only root and the daemon's own user may control it.
                    ++tc_.refused_clients;
                    const std::string e =
                        json_error(known ? "uid " + std::to_string(uid) +
                                               " may not control npa-linkd (root or its own "
                                               "user only)"
                                         : std::string("the kernel did not name the peer")) +
                        "\n";
                    (void)!::write(c, e.data(), e.size());
                    ::close(c);
                } else if (clients_.size() >= max_clients) {
                    const std::string e = json_error("too many control connections") + "\n";
                    (void)!::write(c, e.data(), e.size());
                    ::close(c);
                } else {
                    clients_.push_back(c);
                    client_buf_.emplace_back();
                }
            }
        }
        for (std::size_t i = clients_.size(); i-- > 0;) {
            const std::size_t at = ctl_at + 2 + i;
            if (at < fds.size() && fds[at].fd == clients_[i] &&
                (fds[at].revents & (POLLIN | POLLHUP | POLLERR))) {
                handle_client(i);
            }
        }

        work = data_iteration();
        (void)shell_->service();
        if (was_switching_ && !shell_->switching()) {
            was_switching_ = false;
            after_switch();
        }
        errc h = errc::ok;
        const std::uint8_t active = shell_->active_path();
        if (active != linkd_shell::no_path)
            h = shell_->with_plugin(active, [](auto& pl) { return pl.health(); });
        if (failover_pending_ && !shell_->switching()) {
            // A second report of the same failure (the plugin's and rtnetlink's) may have
            // arrived while the first one's switch ran: once the path now active is
            // healthy there is nothing left to fail over from.
            const int li = lower_of_path(active);
            if (li >= 0 && lowers_[static_cast<std::size_t>(li)].running && h == errc::ok) {
                failover_pending_ = false;
                (void)tap_.set_carrier(true); // the active lower itself came back
            } else {
                failover(failover_reason_);
            }
        }
        // The active plugin noticed its device is gone or down before rtnetlink told us.
        if (!shell_->switching() && !failover_pending_) {
            if (h != errc::ok) {
                const int li = lower_of_path(active);
                const bool gone = h == errc::removed ||
                                  (li >= 0 && !lower_exists(lowers_[static_cast<std::size_t>(li)]));
                failover(gone ? switch_reason::surprise_removal : switch_reason::device_error);
            }
        }
        if (announces_left_ != 0 && mono_ns() >= next_announce_ns_ && !shell_->switching()) {
            announce();
            --announces_left_;
            next_announce_ns_ = mono_ns() + announce_gap_ns;
        }
    }
}

// ---- link events ---------------------------------------------------------------------

void linkd::handle_link_event(const link_event& ev) {
    if (ev.ifindex == tap_.ifindex()) {
        if (ev.what == link_event::kind::changed)
            apply_tap_change(ev);
        return;
    }
    // VLAN interfaces stacked on the TAP: the stack asks for a VLAN filter.
    if (ev.is_vlan && ev.link == tap_.ifindex() && ev.what == link_event::kind::changed) {
        for (const int v : vlan_ifindex_) {
            if (v == ev.ifindex)
                return;
        }
        const status st = shell_->add_vlan(ev.vlan_id);
        char line[160];
        if (st.ok()) {
            ++tc_.control_applied;
            vlan_ifindex_.push_back(ev.ifindex);
            vlan_id_.push_back(ev.vlan_id);
            std::snprintf(line, sizeof line, "VLAN %u on %s: applied", ev.vlan_id, tap_.name());
        } else {
            ++tc_.control_refused;
            (void)link_monitor::delete_link(ev.ifindex);
            std::snprintf(line, sizeof line, "VLAN %u on %s: refused (%s); interface %s removed",
                          ev.vlan_id, tap_.name(), st.reason(), ev.ifname);
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
        return;
    }
    for (std::size_t i = 0; i < vlan_ifindex_.size(); ++i) {
        if (vlan_ifindex_[i] == ev.ifindex && ev.what == link_event::kind::removed) {
            (void)shell_->del_vlan(vlan_id_[i]);
            vlan_ifindex_.erase(vlan_ifindex_.begin() + static_cast<std::ptrdiff_t>(i));
            vlan_id_.erase(vlan_id_.begin() + static_cast<std::ptrdiff_t>(i));
            return;
        }
    }
    // Lowers: by index, or by name for one that (re)appeared.
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        lower_state& l = lowers_[i];
        const bool match = (l.ifindex != 0 && l.ifindex == ev.ifindex) ||
                           (ev.what == link_event::kind::changed && l.cfg.ifname == ev.ifname);
        if (!match)
            continue;
        const bool was = l.running;
        if (ev.what == link_event::kind::removed) {
            l.ifindex = 0;
            l.running = false;
        } else {
            l.ifindex = ev.ifindex;
            l.running = ev.running();
        }
        const int active = lower_of_path(shell_->active_path());
        if (was && !l.running && static_cast<int>(i) == active) {
            // `ip link del` reports the interface down first, then gone: by the time the
            // first report is read the interface is usually gone already.
            const bool gone = ev.what == link_event::kind::removed || !lower_exists(l);
            linkd_env{}.log(
                log_level::warning,
                (l.cfg.ifname + (gone ? " removed" : " went down") + ": switching away").c_str());
            failover(gone ? switch_reason::surprise_removal : switch_reason::device_error);
        } else if (!was && l.running) {
            if (failover_pending_) {
                failover(failover_reason_);
            } else if (cfg_.failback && active >= 0 && static_cast<int>(i) < active &&
                       !shell_->switching()) {
                (void)request_switch(i, switch_reason::policy);
            }
        }
        return;
    }
}

void linkd::apply_tap_change(const link_event& ev) {
    const auto& want = shell_->desired_control();
    char line[200];
    if (ev.has_mac && ev.mac != want.mac()) {
        const mac_addr old = want.mac();
        const status st = shell_->set_mac(ev.mac);
        if (st.ok()) {
            ++tc_.control_applied;
            std::snprintf(line, sizeof line, "MAC of %s -> %s: applied", tap_.name(),
                          format_mac(ev.mac).c_str());
            announce();
        } else {
            ++tc_.control_refused;
            (void)tap_.set_mac(old);
            std::snprintf(line, sizeof line, "MAC of %s -> %s: refused (%s), reverted to %s",
                          tap_.name(), format_mac(ev.mac).c_str(), st.reason(),
                          format_mac(old).c_str());
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
    }
    if (ev.mtu != 0 && ev.mtu != want.mtu()) {
        const std::uint32_t old = want.mtu();
        const status st = shell_->set_mtu(ev.mtu);
        if (st.ok()) {
            ++tc_.control_applied;
            std::snprintf(line, sizeof line, "MTU of %s -> %u: applied", tap_.name(), ev.mtu);
        } else {
            ++tc_.control_refused;
            (void)tap_.set_mtu(old);
            std::snprintf(line, sizeof line, "MTU of %s -> %u: refused (%s), reverted to %u",
                          tap_.name(), ev.mtu, st.reason(), old);
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
    }
}

// ---- control socket ------------------------------------------------------------------

void linkd::handle_client(std::size_t i) {
    char buf[512];
    const ssize_t n = ::read(clients_[i], buf, sizeof buf);
    bool close_it = n <= 0;
    if (n > 0) {
        std::string& acc = client_buf_[i];
        acc.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = acc.find('\n')) != std::string::npos) {
            const std::string line = acc.substr(0, nl);
            acc.erase(0, nl + 1);
            const std::string reply = handle_request(line) + "\n";
            if (::write(clients_[i], reply.data(), reply.size()) < 0) {
                close_it = true;
                break;
            }
        }
        if (acc.size() > max_request_line) {
            ++tc_.bad_requests;
            const std::string reply =
                json_error("request longer than " + std::to_string(max_request_line) + " bytes") +
                "\n";
            (void)!::write(clients_[i], reply.data(), reply.size());
            close_it = true;
        }
    }
    if (close_it) {
        ::close(clients_[i]);
        clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
        client_buf_.erase(client_buf_.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

std::string linkd::handle_request(const std::string& line) {
    request r;
    std::string err;
    if (!parse_request(line, r, err)) {
        ++tc_.bad_requests;
        return json_error(err);
    }
    switch (r.cmd) {
    case command::ping: return "{\"ok\":true}";
    case command::status: return render_status(r.text);
    case command::stats: return render_stats(r.text);
    case command::switch_to: return do_switch(r.arg, r.text);
    }
    return json_error("unhandled command");
}

std::string linkd::do_switch(const std::string& target, bool text) {
    const int active = lower_of_path(shell_->active_path());
    int to = -1;
    if (target == "next") {
        for (std::size_t k = 1; k <= lowers_.size(); ++k) {
            const std::size_t i =
                (static_cast<std::size_t>(active < 0 ? 0 : active) + k) % lowers_.size();
            if (static_cast<int>(i) != active && lowers_[i].running) {
                to = static_cast<int>(i);
                break;
            }
        }
        if (to < 0)
            return json_error("no other lower interface is up");
    } else {
        for (std::size_t i = 0; i < lowers_.size(); ++i) {
            if (lowers_[i].cfg.ifname == target)
                to = static_cast<int>(i);
        }
        if (to < 0)
            return json_error("no lower interface named '" + target.substr(0, 32) + "'");
        if (to == active)
            return json_error("'" + target + "' is already active");
        if (!lowers_[static_cast<std::size_t>(to)].running)
            return json_error("'" + target + "' is not up");
    }
    const status st = request_switch(static_cast<std::size_t>(to), switch_reason::operator_request);
    if (!st.ok()) {
        return json_error(std::string("switch to ") +
                          lowers_[static_cast<std::size_t>(to)].cfg.ifname +
                          " refused: " + st.reason());
    }
    // Keep the traffic moving while the switch completes, then answer with its record.
    const std::uint64_t deadline = mono_ns() + switch_reply_wait_ns;
    while (shell_->switching() && mono_ns() < deadline) {
        (void)data_iteration();
        (void)shell_->service();
    }
    if (shell_->switching()) {
        return "{\"ok\":true,\"state\":\"in progress\"}";
    }
    was_switching_ = false;
    after_switch();
    const switch_record& rec = shell_->history().recent(0);
    const std::string& name = lowers_[static_cast<std::size_t>(to)].cfg.ifname;
    std::string o = "{\"ok\":true,\"active\":" + json_str(name) +
                    ",\"duration_us\":" + fmt_us(rec.duration_ns) +
                    ",\"held\":" + std::to_string(rec.held) +
                    ",\"requeued\":" + std::to_string(rec.requeued) +
                    ",\"lost\":" + std::to_string(rec.tx_lost);
    if (text) {
        o += ",\"text\":" +
             json_str("switched to " + name + " in " + fmt_us(rec.duration_ns) + " us (held " +
                      std::to_string(rec.held) + ", lost " + std::to_string(rec.tx_lost) + ")\n");
    }
    return o + "}";
}

std::string linkd::render_status(bool text) {
    const int active = lower_of_path(shell_->active_path());
    const auto& want = shell_->desired_control();
    std::string mode = "-";
    std::string o =
        "{\"ok\":true,\"tap\":" + json_str(tap_.name()) +
        ",\"mac\":" + json_str(format_mac(want.mac())) + ",\"mtu\":" + std::to_string(want.mtu()) +
        ",\"active\":" +
        (active >= 0 ? json_str(lowers_[static_cast<std::size_t>(active)].cfg.ifname) : "null") +
        ",\"plugin\":" + json_str(shell_->active_name());
    if (const path_id p = shell_->active_path(); p != linkd_shell::no_path) {
        shell_->with_plugin(p, [&](auto& pl) {
            if constexpr (requires { pl.mode(); })
                mode = to_string(pl.mode());
        });
    }
    o += ",\"xdp_mode\":" + json_str(mode) +
         ",\"switching\":" + (shell_->switching() ? "true" : "false") +
         ",\"switches\":" + std::to_string(shell_->history().switches()) + ",\"lowers\":[";
    std::string t = std::string(tap_.name()) + ": mac " + format_mac(want.mac()) + ", mtu " +
                    std::to_string(want.mtu()) + ", " +
                    std::to_string(shell_->history().switches()) +
                    (shell_->history().switches() == 1 ? " switch\n" : " switches\n");
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        const auto& l = lowers_[i];
        const char* state = l.ifindex == 0 ? "missing" : l.running ? "up" : "down";
        o += std::string(i ? "," : "") + "{\"name\":" + json_str(l.cfg.ifname) +
             ",\"plugin\":" + json_str(to_string(l.cfg.kind)) + ",\"state\":" + json_str(state) +
             ",\"active\":" + (static_cast<int>(i) == active ? "true" : "false") + "}";
        t += std::string(static_cast<int>(i) == active ? "  * " : "    ") + l.cfg.ifname + "  " +
             to_string(l.cfg.kind) +
             (static_cast<int>(i) == active && l.cfg.kind == plugin_kind::af_xdp ? " (" + mode + ")"
                                                                                 : std::string()) +
             "  " + state + (static_cast<int>(i) == active ? "  active" : "") + "\n";
    }
    o += "]";
    if (text)
        o += ",\"text\":" + json_str(t);
    return o + "}";
}

std::string linkd::render_stats(bool text) {
    std::string o = "{\"ok\":true,\"lowers\":[";
    std::string t;
    char line[256];
    for (std::size_t i = 0; i < lowers_.size(); ++i) {
        queue_stats s{};
        for (std::uint16_t q = 0; q < cfg_.queues; ++q)
            s += shell_->path_stats(lowers_[i].path, q);
        o += std::string(i ? "," : "") + "{\"name\":" + json_str(lowers_[i].cfg.ifname) +
             ",\"plugin\":" + json_str(to_string(lowers_[i].cfg.kind)) +
             ",\"rx_packets\":" + std::to_string(s.rx_packets) +
             ",\"rx_bytes\":" + std::to_string(s.rx_bytes) +
             ",\"tx_packets\":" + std::to_string(s.tx_packets) +
             ",\"tx_bytes\":" + std::to_string(s.tx_bytes) +
             ",\"rx_dropped\":" + std::to_string(s.rx_dropped) +
             ",\"rx_no_buffer\":" + std::to_string(s.rx_no_buffer) +
             ",\"tx_ring_full\":" + std::to_string(s.tx_ring_full) +
             ",\"tx_errors\":" + std::to_string(s.tx_errors) +
             ",\"bad_completion\":" + std::to_string(s.bad_completion) + "}";
        std::snprintf(line, sizeof line,
                      "%-15s %-9s rx %llu pkts %llu B  tx %llu pkts %llu B  drops %llu\n",
                      lowers_[i].cfg.ifname.c_str(), to_string(lowers_[i].cfg.kind),
                      static_cast<unsigned long long>(s.rx_packets),
                      static_cast<unsigned long long>(s.rx_bytes),
                      static_cast<unsigned long long>(s.tx_packets),
                      static_cast<unsigned long long>(s.tx_bytes),
                      static_cast<unsigned long long>(s.rx_dropped + s.rx_no_buffer + s.tx_errors));
        t += line;
    }
    const auto& h = shell_->history();
    shell_queue_counters c{};
    std::string per_queue;
    for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
        const auto& k = shell_->counters(q);
        per_queue += std::string(q ? "," : "") +
                     "{\"tx_accepted\":" + std::to_string(k.tx_accepted) +
                     ",\"rx_delivered\":" + std::to_string(k.rx_delivered) + "}";
        c.tx_accepted += k.tx_accepted;
        c.tx_backlogged += k.tx_backlogged;
        c.tx_requeued += k.tx_requeued;
        c.tx_lost += k.tx_lost;
        c.rx_delivered += k.rx_delivered;
    }
    const audit_report a = shell_->audit();
    o += "],\"tap\":{\"read\":" + std::to_string(tc_.read) +
         ",\"read_dropped\":" + std::to_string(tc_.read_dropped) +
         ",\"written\":" + std::to_string(tc_.written) +
         ",\"write_dropped\":" + std::to_string(tc_.write_dropped) +
         ",\"announces\":" + std::to_string(tc_.announces) +
         ",\"control_applied\":" + std::to_string(tc_.control_applied) +
         ",\"control_refused\":" + std::to_string(tc_.control_refused) +
         ",\"bad_requests\":" + std::to_string(tc_.bad_requests) +
         ",\"refused_clients\":" + std::to_string(tc_.refused_clients) + "}";
    o += ",\"shell\":{\"tx_accepted\":" + std::to_string(c.tx_accepted) +
         ",\"tx_backlogged\":" + std::to_string(c.tx_backlogged) +
         ",\"tx_requeued\":" + std::to_string(c.tx_requeued) +
         ",\"tx_lost\":" + std::to_string(c.tx_lost) +
         ",\"rx_delivered\":" + std::to_string(c.rx_delivered) +
         ",\"audit_ok\":" + (a.ok() ? "true" : "false") +
         ",\"audit\":{\"pool_size\":" + std::to_string(a.pool_size) +
         ",\"in_pool\":" + std::to_string(a.in_pool) + ",\"caller\":" + std::to_string(a.caller) +
         ",\"backlog\":" + std::to_string(a.backlog) + ",\"requeue\":" + std::to_string(a.requeue) +
         ",\"in_plugins\":" + std::to_string(a.in_plugins) +
         ",\"leaked\":" + std::to_string(a.leaked) + "},\"queues\":[" + per_queue + "]}";
    // Mean and median duration over the recent records the shell keeps.
    std::vector<std::uint64_t> recent;
    for (std::uint32_t i = 0; i < h.size(); ++i) {
        const switch_record& r = h.recent(i);
        if (r.result == errc::ok && r.reason != switch_reason::boot)
            recent.push_back(r.duration_ns);
    }
    std::sort(recent.begin(), recent.end());
    std::uint64_t sum = 0;
    for (const auto d : recent)
        sum += d;
    const std::uint64_t mean = recent.empty() ? 0 : sum / recent.size();
    const std::uint64_t median = recent.empty() ? 0 : recent[recent.size() / 2];
    o += ",\"switch\":{\"count\":" + std::to_string(h.switches()) +
         ",\"failures\":" + std::to_string(h.failures()) + ",\"recent_mean_us\":" + fmt_us(mean) +
         ",\"recent_median_us\":" + fmt_us(median) +
         ",\"last_us\":" + fmt_us(h.last_duration_ns()) +
         ",\"max_us\":" + fmt_us(h.max_duration_ns()) +
         ",\"held\":" + std::to_string(h.total_held()) +
         ",\"lost\":" + std::to_string(h.total_tx_lost()) + "}";
    std::snprintf(
        line, sizeof line,
        "tap %s: read %llu (dropped %llu), written %llu (dropped %llu)\n"
        "switches: %llu (failed %llu): last %s us, median %s us, max %s us, held %llu, lost %llu\n",
        tap_.name(), static_cast<unsigned long long>(tc_.read),
        static_cast<unsigned long long>(tc_.read_dropped),
        static_cast<unsigned long long>(tc_.written),
        static_cast<unsigned long long>(tc_.write_dropped),
        static_cast<unsigned long long>(h.switches()),
        static_cast<unsigned long long>(h.failures()), fmt_us(h.last_duration_ns()).c_str(),
        fmt_us(median).c_str(), fmt_us(h.max_duration_ns()).c_str(),
        static_cast<unsigned long long>(h.total_held()),
        static_cast<unsigned long long>(h.total_tx_lost()));
    t += line;
    if (text)
        o += ",\"text\":" + json_str(t);
    return o + "}";
}

} // namespace npa::lnx::tools
