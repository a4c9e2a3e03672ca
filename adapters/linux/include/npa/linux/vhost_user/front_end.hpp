// npa/linux/vhost_user/front_end.hpp: the front end's side of a vhost-user connection: the
// shareable memory its rings and buffers live in, and the session that hands that memory and
// the rings to a back end (DPDK's net_vhost, QEMU's vhost-user back ends, npa-vswitchd).
//
//   shared_memory    one memfd, mapped shared: what SET_MEM_TABLE passes (one region, its
//                    descriptor) and what ring and buffer addresses point into.
//   front_end        connect(path), then negotiate(features wanted): GET_FEATURES,
//                    SET_FEATURES (the wanted ones the back end offers, plus protocol
//                    features when offered), GET/SET_PROTOCOL_FEATURES (REPLY_ACK when
//                    offered: every later request is then acknowledged; MQ when the
//                    caller asks for it), SET_OWNER,
//                    SET_MEM_TABLE; then set_ring(i, layout) for each ring: SET_VRING_NUM,
//                    SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL (eventfds
//                    the front end keeps; or "no descriptor": the ring is polled) and
//                    SET_VRING_ENABLE; get_ring_base(i) stops a ring and says where it was.
//                    Before negotiate(), offered_protocol_features() and queue_num() ask
//                    what the back end has (GET_PROTOCOL_FEATURES and GET_QUEUE_NUM may
//                    come before SET_FEATURES: vhost-user.rst, "Multiple queue support").
//
// A back end that goes away shows as an error from the next request (EPIPE, ECONNRESET, or
// end of stream on a reply); reconnect() closes the socket and the caller runs the sequence
// again once the back end listens again. Every reply is checked (message.hpp) before use;
// a request times out after `timeout_ms` without a reply.
#pragma once

#include <npa/linux/unix_socket.hpp>
#include <npa/linux/vhost_user/message.hpp>
#include <npa/status.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace npa::vhost_user {

/// One memfd, mapped shared, sized to whole pages.
class shared_memory {
public:
    shared_memory() noexcept = default;
    shared_memory(const shared_memory&) = delete;
    shared_memory& operator=(const shared_memory&) = delete;
    shared_memory(shared_memory&& o) noexcept { *this = std::move(o); }
    shared_memory& operator=(shared_memory&& o) noexcept {
        if (this != &o) {
            release();
            std::swap(fd_, o.fd_);
            std::swap(base_, o.base_);
            std::swap(size_, o.size_);
        }
        return *this;
    }
    ~shared_memory() { release(); }

    [[nodiscard]] status create(std::size_t bytes, const char* name = "npa-vhost-user") noexcept {
        release();
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        if (bytes == 0) {
            return {errc::invalid_argument, "vhost-user: shared memory of 0 bytes"};
        }
        bytes = (bytes + page - 1) / page * page;
        fd_ = ::memfd_create(name, MFD_CLOEXEC);
        if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
            release();
            return {errc::no_memory, "vhost-user: memfd_create/ftruncate failed"};
        }
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) {
            release();
            return {errc::no_memory, "vhost-user: mmap of the memfd failed"};
        }
        base_ = static_cast<std::byte*>(p);
        size_ = bytes;
        return status::success();
    }

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    /// The front end's address of byte `off` (what ring addresses carry).
    [[nodiscard]] std::uint64_t address(std::size_t off) const noexcept {
        return reinterpret_cast<std::uint64_t>(base_ + off);
    }

private:
    void release() noexcept {
        if (base_ != nullptr) {
            ::munmap(base_, size_);
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = -1;
        base_ = nullptr;
        size_ = 0;
    }

    int fd_ = -1;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
};

/// Where one ring lives in the shared memory (byte offsets) and how long it is.
struct ring_layout {
    std::uint16_t size = 0;  ///< descriptors (a power of two)
    std::size_t desc = 0, avail = 0, used = 0;
    std::uint16_t base = 0;  ///< where the device starts (SET_VRING_BASE; packed: ring_base.hpp)
    bool polled = false;     ///< no kick/call descriptors: both sides poll
};

class front_end {
public:
    struct ring_fds {
        int kick = -1, call = -1;
    };

    explicit front_end(int timeout_ms = 5000) noexcept : timeout_ms_(timeout_ms) {}
    front_end(const front_end&) = delete;
    front_end& operator=(const front_end&) = delete;
    ~front_end() {
        disconnect();
        for (ring_fds& r : rings_) {
            close_fd(r.kick);
            close_fd(r.call);
        }
    }

    [[nodiscard]] status connect(const std::string& path) noexcept {
        disconnect();
        if (!lnx::unix_path_ok(path)) {
            return {errc::invalid_argument, "vhost-user: socket path empty or too long"};
        }
        sock_ = lnx::unix_connect(path, SOCK_STREAM);
        if (sock_ < 0) {
            disconnect();
            return {errc::removed, "vhost-user: no back end listens on the socket"};
        }
        return status::success();
    }
    void disconnect() noexcept {
        close_fd(sock_);
        features_ = protocol_features_ = 0;
    }
    [[nodiscard]] bool connected() const noexcept { return sock_ >= 0; }

    /// Whether the back end is still there, without a request: a closed or reset socket
    /// (or an end of stream waiting to be read) disconnects. One poll(), no blocking, so a
    /// data path that sends no request can still see the back end go.
    [[nodiscard]] bool alive() noexcept {
        if (sock_ < 0) {
            return false;
        }
        pollfd pf{sock_, static_cast<short>(POLLIN | POLLRDHUP), 0};
        if (::poll(&pf, 1, 0) <= 0) {
            return true;  // nothing happened (or EINTR: asked again next time)
        }
        if ((pf.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) != 0) {
            disconnect();
            return false;
        }
        char c;
        if (::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            disconnect();
            return false;
        }
        return true;  // bytes nobody asked for: left for the next reply check to refuse
    }

    /// GET_FEATURES alone: what the back end offers (before negotiate()).
    [[nodiscard]] status offered_features(std::uint64_t& f) noexcept {
        return get_u64(request::get_features, f);
    }

    /// GET_PROTOCOL_FEATURES alone (the back end must offer f_protocol_features).
    [[nodiscard]] status offered_protocol_features(std::uint64_t& pf) noexcept {
        return get_u64(request::get_protocol_features, pf);
    }

    /// GET_QUEUE_NUM: the queues the back end has (for a net device, queue pairs). Only for
    /// a back end whose protocol features offer MQ.
    [[nodiscard]] status queue_num(std::uint64_t& n) noexcept {
        return get_u64(request::get_queue_num, n);
    }

    /// GET_FEATURES ... SET_MEM_TABLE. `wanted`: the virtio features the front end would
    /// use; the ones the back end also offers are set (features()). `wanted_protocol`: the
    /// protocol features beside REPLY_ACK to take when offered (protocol::mq for more than
    /// one queue pair).
    [[nodiscard]] status negotiate(std::uint64_t wanted, const shared_memory& mem,
                                   std::uint64_t wanted_protocol = 0) noexcept {
        std::uint64_t offered = 0;
        if (status st = get_u64(request::get_features, offered); !st) {
            return st;
        }
        features_ = offered & (wanted | f_protocol_features);
        if (status st = send_and_ack(message::with_u64(request::set_features, features_)); !st) {
            return st;
        }
        if ((features_ & f_protocol_features) != 0) {
            std::uint64_t pf = 0;
            if (status st = get_u64(request::get_protocol_features, pf); !st) {
                return st;
            }
            const std::uint64_t want_pf = pf & (protocol::reply_ack | wanted_protocol);
            if (status st = send_and_ack(message::with_u64(request::set_protocol_features, want_pf)); !st) {
                return st;
            }
            protocol_features_ = want_pf;
        }
        if (status st = send_and_ack(message::make(request::set_owner)); !st) {
            return st;
        }
        message m = message::make(request::set_mem_table);
        memory_table t{};
        t.nregions = 1;
        t.regions[0] = {mem.address(0), mem.size(), mem.address(0), 0};
        std::memcpy(m.payload.data(), &t, 8 + sizeof(memory_region));
        m.hdr.size = 8 + sizeof(memory_region);
        const int fd = mem.fd();
        return send_and_ack(m, &fd, 1);
    }

    /// Hands ring `i` to the back end and enables it (`enable` false: it stays disabled until
    /// enable_ring(), as a front end's rings past the queue pairs in use do; with protocol
    /// features negotiated a ring starts disabled, vhost-user.rst "Ring states").
    [[nodiscard]] status set_ring(std::uint32_t i, const ring_layout& r, const shared_memory& mem,
                                  bool enable = true) noexcept {
        if (i >= max_rings || r.size == 0 || (r.size & (r.size - 1)) != 0) {
            return {errc::invalid_argument, "vhost-user: ring index beyond 255 or size not a power of two"};
        }
        if (r.desc >= mem.size() || r.avail >= mem.size() || r.used >= mem.size()) {
            return {errc::invalid_argument, "vhost-user: a ring outside the shared memory"};
        }
        if (status st = send_and_ack(message::with_state(request::set_vring_num, i, r.size)); !st) {
            return st;
        }
        if (status st = send_and_ack(message::with_state(request::set_vring_base, i, r.base)); !st) {
            return st;
        }
        message a = message::make(request::set_vring_addr);
        a.put(vring_addr{i, 0, mem.address(r.desc), mem.address(r.used), mem.address(r.avail), 0});
        if (status st = send_and_ack(a); !st) {
            return st;
        }
        ring_fds& f = rings_[i];
        for (const request q : {request::set_vring_kick, request::set_vring_call}) {
            int& fd = q == request::set_vring_kick ? f.kick : f.call;
            close_fd(fd);
            if (r.polled) {
                if (status st = send_and_ack(message::with_u64(q, i | vring_nofd)); !st) {
                    return st;
                }
                continue;
            }
            fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (fd < 0) {
                return {errc::no_memory, "vhost-user: eventfd failed"};
            }
            if (status st = send_and_ack(message::with_u64(q, i), &fd, 1); !st) {
                return st;
            }
        }
        if ((features_ & f_protocol_features) != 0 && enable) {
            return send_and_ack(message::with_state(request::set_vring_enable, i, 1));
        }
        return status::success();
    }

    /// SET_VRING_ENABLE: ring `i` enabled or disabled (with protocol features negotiated; the
    /// ring keeps its setup, as a front end running fewer pairs than it set up does).
    [[nodiscard]] status enable_ring(std::uint32_t i, bool on) noexcept {
        if ((features_ & f_protocol_features) == 0) {
            return {errc::invalid_argument, "vhost-user: SET_VRING_ENABLE without protocol features"};
        }
        return send_and_ack(message::with_state(request::set_vring_enable, i, on ? 1 : 0));
    }

    /// GET_VRING_BASE: the back end stops ring `i` and answers the index it reached.
    [[nodiscard]] status get_ring_base(std::uint32_t i, std::uint32_t& base) noexcept {
        message m = message::with_state(request::get_vring_base, i, 0);
        message reply;
        if (status st = transact(m, nullptr, 0, &reply); !st) {
            return st;
        }
        base = reply.get<vring_state>().num;
        return status::success();
    }

    [[nodiscard]] std::uint64_t features() const noexcept { return features_; }
    [[nodiscard]] std::uint64_t protocol_features() const noexcept { return protocol_features_; }
    [[nodiscard]] const ring_fds& fds(std::uint32_t i) const noexcept { return rings_[i]; }
    /// Requests sent on this connection (telemetry, tests).
    [[nodiscard]] std::uint64_t requests() const noexcept { return requests_; }

private:
    static void close_fd(int& fd) noexcept {
        if (fd >= 0) {
            ::close(fd);
        }
        fd = -1;
    }

    [[nodiscard]] status get_u64(request r, std::uint64_t& v) noexcept {
        message reply;
        if (status st = transact(message::make(r), nullptr, 0, &reply); !st) {
            return st;
        }
        v = reply.get<std::uint64_t>();
        return status::success();
    }

    // A request that carries no answer: with REPLY_ACK negotiated it asks for one and
    // checks it (0: done).
    [[nodiscard]] status send_and_ack(message m, const int* fds = nullptr, std::uint32_t nfds = 0) noexcept {
        if ((protocol_features_ & protocol::reply_ack) == 0) {
            return transact(m, fds, nfds, nullptr);
        }
        m.hdr.flags |= flag_need_reply;
        message reply;
        if (status st = transact(m, fds, nfds, &reply); !st) {
            return st;
        }
        return reply.get<std::uint64_t>() == 0
                   ? status::success()
                   : status{errc::refused, "vhost-user: the back end refused a request (REPLY_ACK non-zero)"};
    }

    [[nodiscard]] status transact(const message& m, const int* fds, std::uint32_t nfds, message* reply) noexcept {
        if (sock_ < 0) {
            return {errc::bad_state, "vhost-user: not connected"};
        }
        const auto out = m.bytes();
        iovec iov{const_cast<std::byte*>(out.data()), out.size()};
        msghdr h{};
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_fds)]{};
        if (nfds != 0) {
            h.msg_control = ctrl;
            h.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            cmsghdr* c = CMSG_FIRSTHDR(&h);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ++requests_;
        ssize_t n;
        do {
            n = ::sendmsg(sock_, &h, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n != static_cast<ssize_t>(out.size())) {
            disconnect();
            return {errc::removed, "vhost-user: the back end went away (send failed)"};
        }
        if (reply == nullptr) {
            return status::success();
        }
        if (status st = read_exact(&reply->hdr, sizeof(header)); !st) {
            return st;
        }
        if (reply->hdr.size > max_payload) {
            disconnect();  // the stream cannot be resynchronised
            return {errc::device_error, "vhost-user: a reply larger than any payload"};
        }
        if (status st = read_exact(reply->payload.data(), reply->hdr.size); !st) {
            return st;
        }
        const status st = check(*reply, 0, true, m.req());
        if (!st) {
            disconnect();
        }
        return st;
    }

    [[nodiscard]] status read_exact(void* to, std::size_t bytes) noexcept {
        auto* p = static_cast<std::byte*>(to);
        while (bytes != 0) {
            pollfd pf{sock_, POLLIN, 0};
            const int r = ::poll(&pf, 1, timeout_ms_);
            if (r == 0) {
                disconnect();
                return {errc::timeout, "vhost-user: no reply from the back end"};
            }
            const ssize_t n = r < 0 ? -1 : ::recv(sock_, p, bytes, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                disconnect();
                return {errc::removed, "vhost-user: the back end went away (end of stream)"};
            }
            p += n;
            bytes -= static_cast<std::size_t>(n);
        }
        return status::success();
    }

    int sock_ = -1;
    int timeout_ms_;
    std::uint64_t features_ = 0, protocol_features_ = 0, requests_ = 0;
    ring_fds rings_[max_rings]{};
};

} // namespace npa::vhost_user
