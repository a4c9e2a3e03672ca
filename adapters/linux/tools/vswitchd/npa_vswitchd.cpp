// npa-vswitchd: a host-side virtio-net back end. Serves N ports, each a vhost-user socket
// (server mode) a front end connects to (DPDK's virtio-user, QEMU), and switches frames
// between them by destination MAC and VLAN with a PF-style policy (switch.hpp). One thread
// polls every port; with nothing to do for a while it sleeps in poll() on the sockets and
// the kick eventfds (notifications turned back on), so an idle daemon costs no CPU.
//
// Zero-copy ports (",zero-copy") share one pool with their front ends instead (zc.hpp);
// they cannot write an eventfd the daemon polls, so before sleeping the daemon sets a wake
// word in their port regions and a front end that publishes while it is set kicks the
// daemon on its connection (npa/linux/zc_port.hpp, "Waking"; AF_XDP's need_wakeup).
//
// Usage: npa-vswitchd [--run-dir DIR] [--idle-sleep-ms N] --port NAME[,mac=..][,vlans=..][,mtu=..][,queues=..][,zero-copy] ...
#include "run_dir.hpp"
#include "switch.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Tuning: empty passes before the loop sleeps (about 50 us of polling at a pass a few
// hundred ns), how long one sleep lasts at most (the control path's latency when idle;
// --idle-sleep-ms changes it), passes between two looks at the clock, the least time
// between two runs of the control path (a poll() syscall per port: run every 1024 passes,
// or at each pause in the traffic, it took a third of a busy poller's CPU on a
// paravirtualised host, where a syscall costs microseconds; a front end's request waits a
// millisecond at most), and how often the run directory's JSON is rewritten (a sleep after
// traffic ends in time for it, so the JSON is never more than about that much behind,
// however long the sleeps).
constexpr int idle_passes = 200;
constexpr int sleep_ms = 100;
constexpr unsigned control_every = 1024;
constexpr auto control_interval = std::chrono::milliseconds(1);
constexpr auto announce_every = std::chrono::milliseconds(200);

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

void usage(std::FILE* f) {
    std::fputs(
        "usage: npa-vswitchd [--run-dir DIR] --port NAME[,mac=MAC][,vlans=V+V..][,mtu=N][,queues=N][,client=PATH][,zero-copy] ...\n"
        "\n"
        "Serves each port as a vhost-user socket DIR/NAME.sock (server mode; a virtio-net\n"
        "front end such as DPDK's net_virtio_user or QEMU connects) and switches frames\n"
        "between the ports by destination MAC and VLAN. DIR/NAME.json shows each port's\n"
        "configuration, state and counters (rewritten atomically a few times a second).\n"
        "\n"
        "  --run-dir DIR   sockets and JSON files (default /run/npa/vswitch)\n"
        "  --port NAME     a port; options after commas:\n"
        "      mac=MAC     the port's address: frames from another source MAC are dropped\n"
        "                  (rx_spoofed); without it any source MAC is allowed and learnt\n"
        "      vlans=V+V   802.1Q VLAN ids allowed tagged (untagged frames always pass)\n"
        "      mtu=N       largest payload accepted (68-9216, default 1500)\n"
        "      queues=N    queue pairs (1-16, default 1; multiqueue is offered when N > 1):\n"
        "                  every transmitq the front end runs is polled, and a frame that\n"
        "                  came in on queue q goes out on the (q mod running)-th running\n"
        "                  receiveq\n"
        "      client=PATH client mode: connect to the front end's socket PATH (its server,\n"
        "                  e.g. net_virtio_user's server=1), again after each disconnect\n"
        "      zero-copy   a zero-copy port instead of vhost-user: its front end\n"
        "                  (npa/linux/zc_port.hpp) maps the daemon's buffer pool, and a frame\n"
        "                  between two zero-copy ports moves by handing its buffer over\n"
        "                  (one queue pair, no client=, MTU up to 2030)\n"
        "  --busy-poll     never sleep (no kicks asked for; one CPU always busy)\n"
        "  --idle-sleep-ms N  the longest sleep when idle (1-600000, default 100): how long\n"
        "                  a timer-driven look waits; traffic and requests wake the daemon\n"
        "  --trace         log every vhost-user request\n"
        "  --help          this text\n",
        f);
}

void log_line(const std::string& s) {
    std::fprintf(stderr, "npa-vswitchd: %s\n", s.c_str());
    std::fflush(stderr);
}

// Notifications on while asleep (the front end kicks), off while polling (it need not).
void set_notify(npa::vswitch::engine& sw, bool on, bool& pending) {
    for (auto& p : sw.ports) {
        if (p->zc) {
            continue;
        }
        for (std::uint32_t q = 0; q < p->queues(); ++q) {
            if (p->transmitq(q).ready()) {
                pending = p->transmitq(q).dev.enable_notify(on) || pending;
            }
        }
    }
}

// Sleeps until a socket or a kick eventfd has something, or `timeout` ms passed; the
// kicks that woke it are read (an eventfd counts until read; a zero-copy front end's kicks
// are read before the next sleep, zc_link::quiet()). True when something woke it.
bool sleep_on_fds(npa::vswitch::engine& sw, int timeout) {
    std::vector<pollfd> fds;
    std::vector<bool> kick;
    for (auto& p : sw.ports) {
        if (p->zc) {
            // a front end that flooded its connection is heard only when it hangs up
            const short ev = p->zc->attached() && p->zc->muted ? POLLRDHUP : POLLIN | POLLRDHUP;
            fds.push_back({p->zc->attached() ? p->zc->sock : p->zc->listen_fd, ev, 0});
            kick.push_back(false);
            if (p->zc->pending >= 0) { // its hello wakes the daemon
                fds.push_back({p->zc->pending, POLLIN, 0});
                kick.push_back(false);
            }
            continue;
        }
        fds.push_back({p->be.connected() ? p->be.sock_fd() : p->be.listen_fd(), POLLIN, 0});
        kick.push_back(false);
        for (std::uint32_t q = 0; q < p->queues(); ++q) {
            if (p->transmitq(q).kick >= 0) {
                fds.push_back({p->transmitq(q).kick, POLLIN, 0});
                kick.push_back(true);
            }
        }
    }
    if (::poll(fds.data(), fds.size(), timeout) <= 0) {
        return false;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (kick[i] && (fds[i].revents & POLLIN) != 0) {
            std::uint64_t v;
            [[maybe_unused]] const ssize_t n = ::read(fds[i].fd, &v, sizeof v);
        }
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    using namespace npa::vswitch;
    std::string run_dir = "/run/npa/vswitch";
    std::vector<port_config> cfgs;
    bool trace = false, busy_poll = false;
    int idle_sleep_ms = sleep_ms;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--trace") {
            trace = true;
            continue;
        }
        if (a == "--busy-poll") {
            busy_poll = true;
            continue;
        }
        if ((a == "--run-dir" || a == "--port" || a == "--idle-sleep-ms") && i + 1 == argc) {
            std::fprintf(stderr, "npa-vswitchd: %s needs a value\n", a.c_str());
            return 2;
        }
        if (a == "--run-dir") {
            run_dir = argv[++i];
        } else if (a == "--idle-sleep-ms") {
            char* end = nullptr;
            const long ms = std::strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || ms < 1 || ms > 600000) {
                std::fprintf(stderr, "npa-vswitchd: --idle-sleep-ms takes 1-600000\n");
                return 2;
            }
            idle_sleep_ms = static_cast<int>(ms);
        } else if (a == "--port") {
            std::string why;
            auto pc = parse_port(argv[++i], why);
            if (!pc) {
                std::fprintf(stderr, "npa-vswitchd: --port %s: %s\n", argv[i], why.c_str());
                return 2;
            }
            for (const port_config& o : cfgs) {
                if (o.name == pc->name || (o.mac == pc->mac && o.mac != mac_addr{})) {
                    std::fprintf(stderr, "npa-vswitchd: --port %s: name or MAC used twice\n", argv[i]);
                    return 2;
                }
            }
            cfgs.push_back(*pc);
        } else {
            std::fprintf(stderr, "npa-vswitchd: unknown argument '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    if (cfgs.empty()) {
        std::fprintf(stderr, "npa-vswitchd: no --port given (see --help)\n");
        return 2;
    }
    ::mkdir(run_dir.c_str(), 0755); // an existing directory is fine; listen() says otherwise

    // 1. ports: a back end listening on each socket, announced in the run directory
    engine sw;
    if (std::any_of(cfgs.begin(), cfgs.end(), [](const port_config& c) { return c.zero_copy; })) {
        if (cfgs.size() >= zc_pool::in_switch) {
            std::fprintf(stderr, "npa-vswitchd: zero-copy ports need fewer than %u ports\n", zc_pool::in_switch);
            return 2;
        }
        auto zp = zc_pool::create();
        if (!zp) {
            std::fprintf(stderr, "npa-vswitchd: the zero-copy pool: %s\n", zp.error().reason());
            return 1;
        }
        sw.zpool = std::move(*zp);
    }
    const auto pool_free = [&sw]() -> std::int64_t { return sw.zpool ? sw.zpool->free_count() : -1; };
    for (const port_config& pc : cfgs) {
        const std::string name = pc.name;
        sw.ports.push_back(std::make_unique<port>(pc, [name](const std::string& s) { log_line(name + ": " + s); }));
        // A front end stopping one of its transmitqs (GET_VRING_BASE on ring 2q+1) has
        // every frame it made available there forwarded or counted first.
        const std::size_t at = sw.ports.size() - 1;
        sw.ports.back()->be.before_ring_stop = [&sw, at](std::uint32_t ring) {
            if (ring % 2 == 1) {
                sw.drain_queue(at, ring / 2);
            }
        };
        port& p = *sw.ports.back();
        p.be.trace = trace;
        if (p.zc) {
            if (npa::status st = p.zc->listen(run_dir + "/" + name + ".sock"); !st) {
                std::fprintf(stderr, "npa-vswitchd: port %s: %s (%s/%s.sock)\n", name.c_str(), st.reason(),
                             run_dir.c_str(), name.c_str());
                return 1;
            }
        } else if (!pc.client.empty()) {
            p.be.connect_to(pc.client);
        } else if (npa::status st = p.be.listen(run_dir + "/" + name + ".sock"); !st) {
            std::fprintf(stderr, "npa-vswitchd: port %s: %s (%s/%s.sock)\n", name.c_str(), st.reason(),
                         run_dir.c_str(), name.c_str());
            return 1;
        }
        if (!announce(run_dir, p, pool_free())) {
            std::fprintf(stderr, "npa-vswitchd: cannot write %s/%s.json\n", run_dir.c_str(), name.c_str());
            return 1;
        }
    }
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    log_line("serving " + std::to_string(sw.ports.size()) + " ports in " + run_dir);

    // 2. the loop: data path every pass; control path at most every control_interval, looked
    //    for every control_every passes and half way to sleeping when idle, and at once after
    //    a sleep (a socket may have woken it)
    std::vector<std::uint32_t> was_ready(sw.ports.size(), 0); // a bit a ring, as rings() numbers them
    auto next_announce = std::chrono::steady_clock::now();
    auto next_control = next_announce;
    int idle = 0;
    std::uint32_t sleep_seq = 0; // sleeps tried: the wake word's upper bits
    bool unannounced = false;    // counters or state moved since the JSON was last written
    for (unsigned pass = 0; stop_requested == 0; ++pass) {
        const int work = sw.poll();
        idle = work != 0 ? 0 : std::min(idle + 1, idle_passes); // --busy-poll: stays at the cap
        unannounced = unannounced || work != 0;
        if ((pass % control_every == 0 || idle == idle_passes / 2) && // no clock read per pass
            std::chrono::steady_clock::now() >= next_control) {
            next_control = std::chrono::steady_clock::now() + control_interval;
            for (std::size_t i = 0; i < sw.ports.size(); ++i) {
                port& p = *sw.ports[i];
                if (p.zc) {
                    sw.service_zc(i, [&p, &unannounced](const std::string& s) {
                        unannounced = true; // attached, detached or refused: the state moved
                        log_line(p.cfg.name + ": " + s);
                    });
                    continue;
                }
                const bool was = p.be.connected();
                if (!p.be.service() || (was && !p.be.connected())) {
                    sw.forget(i);
                }
                // Rings that start are polled: no kicks wanted. A receiveq never wants them
                // (a frame with no buffer waiting is dropped and counted, not held).
                std::uint32_t ready = 0;
                const auto rings = p.be.rings();
                for (std::uint32_t r = 0; r < rings.size(); ++r) {
                    if (rings[r].ready()) {
                        ready |= 1u << r;
                        if ((was_ready[i] & 1u << r) == 0) {
                            [[maybe_unused]] const bool pend = rings[r].dev.enable_notify(false);
                        }
                    }
                }
                was_ready[i] = ready;
            }
            if (std::chrono::steady_clock::now() >= next_announce) {
                const std::int64_t free_now = pool_free(); // one count for every port's JSON
                for (auto& p : sw.ports) {
                    p->fold_ring_errors();
                    if (!p->zc) {
                        p->c.connections = p->be.connections();
                    }
                    announce(run_dir, *p, free_now);
                }
                next_announce = std::chrono::steady_clock::now() + announce_every;
                unannounced = false;
            }
        }
        if (idle >= idle_passes && !busy_poll) {
            bool pending = false;
            set_notify(sw, true, pending);
            sleep_seq += 2;
            const bool quiet = sw.zc_before_sleep(sleep_seq | npa::lnx::zc::daemon_sleeps);
            if (!pending && quiet) {
                int timeout = idle_sleep_ms;
                if (unannounced) { // wake in time to write the JSON
                    const auto due = std::chrono::duration_cast<std::chrono::milliseconds>(
                        next_announce - std::chrono::steady_clock::now());
                    timeout = static_cast<int>(std::clamp<std::int64_t>(due.count() + 1, 0, timeout));
                }
                unannounced = sleep_on_fds(sw, timeout) || unannounced;
            }
            sw.zc_awake();
            set_notify(sw, false, pending);
            idle = 0;
            next_control = {};
        }
    }

    // 3. stop: sockets and JSON files go with the daemon
    for (auto& p : sw.ports) {
        const std::string base = run_dir + "/" + p->cfg.name;
        ::unlink((base + ".json").c_str());
    }
    sw.ports.clear(); // each back end unlinks its socket
    log_line("stopped");
    return 0;
}
