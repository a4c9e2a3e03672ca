// npa/linux/zc_port.hpp: a zero-copy port of npa-vswitchd, the front end's side and the
// format both sides share. A vhost-user port moves a frame by copying it from the sender's
// memory into the receiver's; between zero-copy ports a frame moves by handing over the
// buffer it is in: every zero-copy front end maps one pool the daemon owns, and the daemon
// passes buffer indices from the sender's transmit ring to the receiver's receive ring
// (AF_XDP's shared UMEM, over npa's shared regions, npa/shm/).
//
//   the pool region  (one for the daemon, mapped by every zero-copy front end)
//     object 0  the pool's free ring (4-byte indices): the daemon's own; a front end never
//               touches it
//     object 1  the pool: pool_buffers buffers of buf_size bytes, no headroom
//   a port region    (made for each connection, mapped by that front end only)
//     object 0  lend   daemon -> front end   empty buffers the front end may fill and send
//     object 1  tx     front end -> daemon   frames to switch {buffer, length}
//     object 2  rx     daemon -> front end   frames switched to this port {buffer, length}
//     object 3  back   front end -> daemon   buffers it is done with (received frames it
//                                            has read, lent buffers it will not use)
//   Every ring is an npa::index_ring of shm::buf_desc, one producer and one consumer.
//     side 0's wake word (shm::side_state::wake)  the daemon's: daemon_sleeps and its count
//               of sleeps while it sleeps in poll(), 0 while it polls
//     side 1's wake word                          the front end's: rx_wanted and its count
//               of waits while it waits in wait_rx(), 0 otherwise
//
// The handshake, on the port's socket (<run-dir>/<port>.sock, SOCK_SEQPACKET): the front
// end sends a hello; the daemon answers a welcome, then (when it accepts) the pool's memfd
// and the port region's memfd, one message each (SCM_RIGHTS). The connection stays open:
// its end (a hang-up, never a message) is the front end's detach (or death), and tells the
// front end the daemon is gone.
//
// Waking (AF_XDP's XDP_USE_NEED_WAKEUP, protocol version 2): an idle daemon sleeps in
// poll() on the connections. Before it sleeps it sets its wake word, takes a seq_cst fence
// and looks at the tx and back rings once more; send() and release() publish, take a
// seq_cst fence, read the word and, when it is set, send one kick (an 8-byte message) on
// the connection, once per sleep whatever the number of calls meanwhile. Either the daemon
// saw the frame or the front end saw the word: no frame waits for the sleep's end. A front
// end in wait_rx() does the same the other way: it sets its word, and the daemon kicks it
// after it published frames on the rx ring. The daemon reads a bounded number of messages
// a sleep, never waiting; anything that is not a kick is counted and dropped, and a front
// end that floods it is not listened to during the next sleep (its frames wait for the
// sleep's end; the others' do not).
//
// Ownership: a buffer is the daemon's until it lends it or switches a frame in it to a
// port; the port then owns it until it sends it or hands it back. The daemon keeps the
// owner of every buffer in its own memory and refuses (counts, never follows) an index a
// front end does not own. What the daemon cannot stop: every zero-copy front end maps the
// whole pool writable, so one of them can rewrite frames it no longer owns. Zero-copy
// ports trust one another; a front end that must be policed against a hostile neighbour
// is a vhost-user port (copy).
#pragma once

#include <npa/linux/shm_region.hpp>
#include <npa/linux/unix_socket.hpp>
#include <npa/ring/index_ring.hpp>
#include <npa/shm/layout.hpp>
#include <npa/shm/region.hpp>
#include <npa/status.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace npa::lnx::zc {

// ---- the format ------------------------------------------------------------------------
inline constexpr std::uint32_t hello_magic = 0x435a504eu; ///< "NPZC" in memory
/// 2: the wake words and kicks (version 1 had neither; its front ends are refused).
inline constexpr std::uint32_t protocol_version = 2;
inline constexpr std::uint32_t kick_magic = 0x4b5a504eu; ///< "NPZK" in memory
/// The daemon's wake word: this bit while it sleeps, the rest its count of sleeps, so a
/// front end kicks once per sleep (it remembers the word it kicked for).
inline constexpr std::uint32_t daemon_sleeps = 1;
/// The front end's wake word: this bit while it waits in wait_rx(), the rest its count of
/// waits, so the daemon kicks once per wait.
inline constexpr std::uint32_t rx_wanted = 1;
/// Buffers in the daemon's pool (16 MiB of 2 KiB buffers) and each one's size: a frame of
/// up to buf_size bytes (an MTU of 2030 untagged) fits one buffer.
inline constexpr std::uint32_t pool_buffers = 8192;
inline constexpr std::uint32_t buf_size = 2048;
inline constexpr std::uint32_t ring_capacity = 512;
/// Buffers the daemon keeps on a port's lend ring (topped up every poll) and the most one
/// port may own at once (lent, received, in its hands): a front end that never gives
/// buffers back stops getting new ones and its received frames are dropped, the pool stays
/// with the others.
inline constexpr std::uint32_t lend_target = 256;
inline constexpr std::uint32_t hold_limit = 1024;
/// How long connect() waits for the daemon's answer and each region.
inline constexpr int connect_timeout_s = 5;

using ring = index_ring<shm::buf_desc, ring_capacity>;
using pool_type = shm::pool<pool_buffers>;

enum : std::uint32_t { free_ring_obj = 0, pool_obj = 1 };
enum : std::uint32_t { lend_obj = 0, tx_obj = 1, rx_obj = 2, back_obj = 3 };
/// Tags naming the objects (the pool and its free ring share one).
enum : std::uint32_t { tag_pool = 0x5a50, tag_lend = 0x5a4c, tag_tx = 0x5a54, tag_rx = 0x5a52,
                       tag_back = 0x5a42 };

[[nodiscard]] inline shm::layout pool_layout() {
    shm::layout l;
    l.add_pool(pool_buffers, buf_size, /*headroom=*/0, pool_buffers, tag_pool);
    return l;
}
[[nodiscard]] inline shm::layout port_layout() {
    shm::layout l;
    for (const std::uint32_t tag : {tag_lend, tag_tx, tag_rx, tag_back}) {
        l.add_ring(ring_capacity, sizeof(shm::buf_desc), tag);
    }
    return l;
}

/// The front end's first message.
struct hello {
    le32 magic;
    le32 version;
    le32 pid;
    le32 reserved;
};
/// The daemon's answer: status 0 accepts (the two memfds follow), anything else refuses
/// with a sentence in `reason` (NUL-terminated).
struct welcome {
    le32 magic;
    le32 version;
    le32 status; ///< 0, or an npa::errc
    le32 reserved;
    char reason[112];
};
/// After the handshake, the only message either side sends: "I published something while
/// your wake word was set".
struct kick {
    le32 magic; ///< kick_magic
    le32 reserved;
};
static_assert(sizeof(hello) == 16 && sizeof(welcome) == 128 && sizeof(kick) == 8);
static_assert(offsetof(shm::side_state, wake) == 24); // the wake words' place in the port region

/// Sends a kick on `sock`, never waiting: with the receive queue full, the other side has
/// kicks to read already. True when sent.
inline bool send_kick(int sock) noexcept {
    kick k{};
    k.magic = kick_magic;
    return ::send(sock, &k, sizeof(k), MSG_DONTWAIT | MSG_NOSIGNAL) ==
           static_cast<ssize_t>(sizeof(k));
}
/// The waker's half of waking (rule 7, docs/design.md), called after publishing: a seq_cst
/// fence, then side `s`'s wake word in `r`; when `bit` says that side sleeps and it was not
/// kicked for this word yet (each sleep's word is new: the sleeper counts them), one kick on
/// `sock`. `kicked_for`: the word last kicked for. True when a kick went out.
inline bool kick_sleeper(const shm::region& r, std::uint32_t s, std::uint32_t bit, int sock,
                         std::uint32_t& kicked_for) noexcept {
    // seq_cst fence: what was published before the word is read; the sleeper sets its
    // word, fences, then looks at the rings: one of the two sees the other
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint32_t w = r.wake(s);
    if ((w & bit) == 0 || w == kicked_for) {
        return false;
    }
    kicked_for = w;
    return send_kick(sock);
}
/// Events of a poll() that mean the other end is gone.
inline constexpr short hangup_events = POLLHUP | POLLRDHUP | POLLERR | POLLNVAL;
/// True when the other end of `sock` is gone: a hang-up, never a message (kicks are
/// messages).
[[nodiscard]] inline bool hung_up(int sock) noexcept {
    pollfd pf{sock, POLLRDHUP, 0};
    int n;
    do {
        n = ::poll(&pf, 1, 0);
    } while (n < 0 && errno == EINTR); // a signal is not the other end's
    return n > 0 && (pf.revents & hangup_events) != 0;
}

// ---- the front end -----------------------------------------------------------------------

/// What this side refused from the daemon (it is not trusted either).
struct port_stats {
    std::uint64_t bad_from_daemon = 0; ///< a lent or received index past the pool, or a length past a buffer
    std::uint64_t kicks = 0;           ///< kicks sent to a sleeping daemon
};

/// A zero-copy port, the front end's side: connect() to the port's socket, then alloc()
/// empty buffers, write frames into payload(), send(); receive() frames and release()
/// their buffers when done; wait_rx() to sleep until frames come. One thread uses it (each
/// ring has one producer, one consumer).
class port {
public:
    /// Connects to `socket_path` and maps the two regions (each validated before use).
    /// When the daemon refuses, `why` (if given) gets its sentence.
    [[nodiscard]] static result<port> connect(const std::string& socket_path,
                                              std::string* why = nullptr) noexcept {
        if (!unix_path_ok(socket_path)) {
            return {errc::invalid_argument, "zero-copy port: socket path empty or too long"};
        }
        port p;
        p.sock_ = unix_connect(socket_path, SOCK_SEQPACKET);
        if (p.sock_ < 0) {
            return {errc::removed, "zero-copy port: cannot connect to the port's socket"};
        }
        // the daemon answers at its next control pass (a millisecond or so): a daemon that
        // does not answer at all is an error, not a wait forever
        const timeval answer_within{connect_timeout_s, 0};
        ::setsockopt(p.sock_, SOL_SOCKET, SO_RCVTIMEO, &answer_within, sizeof(answer_within));
        hello h{};
        h.magic = hello_magic;
        h.version = protocol_version;
        h.pid = static_cast<std::uint32_t>(::getpid());
        if (::send(p.sock_, &h, sizeof(h), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(h))) {
            return {errc::device_error, "zero-copy port: sending the hello failed"};
        }
        welcome w{};
        ssize_t n;
        do {
            n = ::recv(p.sock_, &w, sizeof(w), 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return {errc::timeout, "zero-copy port: the daemon did not answer within 5 s"};
        }
        if (n != static_cast<ssize_t>(sizeof(w)) || w.magic != hello_magic || w.version != protocol_version) {
            return {errc::device_error, "zero-copy port: the daemon's answer is not a welcome"};
        }
        if (w.status != 0) {
            w.reason[sizeof(w.reason) - 1] = '\0';
            if (why != nullptr) {
                *why = w.reason;
            }
            return {errc::refused, "zero-copy port: the daemon refused the connection"};
        }
        if (status st = p.map(); !st) {
            return st;
        }
        return p;
    }

    port(port&& o) noexcept
        : sock_(std::exchange(o.sock_, -1)), pool_region_(std::move(o.pool_region_)),
          port_region_(std::move(o.port_region_)), pool_(o.pool_), lend_(o.lend_), tx_(o.tx_),
          rx_(o.rx_), back_(o.back_), stats_(o.stats_), kicked_for_(o.kicked_for_),
          waits_(o.waits_) {
        o.pool_region_.reset(); // the moved-from port must not leave() this side's region
        o.port_region_.reset();
    }
    port(const port&) = delete;
    port& operator=(const port&) = delete;
    port& operator=(port&&) = delete;
    ~port() {
        if (port_region_) {
            port_region_->region().leave(1);
        }
        if (sock_ >= 0) {
            ::close(sock_);
        }
    }

    /// Up to out.size() empty buffers lent by the daemon (each this side's until sent or
    /// released). Fewer when the daemon has not lent more yet.
    [[nodiscard]] std::uint32_t alloc(std::span<std::uint32_t> out) noexcept {
        shm::buf_desc d[64];
        std::uint32_t n = 0;
        while (n < out.size()) {
            const std::size_t want = std::min<std::size_t>(out.size() - n, 64);
            const std::uint32_t got = lend_->dequeue_burst(std::span<shm::buf_desc>(d, want));
            if (got == 0) {
                break;
            }
            for (std::uint32_t i = 0; i < got; ++i) {
                if (d[i].buf < pool_buffers) {
                    out[n++] = d[i].buf;
                } else {
                    ++stats_.bad_from_daemon;
                }
            }
        }
        return n;
    }
    /// Where buffer `b`'s bytes are (nullptr past the pool); buf_size bytes of room.
    [[nodiscard]] std::byte* payload(std::uint32_t b) const noexcept { return pool_->payload(b); }

    /// Publishes frames (buffer, length) to the daemon: returns how many the transmit ring
    /// took, from the front; the rest are still this side's. Kicks the daemon if it sleeps.
    [[nodiscard]] std::uint32_t send(std::span<const shm::buf_desc> frames) noexcept {
        const std::uint32_t n = tx_->enqueue_burst(frames);
        if (n != 0) {
            wake_daemon();
        }
        return n;
    }
    /// Up to out.size() frames switched to this port; their buffers are this side's until
    /// release(). A descriptor the daemon got wrong is counted and skipped.
    [[nodiscard]] std::uint32_t receive(std::span<shm::buf_desc> out) noexcept {
        const std::uint32_t got = rx_->dequeue_burst(out);
        std::uint32_t n = 0;
        for (std::uint32_t i = 0; i < got; ++i) {
            if (out[i].buf < pool_buffers && out[i].len <= buf_size) {
                out[n++] = out[i];
            } else {
                ++stats_.bad_from_daemon;
            }
        }
        return n;
    }
    /// Gives buffers back to the daemon: returns how many the ring took, from the front.
    /// Kicks the daemon if it sleeps (it lends them again, to this port or another).
    [[nodiscard]] std::uint32_t release(std::span<const std::uint32_t> bufs) noexcept {
        shm::buf_desc d[64];
        std::uint32_t done = 0;
        while (done < bufs.size()) {
            const std::size_t k = std::min<std::size_t>(bufs.size() - done, 64);
            for (std::size_t i = 0; i < k; ++i) {
                d[i] = {bufs[done + i], 0};
            }
            const std::uint32_t n = back_->enqueue_burst(std::span<const shm::buf_desc>(d, k));
            done += n;
            if (n < k) {
                break;
            }
        }
        if (done != 0) {
            wake_daemon();
        }
        return done;
    }

    /// Waits until frames are on the receive ring, at most `timeout_ms` (-1: no limit):
    /// true when there are (receive() takes them), false on the timeout, a signal, or when
    /// the daemon went away. The daemon kicks this side only while it waits, so a receiver that
    /// polls costs it nothing.
    [[nodiscard]] bool wait_rx(int timeout_ms) noexcept {
        if (!rx_->empty()) {
            return true;
        }
        const auto start = std::chrono::steady_clock::now();
        waits_ += 2; // a new word each wait: the daemon kicks once per wait
        port_region_->region().set_wake(1, waits_ | rx_wanted);
        // rule 7 (docs/design.md): the word before the ring is looked at again; the
        // daemon publishes, fences, then reads the word: one of the two sees the other
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool ready = false;
        for (;;) {
            drain_kicks(); // stale ones (an earlier wait's) would end this wait at once
            ready = !rx_->empty();
            if (ready) {
                break;
            }
            int left = -1;
            if (timeout_ms >= 0) {
                const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start);
                if (spent.count() >= timeout_ms) {
                    break;
                }
                left = timeout_ms - static_cast<int>(spent.count());
            }
            pollfd pf{sock_, POLLIN | POLLRDHUP, 0};
            const int n = ::poll(&pf, 1, left);
            if ((n > 0 && (pf.revents & hangup_events) != 0) || n < 0) {
                ready = !rx_->empty(); // the daemon is gone, or a signal: the caller looks
                break;
            }
        }
        port_region_->region().set_wake(1, 0);
        return ready;
    }

    /// False once the daemon's end of the connection is gone (it stopped or died): nothing
    /// more will be switched, and the buffers this side holds are no one's to return to.
    [[nodiscard]] bool daemon_alive() const noexcept { return !hung_up(sock_); }
    /// True while the daemon sleeps (its wake word is set): the next send() or release()
    /// kicks it.
    [[nodiscard]] bool daemon_asleep() const noexcept {
        return (daemon_wake_word() & daemon_sleeps) != 0;
    }
    /// The daemon's wake word: daemon_sleeps and twice its count of sleeps tried while it
    /// sleeps, 0 while it polls (how often an idle daemon wakes, for tests and monitors).
    [[nodiscard]] std::uint32_t daemon_wake_word() const noexcept {
        return port_region_->region().wake(0);
    }
    /// Marks this side alive in the port region (call now and then from the polling loop).
    void beat() noexcept { port_region_->region().beat(1); }

    [[nodiscard]] const port_stats& stats() const noexcept { return stats_; }
    [[nodiscard]] int socket_fd() const noexcept { return sock_; }
    /// Raw rings, for tests that play a hostile front end.
    [[nodiscard]] ring& tx_ring() noexcept { return *tx_; }
    [[nodiscard]] ring& back_ring() noexcept { return *back_; }

private:
    port() noexcept = default;

    /// Kicks the daemon when it sleeps, once per sleep (called after publishing on tx or
    /// back).
    void wake_daemon() noexcept {
        stats_.kicks += kick_sleeper(port_region_->region(), 0, daemon_sleeps, sock_, kicked_for_) ? 1 : 0;
    }
    /// Reads the kicks the daemon sent, never waiting (a bounded number: the queue holds no
    /// more than the daemon's kicks, one per wait).
    void drain_kicks() noexcept {
        kick k;
        for (int i = 0; i < 64 && ::recv(sock_, &k, sizeof(k), MSG_DONTWAIT | MSG_TRUNC) > 0; ++i) {
        }
    }

    status map() noexcept {
        for (int k = 0; k < 2; ++k) {
            auto fd = recv_fd(sock_);
            if (!fd) {
                return fd.error();
            }
            auto r = shm_region::attach(*fd);
            if (!r) {
                return r.error();
            }
            (k == 0 ? pool_region_ : port_region_).emplace(std::move(*r));
        }
        auto pool = pool_type::at(pool_region_->region(), pool_obj);
        if (!pool) {
            return pool.error();
        }
        if (pool->count() != pool_buffers || pool->buf_size() != buf_size || pool->headroom() != 0) {
            return {errc::invalid_argument, "zero-copy port: the pool is not the format's"};
        }
        pool_.emplace(*pool);
        ring** rings[] = {&lend_, &tx_, &rx_, &back_};
        for (std::uint32_t i = 0; i < 4; ++i) {
            auto r = port_region_->region().ring<ring>(i);
            if (!r) {
                return r.error();
            }
            *rings[i] = *r;
        }
        port_region_->region().announce(1, static_cast<std::uint32_t>(::getpid()), boot_ns());
        return status::success();
    }

    int sock_ = -1;
    std::optional<shm_region> pool_region_, port_region_;
    std::optional<pool_type> pool_;
    ring* lend_ = nullptr;
    ring* tx_ = nullptr;
    ring* rx_ = nullptr;
    ring* back_ = nullptr;
    port_stats stats_{};
    std::uint32_t kicked_for_ = 0; ///< the daemon's wake word last kicked for
    std::uint32_t waits_ = 0;      ///< wait_rx() calls, times two (the word's upper bits)
};

} // namespace npa::lnx::zc
