// npa/linux/vhost_user/back_end.hpp: the back end's side of a vhost-user connection (QEMU's
// docs/interop/vhost-user.rst), as npa-vswitchd serves one port: a listening unix socket
// (server mode) or a front end's socket it connects to (client mode), one front end at a
// time, the requests that set up a virtio-net device's rings, and the rings themselves
// (vring.hpp) for the data path to walk.
//
//   listen(path)  binds and listens (a stale socket file is replaced); or
//   connect_to(path)  the front end listens: service() connects, again after a disconnect.
//   service()     control path, never blocks for long: accepts a front end, reads and
//                 answers whatever requests arrived. Returns false when the connection was
//                 closed (the front end went away, or sent a malformed message: logged
//                 through the `log` callback); the port is reset and listens again.
//   rings()       the data path's view: ring i ready() once it has memory, addresses, a
//                 kick (or "no descriptor": polled) and, with protocol features, is enabled.
//
// Requests answered: GET/SET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK), SET_OWNER,
// RESET_OWNER, SET_MEM_TABLE (each region's descriptor mapped), SET_VRING_NUM/ADDR/BASE/
// KICK/CALL/ERR, GET_VRING_BASE, SET_VRING_ENABLE, GET_QUEUE_NUM, SEND_RARP and
// NET_SET_MTU (acknowledged); before GET_VRING_BASE or SET_VRING_ENABLE 0 stops a ready
// ring, before_ring_stop lets the owner walk what is still available on it. Each arrives
// checked by message.hpp's check(); beyond that a
// ring index past the port's rings, a feature not offered, a ring size the negotiated layout
// does not allow (split: a power of two; packed: 1..32768), a packed base past the ring, or
// ring areas outside the mapped memory close the connection.
//
// Indirect descriptors (VIRTIO_F_INDIRECT_DESC, 2.7.5.3 and 2.8.13) are offered: a table
// is read where it lies in the mapped memory and checked as vring.hpp's walks check a chain.
//
// Rings past the port's (a front end set up for more pairs than the port has): DPDK's
// virtio-user with queues=2 sets up every ring it was configured for even when MQ was not
// negotiated (it then runs one pair), as DPDK's vhost library accepts any index below 256.
// Their setup is accepted and ignored (descriptors closed, GET_VRING_BASE answered 0) and
// logged once; enabling one (SET_VRING_ENABLE 1) closes the connection, since frames on a
// ring the port never walks would be lost unseen.
//
// Split and packed rings (VIRTIO_F_RING_PACKED, virtio 1.2 2.8) are both offered; the
// front end's SET_FEATURES chooses for every ring of the connection. For a packed ring
// SET_VRING_ADDR's desc/avail/used are the descriptor ring and the driver's and device's
// event suppression areas, and SET_VRING_BASE / GET_VRING_BASE carry the position in bits
// 0..14 and the wrap counter in bit 15 (virtq_device.hpp's encode_base).
#pragma once

#include <npa/linux/unix_socket.hpp>
#include <npa/linux/vhost_user/guest_memory.hpp>
#include <npa/linux/vhost_user/message.hpp>
#include <npa/linux/vhost_user/vring.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/status.hpp>
#include <npa/virtio/transport.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace npa::vhost_user {

/// The virtio feature bits the back end offers and looks at (virtio 1.2, 5.1.3 and 6).
namespace feature {
inline constexpr std::uint64_t version_1 = virtio::feature::VERSION_1;
inline constexpr std::uint64_t ring_event_idx = virtio::feature::EVENT_IDX;
inline constexpr std::uint64_t in_order = virtio::feature::IN_ORDER;
inline constexpr std::uint64_t ring_packed = virtio::feature::RING_PACKED;
inline constexpr std::uint64_t ring_indirect_desc = virtio::feature::INDIRECT_DESC;
inline constexpr std::uint64_t net_mrg_rxbuf = virtio_net::feature::MRG_RXBUF;
inline constexpr std::uint64_t net_mq = virtio_net::feature::MQ;
} // namespace feature

class back_end {
public:
    using log_fn = std::function<void(const std::string&)>;

    /// `queues`: queue pairs offered (rings 2q receive, 2q+1 transmit). Multiqueue
    /// (VIRTIO_NET_F_MQ, virtio 1.2 5.1.3) is offered only with more than one pair: a front
    /// end asking for more pairs than there are then runs one (DPDK's virtio-user reads
    /// max_virtqueue_pairs only when MQ is negotiated, and leaves MQ out unless the protocol
    /// feature MQ is too). A front end without a control queue on this side is fine: DPDK's
    /// virtio-user keeps VIRTIO_NET_F_CTRL_VQ to itself, answers VQ_PAIRS_SET in its own
    /// process and enables the pairs it uses with SET_VRING_ENABLE. The protocol feature
    /// MQ stays offered with one pair: it only says GET_QUEUE_NUM is answered, which lets
    /// QEMU refuse a queues= larger than the port's in words.
    explicit back_end(std::uint32_t queues = 1, log_fn log = {}) noexcept
        : rings_(2u * queues), queues_(queues), log_(std::move(log)) {
        if (queues > 1) {
            offered |= feature::net_mq;
        }
    }
    back_end(const back_end&) = delete;
    back_end& operator=(const back_end&) = delete;
    ~back_end() {
        disconnect();
        close_fd(listen_);
        if (!path_.empty()) {
            ::unlink(path_.c_str());
        }
    }

    /// Offered virtio features (protocol features always added).
    std::uint64_t offered = feature::version_1 | feature::net_mrg_rxbuf | feature::ring_event_idx |
                            feature::in_order | feature::ring_packed | feature::ring_indirect_desc |
                            f_protocol_features;
    std::uint64_t offered_protocol = protocol::mq | protocol::reply_ack;
    /// Logs every request (its first 8 payload bytes beside it).
    bool trace = false;
    /// Called with a ready ring's index when GET_VRING_BASE or SET_VRING_ENABLE 0 is about to
    /// stop it, before the answer: the owner walks what the front end made available up to
    /// then (a sender that stops its port counted those frames as sent), so none is left
    /// unread. DPDK's virtio-user disables every pair before it asks for the bases, and a
    /// front end that runs fewer pairs disables the rest (vhost-user.rst, "Ring states": a
    /// disabled ring's TX packets are still processed).
    std::function<void(std::uint32_t)> before_ring_stop;

    [[nodiscard]] status listen(const std::string& path) noexcept {
        if (!lnx::unix_path_ok(path)) {
            return {errc::invalid_argument, "vhost-user: socket path empty or too long"};
        }
        listen_ = lnx::unix_listen(path, SOCK_STREAM, 1);
        if (listen_ < 0) {
            return {errc::device_error, "vhost-user: cannot listen on the socket"};
        }
        path_ = path;
        return status::success();
    }

    /// Client mode instead of listen(): the front end listens on `path` (DPDK's virtio-user
    /// with server=1, QEMU's server sockets) and service() connects, again after every
    /// disconnect.
    void connect_to(const std::string& path) { client_path_ = path; }

    [[nodiscard]] bool connected() const noexcept { return sock_ >= 0; }
    [[nodiscard]] int listen_fd() const noexcept { return listen_; }
    [[nodiscard]] int sock_fd() const noexcept { return sock_; }
    [[nodiscard]] std::uint64_t features() const noexcept { return features_; }
    [[nodiscard]] bool has(std::uint64_t f) const noexcept { return (features_ & f) != 0; }
    [[nodiscard]] const guest_memory& memory() const noexcept { return mem_; }
    /// The memory, writable: a test stands in for SET_MEM_TABLE with guest_memory::add().
    [[nodiscard]] guest_memory& memory() noexcept { return mem_; }
    [[nodiscard]] std::span<vring> rings() noexcept { return rings_; }
    [[nodiscard]] std::uint32_t queues() const noexcept { return queues_; }
    /// Moves on whenever a request or a disconnect may have started, stopped, enabled or
    /// disabled a ring, so the data path looks at which rings run only when this changed
    /// (a ring the walk finds broken does not move it: ready() says so at once).
    [[nodiscard]] std::uint64_t ring_generation() const noexcept { return ring_generation_; }
    /// The virtio-net header's length: 12 with VERSION_1 or MRG_RXBUF, else 10 (5.1.6).
    [[nodiscard]] std::size_t hdr_len() const noexcept {
        return has(feature::version_1) || has(feature::net_mrg_rxbuf) ? 12 : 10;
    }
    /// Front ends accepted so far.
    [[nodiscard]] std::uint64_t connections() const noexcept { return connections_; }
    /// Connections closed for a protocol violation.
    [[nodiscard]] std::uint64_t protocol_errors() const noexcept { return protocol_errors_; }

    /// Accepts a waiting front end and answers the requests that arrived. False when the
    /// connection closed in this call.
    bool service() noexcept {
        if (sock_ < 0) {
            if (listen_ >= 0) {
                sock_ = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
            } else if (!client_path_.empty()) {
                sock_ = lnx::unix_connect(client_path_, SOCK_STREAM);
            }
            connections_ += sock_ >= 0 ? 1 : 0;
            return true;
        }
        for (;;) {
            pollfd pf{sock_, POLLIN, 0};
            if (::poll(&pf, 1, 0) <= 0) {
                return true;
            }
            message m;
            std::vector<int> fds;
            if (status st = read_message(m, fds); !st) {
                if (st.code() != errc::removed) {
                    ++protocol_errors_;
                }
                log(st.reason());
                disconnect();
                return false;
            }
            if (trace) {
                log(std::string(to_string(m.req())) + " " + std::to_string(m.hdr.size > 0 ? m.get<std::uint64_t>() : 0));
            }
            if (status st = handle(m, fds); !st) {
                ++protocol_errors_;
                log(std::string(to_string(m.req())) + ": " + st.reason());
                disconnect();
                return false;
            }
        }
    }

    /// Closes the connection and resets the port (rings stopped, memory unmapped).
    void disconnect() noexcept {
        ++ring_generation_;
        close_fd(sock_);
        for (vring& r : rings_) {
            close_fd(r.kick);
            close_fd(r.call);
            close_fd(r.err);
            r = vring{};
        }
        mem_.clear();
        features_ = protocol_ = 0;
        unused_ring_noted_ = false;
    }

    /// Tells the front end about used entries published on ring `r` (call eventfd).
    static void signal(const vring& r) noexcept {
        if (r.call >= 0) {
            const std::uint64_t one = 1;
            [[maybe_unused]] const ssize_t n = ::write(r.call, &one, sizeof one);
        }
    }

private:
    static void close_fd(int& fd) noexcept {
        if (fd >= 0) {
            ::close(fd);
        }
        fd = -1;
    }
    void log(const std::string& s) const {
        if (log_) {
            log_(s);
        }
    }

    // One whole message and its descriptors. A message that stops half way waits at most
    // read_timeout_ms for the rest: a front end that stalls loses its connection, never
    // the daemon's thread.
    [[nodiscard]] status read_message(message& m, std::vector<int>& fds) noexcept {
        header h{};
        iovec iov{&h, sizeof h};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_fds)]{};
        mh.msg_control = ctrl;
        mh.msg_controllen = sizeof ctrl;
        ssize_t n;
        do {
            n = ::recvmsg(sock_, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            return {errc::removed, "vhost-user: the front end went away"};
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (std::size_t i = 0; i < k; ++i) {
                    int fd;
                    std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                    fds.push_back(fd);
                }
            }
        }
        const auto fail = [&](status st) {
            for (const int fd : fds) {
                ::close(fd);
            }
            fds.clear();
            return st;
        };
        if ((mh.msg_flags & MSG_CTRUNC) != 0) {
            return fail({errc::invalid_argument, "vhost-user: more descriptors than any request carries"});
        }
        std::size_t got = n < 0 ? 0 : static_cast<std::size_t>(n);
        if (status st = read_rest(reinterpret_cast<std::byte*>(&h), sizeof h, got); !st) {
            return fail(st);
        }
        if (h.size > max_payload) {
            return fail({errc::invalid_argument, "vhost-user: payload larger than any request's"});
        }
        m.hdr = h;
        got = 0;
        if (status st = read_rest(m.payload.data(), h.size, got); !st) {
            return fail(st);
        }
        if (status st = check(m, static_cast<std::uint32_t>(fds.size())); !st) {
            return fail(st);
        }
        return status::success();
    }
    [[nodiscard]] status read_rest(std::byte* p, std::size_t want, std::size_t got) noexcept {
        while (got < want) {
            pollfd pf{sock_, POLLIN, 0};
            if (::poll(&pf, 1, read_timeout_ms) <= 0) {
                return {errc::invalid_argument, "vhost-user: a message cut short"};
            }
            const ssize_t n = ::recv(sock_, p + got, want - got, MSG_DONTWAIT);
            if (n == 0) {
                return {errc::removed, "vhost-user: the front end went away"};
            }
            if (n > 0) {
                got += static_cast<std::size_t>(n);
            }
        }
        return status::success();
    }

    [[nodiscard]] status reply(const message& req, const void* payload, std::uint32_t size) noexcept {
        message m;
        m.hdr = {req.hdr.request, version | flag_reply, size};
        std::memcpy(m.payload.data(), payload, size);
        const auto out = m.bytes();
        if (::send(sock_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
            return {errc::removed, "vhost-user: the front end went away"};
        }
        return status::success();
    }
    [[nodiscard]] status reply_u64(const message& req, std::uint64_t v) noexcept { return reply(req, &v, 8); }

    // A ring past the port's set up: said once per connection (message.hpp's check() keeps
    // the index below 256).
    void note_unused_ring(std::uint32_t index) {
        if (!unused_ring_noted_) {
            unused_ring_noted_ = true;
            log("ring " + std::to_string(index) + " is past the port's " + std::to_string(queues_) +
                " queue pair(s): its setup is ignored, and enabling it refused");
        }
    }
    [[nodiscard]] vring* ring_of(std::uint32_t index) noexcept {
        return index < rings_.size() ? &rings_[index] : nullptr;
    }
    // A ring whose setup is complete starts (the data path walks it from then on).
    [[nodiscard]] status try_start(vring& r) noexcept {
        if (!r.kicked || r.started) {
            return status::success();
        }
        if (has(feature::ring_packed) && (r.base & 0x7FFFu) >= r.num) {
            return {errc::invalid_argument, "vhost-user: a packed ring's base past its end"};
        }
        if (mem_.empty() || !r.start(mem_, has(feature::ring_event_idx), has(feature::ring_packed),
                                         has(feature::ring_indirect_desc))) {
            return {errc::invalid_argument, "vhost-user: ring areas outside the front end's memory"};
        }
        return status::success();
    }

    [[nodiscard]] status handle(const message& m, std::vector<int>& fds) noexcept {
        ++ring_generation_; // requests are rare: any of them counts as a change
        const bool ack = (protocol_ & protocol::reply_ack) != 0 && (m.hdr.flags & flag_need_reply) != 0;
        status st = status::success();
        switch (m.req()) {
        case request::get_features:
            return reply_u64(m, offered);
        case request::get_protocol_features:
            return reply_u64(m, offered_protocol);
        case request::get_queue_num:
            return reply_u64(m, queues_);
        case request::set_features: {
            const auto f = m.get<std::uint64_t>();
            if ((f & ~offered) != 0) {
                return {errc::invalid_argument, "features the back end did not offer"};
            }
            features_ = f;
            // Without protocol features every ring is enabled from the start (the spec's
            // "ring enable" rule); with them it waits for SET_VRING_ENABLE.
            for (vring& r : rings_) {
                r.enabled = r.enabled || (f & f_protocol_features) == 0;
            }
            break;
        }
        case request::set_protocol_features: {
            const auto f = m.get<std::uint64_t>();
            if ((f & ~offered_protocol) != 0) {
                return {errc::invalid_argument, "protocol features the back end did not offer"};
            }
            protocol_ = f;
            break;
        }
        case request::set_owner:
        case request::send_rarp:
        case request::net_set_mtu:
            break;
        case request::reset_owner:
            for (vring& r : rings_) {
                r.started = false;
            }
            break;
        case request::set_mem_table: {
            const auto t = m.get<memory_table>();
            for (vring& r : rings_) {
                r.started = false; // re-bound below to the new mapping
            }
            st = mem_.map(t, fds);
            fds.clear();
            for (vring& r : rings_) {
                if (st) {
                    st = try_start(r);
                }
            }
            break;
        }
        case request::set_vring_num:
        case request::set_vring_base:
        case request::get_vring_base:
        case request::set_vring_enable: {
            const auto s = m.get<vring_state>();
            vring* r = ring_of(s.index);
            if (r == nullptr) {
                if (m.req() == request::set_vring_enable && s.num != 0) {
                    return {errc::invalid_argument, "a ring beyond the port's queue pairs enabled"};
                }
                note_unused_ring(s.index);
                if (m.req() == request::get_vring_base) {
                    const vring_state out{s.index, 0};
                    return reply(m, &out, sizeof out);
                }
                break;
            }
            if (m.req() == request::set_vring_num) {
                if (has(feature::ring_packed) ? !virtio::packed_size_ok(s.num) : !virtio::queue_size_ok(s.num)) {
                    return {errc::invalid_argument, has(feature::ring_packed)
                                                        ? "a packed ring size of 0 or past 32768"
                                                        : "a ring size that is no power of two up to 32768"};
                }
                r->num = s.num;
            } else if (m.req() == request::set_vring_base) {
                r->base = static_cast<std::uint16_t>(s.num);
            } else if (m.req() == request::set_vring_enable) {
                if (s.num == 0 && before_ring_stop && r->ready()) {
                    before_ring_stop(s.index);
                }
                r->enabled = s.num != 0;
            } else {
                if (before_ring_stop && r->ready()) {
                    before_ring_stop(s.index);
                }
                const vring_state out{s.index, r->stop()};
                close_fd(r->kick);
                r->kicked = false;
                return reply(m, &out, sizeof out);
            }
            break;
        }
        case request::set_vring_addr: {
            const auto a = m.get<vring_addr>();
            vring* r = ring_of(a.index);
            if (r == nullptr) {
                note_unused_ring(a.index);
                break;
            }
            r->desc_uva = a.desc_user_addr;
            r->avail_uva = a.avail_user_addr;
            r->used_uva = a.used_user_addr;
            r->addr_set = true;
            r->started = false;
            st = try_start(*r);
            break;
        }
        case request::set_vring_kick:
        case request::set_vring_call:
        case request::set_vring_err: {
            const auto v = m.get<std::uint64_t>();
            vring* r = ring_of(static_cast<std::uint32_t>(v & vring_index_mask));
            const int fd = fds.empty() ? -1 : fds.front();
            fds.clear();
            if (r == nullptr) {
                if (fd >= 0) {
                    ::close(fd);
                }
                note_unused_ring(static_cast<std::uint32_t>(v & vring_index_mask));
                break;
            }
            int& slot = m.req() == request::set_vring_kick ? r->kick
                        : m.req() == request::set_vring_call ? r->call
                                                             : r->err;
            close_fd(slot);
            slot = fd;
            if (m.req() == request::set_vring_kick) {
                r->kicked = true;
                r->started = false;
                st = try_start(*r);
            }
            break;
        }
        case request::set_log_base:
        case request::set_log_fd:
            return {errc::invalid_argument, "dirty logging was not offered"};
        }
        for (const int fd : fds) {
            ::close(fd);
        }
        if (ack) {
            if (status r = reply_u64(m, st ? 0 : 1); !r) {
                return r;
            }
        }
        return st;
    }

    static constexpr int read_timeout_ms = 1000;

    std::vector<vring> rings_;
    std::uint32_t queues_;
    log_fn log_;
    guest_memory mem_;
    int listen_ = -1, sock_ = -1;
    std::string path_, client_path_;
    std::uint64_t features_ = 0, protocol_ = 0, protocol_errors_ = 0, connections_ = 0;
    bool unused_ring_noted_ = false;
    std::uint64_t ring_generation_ = 0;
};

} // namespace npa::vhost_user
