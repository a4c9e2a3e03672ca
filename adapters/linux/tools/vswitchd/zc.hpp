// npa-vswitchd's zero-copy ports, the daemon's side (the format and the front end's side:
// npa/linux/zc_port.hpp). The daemon owns one pool every zero-copy front end maps; it
// keeps the owner of each buffer in its own memory (a front end can write the shared
// memory, not this table), lends buffers on each port's lend ring, and switches a frame
// between two zero-copy ports by moving its buffer from the sender to the receiver.
#pragma once

#include <npa/linux/zc_port.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace npa::vswitch {

namespace zc = npa::lnx::zc;

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

    /// A buffer from the pool, now `owner`'s; none when the pool is empty.
    [[nodiscard]] std::uint32_t take(std::uint8_t owner) noexcept {
        std::uint32_t b = none;
        // The free ring is the daemon's alone, but it lies in memory the front ends map:
        // an index found there is believed only if the table says the buffer is free.
        while (pool_->alloc_burst(std::span<std::uint32_t>(&b, 1)) == 1) {
            if (owner_[b] == in_pool) {
                owner_[b] = owner;
                return b;
            }
            ++corrupt_;
        }
        return none;
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
    /// Indices the free ring held that the table did not call free (someone wrote the ring).
    [[nodiscard]] std::uint64_t corrupt() const noexcept { return corrupt_; }

private:
    explicit zc_pool(lnx::shm_region r) : region_(std::move(r)), owner_(zc::pool_buffers, in_pool) {}

    lnx::shm_region region_;
    std::optional<zc::pool_type> pool_;
    std::vector<std::uint8_t> owner_;
    std::uint64_t corrupt_ = 0;
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
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        if (p.empty() || p.size() >= sizeof a.sun_path) {
            return {errc::invalid_argument, "zero-copy port: socket path empty or too long"};
        }
        std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
        ::unlink(p.c_str());
        listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (listen_fd < 0 || ::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listen_fd, 4) != 0) {
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
        return status::success();
    }

    /// True when the front end's end of the connection is gone (or it sent something: the
    /// protocol has nothing after the hello, so a message is an error that ends it too).
    [[nodiscard]] bool peer_gone() const noexcept {
        pollfd pf{sock, POLLIN, 0};
        int n;
        do {
            n = ::poll(&pf, 1, 0);
        } while (n < 0 && errno == EINTR);
        return n > 0;
    }

    void close_conn() noexcept {
        if (sock >= 0) {
            ::close(sock);
            sock = -1;
        }
        lend = tx = rx = back = nullptr;
        region.reset();
        staged = 0;
        stage_zero = 0;
    }
};

} // namespace npa::vswitch
