// npa-linkd: the control socket (the protocol is in control_protocol.hpp). Accepts
// npactl's connections from trusted users, reads request lines and answers each with one
// JSON line: status, stats, or a switch that keeps traffic moving until it completes.
#include "linkd.hpp"

#include "control_protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace npa::lnx::tools {

namespace {

/// An operator switch waits this long for completion before replying "in progress".
constexpr std::uint64_t switch_reply_wait_ns = 3'000'000'000;
/// Control connections open at once; more are told so and closed.
constexpr std::size_t max_clients = 16;

/// `"key":value,"key":value` for a run of counters in a reply.
std::string json_counters(std::initializer_list<std::pair<const char*, std::uint64_t>> fields) {
    std::string o;
    for (const auto& [key, value] : fields) {
        if (!o.empty())
            o += ',';
        o += json_str(key) + ":" + std::to_string(value);
    }
    return o;
}

} // namespace

// ---- connections ----------------------------------------------------------------------

void linkd::accept_client() {
    const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return;
    unsigned uid = 0;
    const bool known = peer_uid(c, uid);
    if (!known || !peer_trusted(uid)) {
        // SO_PEERCRED: only root and the daemon's own user may control it.
        ++tc_.refused_clients;
        const std::string e = json_error(known ? "uid " + std::to_string(uid) +
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
    const std::uint64_t deadline = linkd_env::now_ns() + switch_reply_wait_ns;
    while (shell_->switching() && linkd_env::now_ns() < deadline) {
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
        const char* state = l.pci ? (l.running ? "up" : "missing")
                            : l.ifindex == 0 ? "missing"
                            : l.running      ? "up"
                                             : "down";
        o += std::string(i ? "," : "") + "{\"name\":" + json_str(l.cfg.ifname) +
             ",\"plugin\":" + json_str(l.cfg.plugin_name()) + ",\"state\":" + json_str(state) +
             ",\"active\":" + (static_cast<int>(i) == active ? "true" : "false") +
             (l.note.empty() ? std::string() : ",\"note\":" + json_str(l.note)) +
             (l.image_note.empty() ? std::string() : ",\"image_note\":" + json_str(l.image_note)) +
             render_image(l, false) + "}";
        t += std::string(static_cast<int>(i) == active ? "  * " : "    ") + l.cfg.ifname + "  " +
             l.cfg.plugin_name() +
             (static_cast<int>(i) == active && l.cfg.kind == plugin_kind::af_xdp ? " (" + mode + ")"
                                                                                 : std::string()) +
             "  " + state + (static_cast<int>(i) == active ? "  active" : "") +
             (l.note.empty() ? std::string() : "  (" + l.note + ")") + "\n" +
             (l.image_note.empty() ? std::string() : "      " + l.image_note + "\n") +
             render_image(l, true);
    }
    // What the TAP writer merged (npa/linux/tap_gro.hpp).
    const tap_gro_stats& g = tap_.gro_stats();
    o += "],\"tap_gro\":{" +
         json_counters({{"writes", g.writes},
                        {"merged_writes", g.merged_writes},
                        {"merged_segments", g.merged_segments},
                        {"refused", g.refused},
                        {"whole_writes", g.whole_writes},
                        {"whole_segments", g.whole_segments},
                        {"whole_refused", g.whole_refused}}) +
         "}";
    t += "tap writes " + std::to_string(g.writes) + ": " + std::to_string(g.merged_segments) +
         " segments merged into " + std::to_string(g.merged_writes) + " frames, " +
         std::to_string(g.refused) + " refused; " + std::to_string(g.whole_writes) +
         " large frames received whole (" + std::to_string(g.whole_segments) +
         " segments' worth), " + std::to_string(g.whole_refused) + " refused and cut\n";
    // What the TAP reader sent whole or cut (npa/linux/tap_tso.hpp), and which of the two
    // the active path gets: whole TSO frames (AF_PACKET with PACKET_VNET_HDR) or segments.
    tap_gso_scratch::counters k{};
    for (const tap_gso_scratch& s : tap_rx_) {
        k += s.stats();
    }
    const bool whole = shell_->active_path() != linkd_shell::no_path &&
                       shell_->with_plugin(shell_->active_path(), [](auto& pl) {
                           if constexpr (requires { pl.gso_capable(); })
                               return pl.gso_capable();
                           else
                               return false;
                       });
    o += ",\"tap_tso\":{\"mode\":" + json_str(whole ? "whole" : "cut") + "," +
         json_counters({{"frames", k.frames},
                        {"gso_frames", k.gso},
                        {"whole_frames", k.whole},
                        {"whole_segments", k.whole_segments},
                        {"segments", k.segments},
                        {"bad_vnet", k.bad_vnet},
                        {"too_long", k.too_long}}) +
         "}";
    t += "tap reads " + std::to_string(k.frames) + ": " + std::to_string(k.gso) + " TSO frames, " +
         std::to_string(k.whole) + " sent whole (" + std::to_string(k.whole_segments) +
         " segments' worth), the others cut into " + std::to_string(k.segments) +
         " segments; " + std::to_string(k.bad_vnet + k.too_long) + " dropped\n" +
         "TSO frames from the TAP now: " +
         (whole ? "sent whole to the lower (PACKET_VNET_HDR)"
                : "cut into segments (the active path takes no GSO frames)") +
         "\n";
    if (text)
        o += ",\"text\":" + json_str(t);
    return o + "}";
}

// A 'pci image' lower's image: the file, the plugin's name, its digest and its signer.
std::string linkd::render_image(const lower_state& l, bool text) {
    if (!l.pci || !l.pci->image)
        return {};
    const lower_image& im = *l.pci->image;
    if (text)
        return "      image " + im.file + " (" + im.name + ")\n      sha512 " + im.digest +
               "\n      signer " + im.signer + "\n";
    return ",\"image\":{\"file\":" + json_str(im.file) + ",\"name\":" + json_str(im.name) +
           ",\"digest\":" + json_str(im.digest) + ",\"signer\":" + json_str(im.signer) + "}";
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
             ",\"plugin\":" + json_str(lowers_[i].cfg.plugin_name()) + "," +
             json_counters({{"rx_packets", s.rx_packets},
                            {"rx_bytes", s.rx_bytes},
                            {"tx_packets", s.tx_packets},
                            {"tx_bytes", s.tx_bytes},
                            {"rx_dropped", s.rx_dropped},
                            {"rx_no_buffer", s.rx_no_buffer},
                            {"tx_ring_full", s.tx_ring_full},
                            {"tx_errors", s.tx_errors},
                            {"bad_completion", s.bad_completion}}) +
             "}";
        std::snprintf(line, sizeof line,
                      "%-15s %-9s rx %llu pkts %llu B  tx %llu pkts %llu B  drops %llu\n",
                      lowers_[i].cfg.ifname.c_str(), lowers_[i].cfg.plugin_name().c_str(),
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
        per_queue +=
            std::string(q ? "," : "") + "{" +
            json_counters({{"tx_accepted", k.tx_accepted}, {"rx_delivered", k.rx_delivered}}) + "}";
        c.tx_accepted += k.tx_accepted;
        c.tx_backlogged += k.tx_backlogged;
        c.tx_requeued += k.tx_requeued;
        c.tx_lost += k.tx_lost;
        c.rx_delivered += k.rx_delivered;
    }
    const audit_report a = shell_->audit();
    o += "],\"tap\":{" +
         json_counters({{"read", tc_.read},
                        {"read_dropped", tc_.read_dropped},
                        {"written", tc_.written},
                        {"write_dropped", tc_.write_dropped},
                        {"announces", tc_.announces},
                        {"control_applied", tc_.control_applied},
                        {"control_refused", tc_.control_refused},
                        {"bad_requests", tc_.bad_requests},
                        {"refused_clients", tc_.refused_clients}}) +
         "}";
    o += ",\"shell\":{" +
         json_counters({{"tx_accepted", c.tx_accepted},
                        {"tx_backlogged", c.tx_backlogged},
                        {"tx_requeued", c.tx_requeued},
                        {"tx_lost", c.tx_lost},
                        {"rx_delivered", c.rx_delivered}}) +
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
