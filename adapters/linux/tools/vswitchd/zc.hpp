// npa-vswitchd's zero-copy ports, the daemon's side (the format and the front end's side:
// npa/linux/zc_port.hpp). The daemon owns one pool every zero-copy front end maps; it
// keeps the owner of each buffer in its own memory (a front end can write the shared
// memory, not this table), lends buffers on each port's lend ring, and switches a frame
// between two zero-copy ports by moving its buffer from the sender to the receiver.
//
// Sleeping (zc_port.hpp, "Waking"): before the daemon sleeps, sleep_word() sets its wake
// word in every attached port region, the engine fences (engine::zc_before_sleep()), and
// quiet() reads the kicks waiting and looks at the tx and back rings once more; a kick, or
// a front end's hang-up, ends the sleep. Kicks are read a bounded number at a time and never waited for, so a front end
// that floods the connection (kicks or anything else) cannot hold the daemon; one that
// still has messages waiting after that is `muted`: its socket is left out of the next
// sleep's poll set for reading (its hang-up still ends the sleep), so it cannot make the
// daemon spin either.
#pragma once

#include "counters.hpp"

#include <npa/config.hpp>
#include <npa/linux/vhost_user/vring.hpp>
#include <npa/linux/zc_port.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace npa::vswitch {

namespace zc = npa::lnx::zc;

/// Tuning: messages read from one front end's connection per look. A front end that
/// follows the protocol kicks once per sleep, so a few are waiting at most; more is a flood,
/// and reading it all would let the front end choose how long the daemon spends here.
inline constexpr std::uint32_t kick_drain = 16;

/// The shared pool and the owner of every buffer in it.
class zc_pool {
public:
    /// Owners: a port's index (below 0xfe), or one of these.
    static constexpr std::uint8_t in_pool = 0xff, in_switch = 0xfe;
    static constexpr std::uint32_t none = ~0u;

    [[nodiscard]] static result<std::unique_ptr<zc_pool>> create() {
        shm::layout l = zc::pool_layout();
        auto r = lnx::shm_region::create(l, "npa-vswitchd-pool");
        if (!r) {
            return r.error();
        }
        auto zp = std::unique_ptr<zc_pool>(new zc_pool(std::move(*r)));
        auto p = zc::pool_type::at(zp->region_.region(), zc::pool_obj, /*create=*/true);
        if (!p) {
            return p.error();
        }
        zp->pool_.emplace(*p);
        return zp;
    }

    /// Up to out.size() buffers from the pool, now `owner`'s; fewer when it runs dry.
    [[nodiscard]] std::uint32_t take_burst(std::uint8_t owner, std::span<std::uint32_t> out) noexcept {
        std::uint32_t n = 0;
        while (n < out.size()) {
            const std::uint32_t got = pool_->alloc_burst(out.subspan(n));
            if (got == 0) {
                break;
            }
            // The free ring is the daemon's alone, but it lies in memory the front ends
            // map: an index found there is believed only if the table says it is free.
            const std::uint32_t end = n + got;
            for (std::uint32_t k = n; k < end; ++k) {
                if (owner_[out[k]] == in_pool) {
                    owner_[out[k]] = owner;
                    out[n++] = out[k];
                }
            }
        }
        return n;
    }
    /// One buffer from the pool, now `owner`'s; none when the pool is empty.
    [[nodiscard]] std::uint32_t take(std::uint8_t owner) noexcept {
        std::uint32_t b = none;
        return take_burst(owner, std::span<std::uint32_t>(&b, 1)) == 1 ? b : none;
    }
    /// Buffer `b` (checked by the caller: below count()) back to the pool.
    void put(std::uint32_t b) noexcept {
        owner_[b] = in_pool;
        pool_->free(b);
    }
    [[nodiscard]] std::uint8_t owner(std::uint32_t b) const noexcept { return owner_[b]; }
    void set_owner(std::uint32_t b, std::uint8_t o) noexcept { owner_[b] = o; }
    [[nodiscard]] std::byte* data(std::uint32_t b) const noexcept { return pool_->payload(b); }
    [[nodiscard]] int fd() const noexcept { return region_.fd(); }
    /// Buffers in the pool (neither lent nor carrying a frame).
    [[nodiscard]] std::uint32_t free_count() const noexcept {
        std::uint32_t n = 0;
        for (const std::uint8_t o : owner_) {
            n += o == in_pool ? 1 : 0;
        }
        return n;
    }
    /// Returns to the pool every buffer `owner` holds; how many.
    std::uint32_t reclaim(std::uint8_t owner) noexcept {
        std::uint32_t n = 0;
        for (std::uint32_t b = 0; b < zc::pool_buffers; ++b) {
            if (owner_[b] == owner) {
                put(b);
                ++n;
            }
        }
        return n;
    }
    /// Indices in the free ring (equal to free_count() unless a front end wrote the ring).
    [[nodiscard]] std::uint32_t available() const noexcept { return pool_->available(); }
    /// The free ring itself, in the memory every zero-copy front end maps (for the fuzz
    /// target that plays one writing it).
    [[nodiscard]] zc::pool_type::free_ring& free_ring() noexcept { return pool_->ring(); }

private:
    explicit zc_pool(lnx::shm_region r) : region_(std::move(r)), owner_(zc::pool_buffers, in_pool) {}

    lnx::shm_region region_;
    std::optional<zc::pool_type> pool_;
    std::vector<std::uint8_t> owner_;
};

/// One zero-copy port's connection: its socket and, while a front end is attached, the
/// port region and its rings.
struct zc_link {
    int listen_fd = -1;
    int sock = -1;
    /// A connection accepted whose hello has not come yet (one at a time: the rest wait
    /// in the listen backlog), and when it was accepted. Nothing waits for it: a client
    /// that connects and says nothing cannot stall the data path.
    int pending = -1;
    std::chrono::steady_clock::time_point pending_since{};
    std::string path;
    std::optional<lnx::shm_region> region;
    zc::ring* lend = nullptr;
    zc::ring* tx = nullptr;
    zc::ring* rx = nullptr;
    zc::ring* back = nullptr;
    std::uint32_t owned = 0; ///< buffers the front end holds (lent, received, in its hands)
    /// Frames switched to the port in this pass, published on its rx ring together.
    std::array<shm::buf_desc, 64> stage{};
    std::uint32_t staged = 0;
    std::uint64_t stage_zero = 0; ///< bit j: stage[j] was handed over, not copied
    /// It flooded the connection: not listened to (for kicks) during the coming sleep.
    bool muted = false;
    std::uint32_t rx_kicked_for = 0; ///< the front end's wake word last kicked for

    zc_link() = default;
    zc_link(const zc_link&) = delete;
    zc_link& operator=(const zc_link&) = delete;
    ~zc_link() {
        close_conn();
        if (pending >= 0) {
            ::close(pending);
        }
        if (listen_fd >= 0) {
            ::close(listen_fd);
            ::unlink(path.c_str());
        }
    }
    [[nodiscard]] bool attached() const noexcept { return sock >= 0 && rx != nullptr; }

    [[nodiscard]] status listen(const std::string& p) noexcept {
        if (!lnx::unix_path_ok(p)) {
            return {errc::invalid_argument, "zero-copy port: socket path empty or too long"};
        }
        listen_fd = lnx::unix_listen(p, SOCK_SEQPACKET, 4);
        if (listen_fd < 0) {
            return {errc::device_error, "zero-copy port: cannot listen on the socket"};
        }
        path = p;
        return status::success();
    }

    /// Answers a connection: the welcome, then (accepted) the two memfds.
    static bool answer(int fd, std::uint32_t st, const char* reason) noexcept {
        zc::welcome w{};
        w.magic = zc::hello_magic;
        w.version = zc::protocol_version;
        w.status = st;
        std::strncpy(w.reason, reason != nullptr ? reason : "refused", sizeof(w.reason) - 1);
        return ::send(fd, &w, sizeof(w), MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof(w));
    }

    /// What read_hello() says of a connection whose hello has not come yet.
    static constexpr const char* not_yet = "";

    /// Reads a front end's hello on a fresh connection without waiting for it: nullptr
    /// when it is one; not_yet when nothing came yet (`expired`: the connection had its
    /// time, and that is a refusal); else the sentence refusing it.
    [[nodiscard]] static const char* read_hello(int fd, bool expired) noexcept {
        zc::hello h{};
        const ssize_t n = ::recv(fd, &h, sizeof(h), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return expired ? "no hello within 200 ms" : not_yet;
        }
        if (n != static_cast<ssize_t>(sizeof(h)) || h.magic != zc::hello_magic) {
            return "the first message is not a zero-copy hello";
        }
        if (h.version != zc::protocol_version) {
            return "protocol version not supported";
        }
        return nullptr;
    }

    /// Makes a fresh port region for a new front end and hands both regions over; `fd` is
    /// the port's connection from then on (closed on failure).
    [[nodiscard]] status attach(int fd, const zc_pool& pool) noexcept {
        const auto fail = [&](status st) {
            [[maybe_unused]] const bool sent = answer(fd, static_cast<std::uint32_t>(st.code()), st.reason());
            ::close(fd);
            region.reset();
            return st;
        };
        shm::layout l = zc::port_layout();
        auto r = lnx::shm_region::create(l, "npa-vswitchd-port");
        if (!r) {
            return fail(r.error());
        }
        region.emplace(std::move(*r));
        zc::ring** rings[] = {&lend, &tx, &rx, &back};
        for (std::uint32_t i = 0; i < 4; ++i) {
            auto ring = region->region().ring<zc::ring>(i, /*create=*/true);
            if (!ring) {
                return fail(ring.error());
            }
            *rings[i] = *ring;
        }
        region->region().announce(0, static_cast<std::uint32_t>(::getpid()), lnx::boot_ns());
        if (!answer(fd, 0, "") || !lnx::send_fd(fd, pool.fd()) || !lnx::send_fd(fd, region->fd())) {
            ::close(fd);
            lend = tx = rx = back = nullptr;
            region.reset();
            return {errc::device_error, "zero-copy port: handing the regions over failed"};
        }
        sock = fd;
        owned = 0;
        staged = 0;
        stage_zero = 0;
        muted = false;
        rx_kicked_for = 0;
        return status::success();
    }

    /// The next connection that said a good hello (its descriptor, for attach()), or -1.
    /// Others are answered with a refusal and closed, `refused(why)` told of each: a
    /// second front end while one is attached, a first message that is not a hello, one
    /// that says nothing for 200 ms. Never waits: a connection whose hello has not come
    /// yet is kept pending and looked at again on the next call.
    template <class Refused>
    [[nodiscard]] int next_front_end(Refused&& refused) noexcept {
        for (;;) {
            const auto now = std::chrono::steady_clock::now();
            if (pending < 0) {
                pending = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                pending_since = now;
                if (pending < 0) {
                    return -1;
                }
            }
            // the hello is read first in every case: a socket closed with a message unread
            // resets the connection, and the front end would never see the refusal
            const char* why = read_hello(pending, now - pending_since > std::chrono::milliseconds(200));
            if (why == not_yet) {
                return -1;
            }
            const int fd = std::exchange(pending, -1);
            if (why == nullptr && attached()) {
                why = "the port has a front end already";
            }
            if (why == nullptr) {
                return fd;
            }
            [[maybe_unused]] const bool sent = answer(fd, static_cast<std::uint32_t>(errc::refused), why);
            ::close(fd);
            refused(why);
        }
    }

    // ---- the data path's part (engine::poll_zc and deliver() call these; out of line:
    //      inlined, they changed what the compiler inlined on the vhost-user path, which
    //      cost it about 50 instructions a frame) ------------------------------------------

    /// Takes the buffers the front end gave back (port `me`); one it does not own, or past
    /// the pool, is counted and left alone. Returns the descriptors read.
    [[gnu::noinline]] std::uint32_t take_back(zc_pool& zp, std::uint8_t me, counters& c) noexcept {
        constexpr std::uint32_t chunk = 32;
        std::array<shm::buf_desc, chunk> d;
        std::uint32_t n = 0;
        for (std::uint32_t k = 0; k < zc::ring_capacity / chunk; ++k) {
            const std::uint32_t got = back->dequeue_burst(std::span<shm::buf_desc>(d));
            for (std::uint32_t j = 0; j < got; ++j) {
                const std::uint32_t b = d[j].buf;
                if (b < zc::pool_buffers && zp.owner(b) == me) {
                    zp.put(b);
                    --owned;
                } else {
                    ++c.zc_bad_buffer;
                }
            }
            n += got;
            if (got < chunk) {
                break;
            }
        }
        return n;
    }

    /// Lends the front end (port `me`) buffers up to lend_target on its ring, within its
    /// hold_limit.
    [[gnu::noinline]] void top_up(zc_pool& zp, std::uint8_t me) noexcept {
        const std::uint32_t on_ring = lend->size();
        if (on_ring >= zc::lend_target / 2) { // refill in batches, not one by one
            return;
        }
        const std::uint32_t want =
            std::min(zc::lend_target - on_ring, owned < zc::hold_limit ? zc::hold_limit - owned : 0u);
        std::array<std::uint32_t, zc::lend_target> b;
        std::array<shm::buf_desc, zc::lend_target> d;
        const std::uint32_t k = zp.take_burst(me, std::span<std::uint32_t>(b.data(), want));
        for (std::uint32_t j = 0; j < k; ++j) {
            d[j] = {b[j], 0};
        }
        const std::uint32_t put = lend->enqueue_burst(std::span<const shm::buf_desc>(d.data(), k));
        for (std::uint32_t j = put; j < k; ++j) { // no room: the front end wrote the ring
            zp.put(d[j].buf);
        }
        owned += put;
    }

    /// A frame for this port (`me`): its buffer handed over when the switch holds it (it
    /// came from another zero-copy port: `zbuf`), else copied into one from the pool;
    /// staged, published by flush(). `c` and `queue` are the port's counters and its one
    /// queue's count.
    [[gnu::noinline]] void stage_frame(zc_pool& zp, std::uint8_t me, counters& c, std::uint64_t& queue,
                                       const vhost_user::frame_parts& frame, std::uint32_t zbuf) noexcept {
        if (!attached()) {
            ++c.tx_down;
            return;
        }
        const std::size_t len = frame.size();
        if (len > zc::buf_size) {
            ++c.tx_too_big;
            return;
        }
        if (owned >= zc::hold_limit) { // it does not give buffers back: the pool is the others'
            ++c.tx_no_buffer;
            return;
        }
        std::uint32_t b;
        if (zbuf != zc_pool::none && zp.owner(zbuf) == zc_pool::in_switch) {
            b = zbuf;
            // the header the decision was made on, back in the frame (the sender may have
            // rewritten it since; the rest is the sender's, as zc_port.hpp says)
            std::memcpy(zp.data(b), frame.head.data(), frame.head.size());
            zp.set_owner(b, me);
            stage_zero |= std::uint64_t{1} << staged;
        } else {
            b = zp.take(me);
            if (b == zc_pool::none) {
                ++c.tx_no_buffer;
                return;
            }
            frame.copy(zp.data(b), 0, len);
        }
        ++owned;
        stage[staged++] = {b, static_cast<std::uint32_t>(len)};
        if (staged == stage.size()) {
            flush(zp, c, queue);
        }
    }

    /// Publishes the staged frames; those the rx ring has no room for (the front end does
    /// not keep up) are dropped and their buffers freed.
    [[gnu::noinline]] void flush(zc_pool& zp, counters& c, std::uint64_t& queue) noexcept {
        if (staged == 0) {
            return;
        }
        const std::uint32_t put = rx->enqueue_burst(std::span<const shm::buf_desc>(stage.data(), staged));
        for (std::uint32_t j = 0; j < put; ++j) {
            ++c.tx_packets;
            c.tx_bytes += stage[j].len;
            c.tx_zero_copy += stage_zero >> j & 1;
        }
        queue += put;
        if (put != 0) {
            wake_receiver(c);
        }
        for (std::uint32_t j = put; j < staged; ++j) {
            ++c.tx_no_buffer;
            zp.put(stage[j].buf);
            --owned;
        }
        staged = 0;
        stage_zero = 0;
    }

    /// Kicks the front end after frames were published on its rx ring, when it waits in
    /// wait_rx(): once per wait (a front end that sets its word and never reads costs one
    /// send a wait, not one a pass).
    void wake_receiver(counters& c) noexcept {
        c.zc_rx_kicks += zc::kick_sleeper(region->region(), 1, zc::rx_wanted, sock, rx_kicked_for) ? 1 : 0;
    }

    // ---- sleeping (the daemon's loop calls these; zc_port.hpp, "Waking") -----------------

    /// The daemon's wake word in this port's region: zc::daemon_sleeps and its count of
    /// sleeps before it sleeps, 0 once awake.
    void sleep_word(std::uint32_t w) noexcept { region->region().set_wake(0, w); }

    /// Reads what the front end sent, at most kick_drain messages, never waiting: kicks are
    /// counted (zc_kicks), anything else (zc_bad_kick) dropped. `muted` when messages are
    /// still waiting after that.
    void read_kicks(counters& c) noexcept {
        for (std::uint32_t k = 0; k < kick_drain; ++k) {
            zc::kick m{};
            const ssize_t n = ::recv(sock, &m, sizeof(m), MSG_DONTWAIT | MSG_TRUNC);
            if (n < 0 || (n == 0 && peer_gone())) { // nothing more, or its end (service_zc's)
                muted = false;
                return;
            }
            if (n == static_cast<ssize_t>(sizeof(m)) && m.magic == zc::kick_magic) {
                ++c.zc_kicks;
            } else {
                ++c.zc_bad_kick;
            }
        }
        pollfd pf{sock, POLLIN, 0};
        muted = ::poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN) != 0;
    }

    /// The last look before a sleep, after sleep_word(): false when the front end published
    /// something on tx or back meanwhile (the daemon then does not sleep). Every port's
    /// word is set before the first call (the caller fences once after setting them all).
    [[nodiscard]] bool quiet(counters& c) noexcept {
        read_kicks(c); // what came since the last sleep: stale, or a flood (`muted`)
        return tx->empty() && back->empty();
    }

    /// True when the front end's end of the connection is gone. A message is not that: the
    /// front end kicks (read_kicks() reads those).
    [[nodiscard]] bool peer_gone() const noexcept { return zc::hung_up(sock); }

    void close_conn() noexcept {
        if (sock >= 0) {
            ::close(sock);
            sock = -1;
        }
        lend = tx = rx = back = nullptr;
        region.reset();
        staged = 0;
        stage_zero = 0;
        muted = false;
    }
};

} // namespace npa::vswitch
