// npa/linux/vhost_user/message.hpp: the vhost-user protocol's messages (QEMU's
// docs/interop/vhost-user.rst, spoken by QEMU, DPDK's vhost library, Open vSwitch): their
// layouts, how one is built, and how one that arrived is checked before anything reads it.
//
// A message is a 12-byte header (request, flags, payload size; host byte order: both ends
// share a machine) and a payload whose shape the request decides; file descriptors travel
// beside it as SCM_RIGHTS ancillary data. Both directions use the same framing: the front
// end (npa's virtio-net plugin) sends requests and reads replies, a back end
// (npa-vswitchd) reads requests. Nothing here trusts the peer: `check` refuses a message
// whose version, size, payload or descriptors do not fit its request, with a sentence, so a
// parser never reads past what arrived.
#pragma once

#include <npa/status.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::vhost_user {

// ---- requests (front end to back end) -------------------------------------------------
enum class request : std::uint32_t {
    get_features = 1,
    set_features = 2,
    set_owner = 3,
    reset_owner = 4,
    set_mem_table = 5,
    set_log_base = 6,
    set_log_fd = 7,
    set_vring_num = 8,
    set_vring_addr = 9,
    set_vring_base = 10,
    get_vring_base = 11,
    set_vring_kick = 12,
    set_vring_call = 13,
    set_vring_err = 14,
    get_protocol_features = 15,
    set_protocol_features = 16,
    get_queue_num = 17,
    set_vring_enable = 18,
    send_rarp = 19,
    net_set_mtu = 20,
};

[[nodiscard]] constexpr const char* to_string(request r) noexcept {
    switch (r) {
    case request::get_features: return "GET_FEATURES";
    case request::set_features: return "SET_FEATURES";
    case request::set_owner: return "SET_OWNER";
    case request::reset_owner: return "RESET_OWNER";
    case request::set_mem_table: return "SET_MEM_TABLE";
    case request::set_log_base: return "SET_LOG_BASE";
    case request::set_log_fd: return "SET_LOG_FD";
    case request::set_vring_num: return "SET_VRING_NUM";
    case request::set_vring_addr: return "SET_VRING_ADDR";
    case request::set_vring_base: return "SET_VRING_BASE";
    case request::get_vring_base: return "GET_VRING_BASE";
    case request::set_vring_kick: return "SET_VRING_KICK";
    case request::set_vring_call: return "SET_VRING_CALL";
    case request::set_vring_err: return "SET_VRING_ERR";
    case request::get_protocol_features: return "GET_PROTOCOL_FEATURES";
    case request::set_protocol_features: return "SET_PROTOCOL_FEATURES";
    case request::get_queue_num: return "GET_QUEUE_NUM";
    case request::set_vring_enable: return "SET_VRING_ENABLE";
    case request::send_rarp: return "SEND_RARP";
    case request::net_set_mtu: return "NET_SET_MTU";
    }
    return "unknown request";
}

// ---- constants --------------------------------------------------------------------------
inline constexpr std::uint32_t version = 0x1;          ///< flags bits 0-1
inline constexpr std::uint32_t version_mask = 0x3;
inline constexpr std::uint32_t flag_reply = 1u << 2;
inline constexpr std::uint32_t flag_need_reply = 1u << 3;
inline constexpr std::uint32_t known_flags = version_mask | flag_reply | flag_need_reply;
/// Virtio feature bit 30: the back end speaks protocol features (and rings start disabled).
inline constexpr std::uint64_t f_protocol_features = 1ull << 30;
/// Protocol feature bits.
namespace protocol {
inline constexpr std::uint64_t mq = 1ull << 0;
inline constexpr std::uint64_t log_shmfd = 1ull << 1;
inline constexpr std::uint64_t rarp = 1ull << 2;
inline constexpr std::uint64_t reply_ack = 1ull << 3;
inline constexpr std::uint64_t net_mtu = 1ull << 4;
inline constexpr std::uint64_t backend_req = 1ull << 5;
inline constexpr std::uint64_t config = 1ull << 9;
} // namespace protocol
/// SET_VRING_KICK/CALL/ERR: the ring index in bits 0-7; bit 8 says no descriptor is passed
/// (the ring is polled).
inline constexpr std::uint64_t vring_index_mask = 0xff;
inline constexpr std::uint64_t vring_nofd = 1ull << 8;
inline constexpr std::uint32_t max_regions = 8;   ///< SET_MEM_TABLE without CONFIGURE_MEM_SLOTS
inline constexpr std::uint32_t max_fds = max_regions;
inline constexpr std::uint32_t max_rings = 256;   ///< an 8-bit ring index

// ---- layouts --------------------------------------------------------------------------
struct header {
    std::uint32_t request;
    std::uint32_t flags;
    std::uint32_t size;  ///< payload bytes after the header
};
static_assert(sizeof(header) == 12);

struct vring_state {
    std::uint32_t index;
    std::uint32_t num;
};
static_assert(sizeof(vring_state) == 8);

struct vring_addr {
    std::uint32_t index;
    std::uint32_t flags;  ///< bit 0: log the used ring
    std::uint64_t desc_user_addr;
    std::uint64_t used_user_addr;
    std::uint64_t avail_user_addr;
    std::uint64_t log_guest_addr;
};
static_assert(sizeof(vring_addr) == 40);
static_assert(offsetof(vring_addr, desc_user_addr) == 8 && offsetof(vring_addr, avail_user_addr) == 24);

struct memory_region {
    std::uint64_t guest_phys_addr;
    std::uint64_t memory_size;
    std::uint64_t userspace_addr;  ///< the front end's address of the region (ring addresses are in these)
    std::uint64_t mmap_offset;     ///< where the region starts in its file descriptor
};
static_assert(sizeof(memory_region) == 32);

struct memory_table {
    std::uint32_t nregions;
    std::uint32_t padding;
    memory_region regions[max_regions];
};
static_assert(sizeof(memory_table) == 8 + 8 * 32);

/// The largest payload any request above carries.
inline constexpr std::uint32_t max_payload = sizeof(memory_table);

// ---- a message ------------------------------------------------------------------------
/// A header and its payload, contiguous as on the wire (payload fields are read and written
/// with memcpy: they sit at offset 12, unaligned for their 64-bit members).
struct message {
    header hdr{};
    std::array<std::byte, max_payload> payload{};

    [[nodiscard]] request req() const noexcept { return static_cast<request>(hdr.request); }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return {reinterpret_cast<const std::byte*>(this), sizeof(header) + hdr.size};
    }

    template <class T>
    [[nodiscard]] T get() const noexcept {  // payload bytes beyond hdr.size read as zero
        T v{};
        std::memcpy(&v, payload.data(), sizeof v);
        return v;
    }
    template <class T>
    void put(const T& v) noexcept {
        std::memcpy(payload.data(), &v, sizeof v);
        hdr.size = sizeof v;
    }

    /// A request of the front end, need_reply set when a reply is wanted (REPLY_ACK).
    [[nodiscard]] static message make(request r, bool need_reply = false) noexcept {
        message m;
        m.hdr = {static_cast<std::uint32_t>(r), version | (need_reply ? flag_need_reply : 0u), 0};
        return m;
    }
    [[nodiscard]] static message with_u64(request r, std::uint64_t v, bool need_reply = false) noexcept {
        message m = make(r, need_reply);
        m.put(v);
        return m;
    }
    [[nodiscard]] static message with_state(request r, std::uint32_t index, std::uint32_t num,
                                            bool need_reply = false) noexcept {
        message m = make(r, need_reply);
        m.put(vring_state{index, num});
        return m;
    }
};

static_assert(offsetof(message, payload) == sizeof(header), "the payload follows the header as on the wire");

/// The payload a request carries, as sizes: exactly `size` bytes, or (table) at least the
/// table's header and then its regions.
enum class payload_kind : std::uint8_t { none, u64, state, addr, table };

[[nodiscard]] constexpr payload_kind request_payload(request r) noexcept {
    switch (r) {
    case request::get_features:
    case request::set_owner:
    case request::reset_owner:
    case request::get_protocol_features:
    case request::get_queue_num:
        return payload_kind::none;
    case request::set_features:
    case request::set_protocol_features:
    case request::set_log_base:
    case request::set_log_fd:
    case request::set_vring_kick:
    case request::set_vring_call:
    case request::set_vring_err:
    case request::send_rarp:
    case request::net_set_mtu:
        return payload_kind::u64;
    case request::set_vring_num:
    case request::set_vring_base:
    case request::get_vring_base:
    case request::set_vring_enable:
        return payload_kind::state;
    case request::set_vring_addr:
        return payload_kind::addr;
    case request::set_mem_table:
        return payload_kind::table;
    }
    return payload_kind::none;
}

/// The payload of a reply: GET_* answer a u64 (GET_VRING_BASE a vring_state), a REPLY_ACK
/// answer is a u64 (0: success).
[[nodiscard]] constexpr payload_kind reply_payload(request r) noexcept {
    return r == request::get_vring_base ? payload_kind::state : payload_kind::u64;
}

[[nodiscard]] constexpr std::uint32_t payload_size(payload_kind k) noexcept {
    switch (k) {
    case payload_kind::none: return 0;
    case payload_kind::u64: return 8;
    case payload_kind::state: return sizeof(vring_state);
    case payload_kind::addr: return sizeof(vring_addr);
    case payload_kind::table: return 8;  // the table's header; regions follow
    }
    return 0;
}

/// Checks a message that arrived (`hdr` and the `size` payload bytes read after it) with
/// `nfds` descriptors beside it. `as_reply`: a reply to `expected` (the request this end
/// sent) rather than a request. Refuses, with a sentence: a version other than 1, unknown
/// flag bits, a reply flag where none belongs, an unknown request, a payload larger than
/// any request's or not the request's size, a ring index beyond 255, a memory table with 0
/// or more than 8 regions or a size that does not match its count, regions of size 0 or
/// that wrap, descriptors where the request takes none or the wrong number of them.
[[nodiscard]] inline status check(const message& m, std::uint32_t nfds, bool as_reply = false,
                                  request expected = request::get_features) noexcept {
    const header& h = m.hdr;
    if ((h.flags & version_mask) != version) {
        return {errc::invalid_argument, "vhost-user: a message of another protocol version"};
    }
    if ((h.flags & ~known_flags) != 0) {
        return {errc::invalid_argument, "vhost-user: unknown flag bits"};
    }
    if (((h.flags & flag_reply) != 0) != as_reply) {
        return {errc::invalid_argument, as_reply ? "vhost-user: a reply without the reply flag"
                                                 : "vhost-user: a request with the reply flag"};
    }
    if (h.request == 0 || h.request > static_cast<std::uint32_t>(request::net_set_mtu)) {
        return {errc::invalid_argument, "vhost-user: unknown request"};
    }
    if (h.size > max_payload) {
        return {errc::invalid_argument, "vhost-user: payload larger than any request's"};
    }
    const request r = m.req();
    if (as_reply) {
        if (r != expected) {
            return {errc::invalid_argument, "vhost-user: a reply to another request"};
        }
        if (h.size != payload_size(reply_payload(r))) {
            return {errc::invalid_argument, "vhost-user: a reply of the wrong size"};
        }
        return nfds == 0 ? status::success()
                         : status{errc::invalid_argument, "vhost-user: descriptors with a reply"};
    }
    const payload_kind k = request_payload(r);
    if (k == payload_kind::table) {
        if (h.size < 8) {
            return {errc::invalid_argument, "vhost-user: SET_MEM_TABLE shorter than its header"};
        }
        const auto t = m.get<memory_table>();
        if (t.nregions == 0 || t.nregions > max_regions) {
            return {errc::invalid_argument, "vhost-user: SET_MEM_TABLE with 0 or more than 8 regions"};
        }
        if (h.size != 8 + t.nregions * sizeof(memory_region)) {
            return {errc::invalid_argument, "vhost-user: SET_MEM_TABLE's size does not match its regions"};
        }
        if (nfds != t.nregions) {
            return {errc::invalid_argument, "vhost-user: SET_MEM_TABLE needs one descriptor a region"};
        }
        for (std::uint32_t i = 0; i < t.nregions; ++i) {
            const memory_region& g = t.regions[i];
            if (g.memory_size == 0 || g.guest_phys_addr + g.memory_size < g.guest_phys_addr ||
                g.userspace_addr + g.memory_size < g.userspace_addr ||
                g.mmap_offset + g.memory_size < g.mmap_offset) {
                return {errc::invalid_argument, "vhost-user: a memory region that is empty or wraps"};
            }
        }
        return status::success();
    }
    if (h.size != payload_size(k)) {
        return {errc::invalid_argument, "vhost-user: a payload of the wrong size for its request"};
    }
    std::uint32_t fds_wanted = 0;
    switch (r) {
    case request::set_vring_kick:
    case request::set_vring_call:
    case request::set_vring_err: {
        const auto v = m.get<std::uint64_t>();
        if ((v & ~(vring_index_mask | vring_nofd)) != 0) {
            return {errc::invalid_argument, "vhost-user: unknown bits beside the ring index"};
        }
        fds_wanted = (v & vring_nofd) != 0 ? 0 : 1;
        break;
    }
    case request::set_log_fd:
        fds_wanted = 1;
        break;
    case request::set_vring_num:
    case request::set_vring_base:
    case request::get_vring_base:
    case request::set_vring_enable:
        if (m.get<vring_state>().index >= max_rings) {
            return {errc::invalid_argument, "vhost-user: a ring index beyond 255"};
        }
        break;
    case request::set_vring_addr:
        if (m.get<vring_addr>().index >= max_rings) {
            return {errc::invalid_argument, "vhost-user: a ring index beyond 255"};
        }
        break;
    default:
        break;
    }
    if (nfds != fds_wanted) {
        return {errc::invalid_argument, fds_wanted == 0 ? "vhost-user: descriptors with a request that takes none"
                                                        : "vhost-user: a request without its descriptor"};
    }
    return status::success();
}

/// One message from the bytes that arrived on the wire (a back end reads whole messages;
/// a front end reads header and payload apart): at least a header, exactly the payload its
/// size announces, then `check`. `out` is touched only on success.
[[nodiscard]] inline status parse(std::span<const std::byte> wire, std::uint32_t nfds, message& out,
                                  bool as_reply = false, request expected = request::get_features) noexcept {
    if (wire.size() < sizeof(header)) {
        return {errc::invalid_argument, "vhost-user: shorter than a message header"};
    }
    message m;
    std::memcpy(&m.hdr, wire.data(), sizeof(header));
    if (m.hdr.size > max_payload) {
        return {errc::invalid_argument, "vhost-user: payload larger than any request's"};
    }
    if (wire.size() != sizeof(header) + m.hdr.size) {
        return {errc::invalid_argument, "vhost-user: the payload is not the size the header announces"};
    }
    std::memcpy(m.payload.data(), wire.data() + sizeof(header), m.hdr.size);
    if (status st = check(m, nfds, as_reply, expected); !st) {
        return st;
    }
    out = m;
    return status::success();
}

} // namespace npa::vhost_user
