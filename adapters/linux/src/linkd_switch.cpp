// npa-linkd: path management. Which lower carries the traffic: switching to a lower
// (announcing the shell's MAC on it at once, so replies already head there while the old
// path drains), failing over when the active lower goes down, disappears or its plugin
// reports it unhealthy, failing back to a preferred lower that came back, and the
// announcements repeated after every switch.
#include "linkd.hpp"

#include <npa/linux/announce.hpp>

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>

namespace npa::lnx::tools {

namespace {

/// Spacing of the repeated post-switch announcements.
constexpr std::uint64_t announce_gap_ns = 20'000'000;

// The lower's interface still exists (same index, or at least its name); a PCI lower's
// function is still in sysfs.
bool lower_exists(const lower_state& l) {
    if (l.pci)
        return pci::exists((std::string(pci::sysfs_devices) + "/" + l.cfg.ifname).c_str());
    char name[IF_NAMESIZE] = {};
    if (l.ifindex != 0 && ::if_indextoname(static_cast<unsigned>(l.ifindex), name) != nullptr)
        return true;
    return ::if_nametoindex(l.cfg.ifname.c_str()) != 0;
}

} // namespace

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
    } else if (l.pci) {
        // A device's authority refused the replay (a PF that assigned this VF another
        // MAC): status shows it beside the lower, the log says it once per attempt.
        l.note = std::string("switch refused: ") + st.reason();
        linkd_env{}.log(log_level::warning, (l.cfg.ifname + ": " + l.note).c_str());
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
    next_announce_ns_ = linkd_env::now_ns() + announce_gap_ns;
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
    if (l.pci)
        return; // no socket reaches a PCI lower: after_switch() announces through the shell
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

// ---- supervision ----------------------------------------------------------------------

void linkd::supervise_paths() {
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
    if (announces_left_ != 0 && linkd_env::now_ns() >= next_announce_ns_ && !shell_->switching()) {
        announce();
        --announces_left_;
        next_announce_ns_ = linkd_env::now_ns() + announce_gap_ns;
    }
}

// ---- lower link events ----------------------------------------------------------------

void linkd::handle_lower_event(const link_event& ev) {
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

} // namespace npa::lnx::tools
