// npa/virtio/virtqueue.hpp: what both virtqueue layouts share (split_ring.hpp, 2.7;
// packed_ring.hpp, 2.8): the descriptor flags both use, the event index rule, a chain's
// segments, what a driver side reports of a used entry, what a device side reports of a
// chain it walks, the per-descriptor checks every device side makes, and the walk of an
// indirect table (VIRTIO_F_INDIRECT_DESC) through the caller's table reader.
//
// Freestanding: no exceptions, no allocation, standard headers only.
#pragma once

#include <npa/endian.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::virtio {

/// VIRTQ_DESC_F_*: the chain continues at next; the buffer is device-writable; the buffer
/// holds a table of indirect descriptors (VIRTIO_F_INDIRECT_DESC).
inline constexpr std::uint16_t desc_f_next = 1;
inline constexpr std::uint16_t desc_f_write = 2;
inline constexpr std::uint16_t desc_f_indirect = 4;
/// The largest queue a virtqueue can have (2.7, 2.8: Queue Size up to 32768).
inline constexpr std::uint32_t max_queue_size = 32768;

/// vring_need_event (2.7.10): with VIRTIO_F_EVENT_IDX, the other side asked to be told
/// when the index passes event_idx; moving it from old_idx to new_idx passed it iff
/// event_idx is in [old_idx, new_idx), all modulo 2^16.
[[nodiscard]] constexpr bool need_event(std::uint16_t event_idx, std::uint16_t new_idx,
                                        std::uint16_t old_idx) noexcept {
    return static_cast<std::uint16_t>(new_idx - event_idx - 1) <
           static_cast<std::uint16_t>(new_idx - old_idx);
}
static_assert(need_event(0, 1, 0) && !need_event(1, 1, 0) && need_event(0xFFFF, 0, 0xFFFF));

/// One buffer of a chain: where, how long, and whether the device writes it.
struct segment {
    std::uint64_t addr = 0;
    std::uint32_t len = 0;
    bool write = false;
};

// ---- driver side: used entries ------------------------------------------------------------
/// What the driver side counted as the device's violations.
struct driver_stats {
    std::uint64_t bad_used_idx = 0; ///< used->idx more than N entries ahead: ring broken
    std::uint64_t bad_used_id = 0;  ///< an id that is no head the device holds
    std::uint64_t passed_over = 0;  ///< IN_ORDER: chains a used entry passed over
    /// Not violations: IN_ORDER used entries that stood for a batch of chains (virtio 1.2
    /// 2.7.9: one entry, the id of the batch's last chain, used->idx moved by the batch).
    std::uint64_t batches = 0;
};

/// What poll_used() found.
enum class used_status : std::uint8_t {
    empty,  ///< nothing new
    ok,     ///< `out` holds a chain the device is done with
    bad_id, ///< the entry named no chain the device holds: consumed and counted
    broken, ///< used->idx is impossible: nothing consumed, the ring cannot be trusted
};

struct used_chain {
    std::uint16_t id = 0;  ///< head descriptor, as returned by add()
    std::uint32_t len = 0; ///< bytes the device says it wrote (unchecked: the caller's job)
    /// An IN_ORDER batch passed over this chain (2.7.9, 2.8): the device wrote no length
    /// for it (`len` is 0) and used it completely, so a device-writable buffer holds all
    /// the bytes the caller posted.
    bool whole = false;
};

// ---- device side: chains -------------------------------------------------------------------
/// Why the device refused what the driver wrote.
enum class chain_error : std::uint8_t {
    none,
    avail_idx,          ///< avail->idx more than N ahead of the device
    head_range,         ///< the head index is not below N
    next_range,         ///< a next index is not below N
    loop,               ///< the chain is longer than the table: it loops
    too_long,           ///< more segments than the caller can take
    length_overflow,    ///< the chain's lengths add up past 2^32 - 1
    indirect,           ///< VIRTQ_DESC_F_INDIRECT, not negotiated
    indirect_next,      ///< INDIRECT with NEXT, or after other descriptors of a chain
    indirect_len,       ///< an indirect table's length: 0, not a multiple of 16, > N entries
    indirect_nested,    ///< INDIRECT inside an indirect table
    read_after_write,   ///< a device-readable segment after a writable one (2.7.4.2)
    bad_address,        ///< the caller's address check refused a segment
    count_              ///< number of kinds
};

[[nodiscard]] constexpr const char* to_string(chain_error e) noexcept {
    switch (e) {
    case chain_error::none: return "none";
    case chain_error::avail_idx: return "avail idx more than the queue size ahead";
    case chain_error::head_range: return "head index outside the descriptor table";
    case chain_error::next_range: return "next index outside the descriptor table";
    case chain_error::loop: return "chain loops";
    case chain_error::too_long: return "chain longer than the device takes";
    case chain_error::length_overflow: return "chain length overflows 32 bits";
    case chain_error::indirect: return "indirect descriptor not negotiated";
    case chain_error::indirect_next: return "indirect descriptor not alone in its chain";
    case chain_error::indirect_len: return "indirect table length invalid";
    case chain_error::indirect_nested: return "indirect descriptor inside an indirect table";
    case chain_error::read_after_write: return "readable descriptor after a writable one";
    case chain_error::bad_address: return "descriptor address outside driver memory";
    case chain_error::count_: break;
    }
    return "unknown";
}

/// A device side's refusals: a count per cause and the latest cause.
class chain_error_counts {
public:
    void add(chain_error e) noexcept {
        ++n_[static_cast<std::size_t>(e)];
        last_ = e;
    }
    void clear() noexcept { *this = chain_error_counts{}; }
    [[nodiscard]] std::uint64_t of(chain_error e) const noexcept {
        return n_[static_cast<std::size_t>(e)];
    }
    [[nodiscard]] std::uint64_t total() const noexcept {
        std::uint64_t t = 0;
        for (const std::uint64_t c : n_) {
            t += c;
        }
        return t;
    }
    [[nodiscard]] chain_error last() const noexcept { return last_; }

private:
    std::uint64_t n_[static_cast<std::size_t>(chain_error::count_)]{};
    chain_error last_ = chain_error::none;
};

/// A chain the device took: its head and its segments (in the caller's span).
struct chain {
    std::uint16_t head = 0;
    std::uint16_t segments = 0;           ///< entries of the caller's span filled
    std::uint16_t readable = 0;           ///< the first `readable` are device-readable
    std::uint32_t read_len = 0, write_len = 0;
    bool indirect = false;                ///< the segments came from an indirect table
};

/// Bytes of one indirect table entry: a split table holds virtq_desc, a packed one
/// pvirtq_desc, both 16 bytes (2.7.5.3, 2.8.13).
inline constexpr std::uint32_t indirect_entry_bytes = 16;

/// The table reader of a device side that takes no indirect tables: every table is outside
/// driver memory. A real reader answers where [addr, addr + len) of driver memory is readable
/// here, or nullptr: the address check for the table itself.
struct no_tables {
    [[nodiscard]] const std::byte* operator()(std::uint64_t, std::uint32_t) const noexcept { return nullptr; }
};

/// Where the entries of a packed indirect table take their direction from. The specification
/// says each entry's WRITE (2.8.13), and Linux's packed driver writes it so; DPDK's virtio
/// PMD does not: it presets WRITE on every entry of its TX tables (virtqueue.h,
/// vring_desc_init_indirect_packed) and rewrites only some data entries' flags, never the
/// header's, and DPDK's vhost library, its usual peer, takes every entry's direction from
/// the queue (virtio_net.c, fill_vec_buf_packed_indirect). A device whose queue has one
/// direction (virtio-net's transmitq and receiveqs, 5.1.2) says it and meets both drivers.
enum class table_direction : std::uint8_t {
    entry,    ///< each entry's WRITE flag
    readable, ///< every entry device-readable (a transmitq)
    writable, ///< every entry device-writable (a receiveq)
};

namespace detail {
/// The two table layouts: a split table is linked by `next` (NEXT set, 2.7.5.3.2), a packed
/// one is read in order, every entry of it, with only WRITE meaningful (2.8.13).
enum class table_layout : std::uint8_t { linked, sequential };

/// The checks both ring layouts make of each descriptor of a chain they walk (the index and
/// loop checks are each layout's own), and the chain's running lengths.
struct chain_walk {
    std::uint64_t read = 0, write = 0;

    /// Takes descriptor k of chain c (its flags and its buffer s) into segs[k], or says why not.
    /// An INDIRECT descriptor is table()'s, never this one's.
    template <class AddrOk>
    [[nodiscard]] chain_error take(chain& c, std::span<segment> segs, std::uint32_t k,
                                   std::uint16_t flags, const segment& s, AddrOk& addr_ok) noexcept {
        if ((flags & desc_f_indirect) != 0) {
            return chain_error::indirect_nested; // only table() sees a ring descriptor's INDIRECT
        }
        if (k == segs.size()) {
            return chain_error::too_long;
        }
        if (!s.write && write != 0) {
            return chain_error::read_after_write;
        }
        (s.write ? write : read) += s.len;
        if (read + write > 0xFFFFFFFFull) {
            return chain_error::length_overflow;
        }
        if (!addr_ok(s.addr, s.len, s.write)) {
            return chain_error::bad_address;
        }
        segs[k] = s;
        c.segments = static_cast<std::uint16_t>(k + 1);
        c.readable = static_cast<std::uint16_t>(c.readable + (s.write ? 0 : 1));
        return chain_error::none;
    }

    /// Descriptor k of a chain in the ring has INDIRECT set: walks the table it names (`addr`,
    /// `len` bytes in driver memory, read through read_table) into segs, or says why not.
    /// `negotiated`: VIRTIO_F_INDIRECT_DESC; `queue_size`: N, the most entries a table may
    /// have (a chain is no longer than the queue, 2.7.5.3.1; DPDK's vhost library refuses
    /// a longer table too). The table is the whole chain: an INDIRECT descriptor with NEXT
    /// (the driver MUST NOT set both, 2.7.5.3.1) or after other descriptors (QEMU and DPDK
    /// look for a table only at the head) is refused, as is INDIRECT inside the table
    /// (2.7.5.3.1: one table per descriptor). Each entry is read once, where it lies (the
    /// table need not be aligned); the WRITE flag of the ring descriptor is ignored (2.7.5.3.2);
    /// `dir` says where a packed table's entries take their direction from.
    template <table_layout Layout, class AddrOk, class ReadTable>
    [[nodiscard]] chain_error table(chain& c, std::span<segment> segs, std::uint32_t k, std::uint16_t flags,
                                    std::uint64_t addr, std::uint32_t len, std::uint32_t queue_size,
                                    bool negotiated, AddrOk& addr_ok, ReadTable& read_table,
                                    table_direction dir = table_direction::entry) noexcept {
        if (!negotiated) {
            return chain_error::indirect;
        }
        if (k != 0 || (flags & desc_f_next) != 0) {
            return chain_error::indirect_next;
        }
        const std::uint32_t count = len / indirect_entry_bytes;
        if (len == 0 || len % indirect_entry_bytes != 0 || count > queue_size) {
            return chain_error::indirect_len;
        }
        const std::byte* t = read_table(addr, len);
        if (t == nullptr) {
            return chain_error::bad_address;
        }
        // split virtq_desc: flags at 12, next at 14; packed pvirtq_desc: id at 12, flags at 14
        constexpr std::size_t flags_at = Layout == table_layout::linked ? 12 : 14;
        std::uint32_t i = 0;
        for (std::uint32_t j = 0;; ++j) {
            if (j == count) {
                if constexpr (Layout == table_layout::sequential) {
                    break; // every entry taken
                }
                return chain_error::loop; // count entries and still going: a loop
            }
            const std::byte* e = t + std::size_t{i} * indirect_entry_bytes;
            const std::uint16_t f = load_le16(e + flags_at);
            const bool w = dir == table_direction::entry ? (f & desc_f_write) != 0 : dir == table_direction::writable;
            const segment s{load_le64(e), load_le32(e + 8), w};
            if (const chain_error err = take(c, segs, j, f, s, addr_ok); err != chain_error::none) {
                return err;
            }
            if constexpr (Layout == table_layout::sequential) {
                ++i; // NEXT is reserved in a packed table: the order is the table's
                continue;
            }
            if ((f & desc_f_next) == 0) {
                break;
            }
            i = load_le16(e + 14);
            if (i >= count) {
                return chain_error::next_range;
            }
        }
        c.indirect = true;
        return chain_error::none;
    }
    void finish(chain& c) const noexcept {
        c.read_len = static_cast<std::uint32_t>(read);
        c.write_len = static_cast<std::uint32_t>(write);
    }
};
} // namespace detail

/// What pop() found.
enum class pop_status : std::uint8_t {
    empty,   ///< nothing available
    ok,      ///< a valid chain
    refused, ///< a chain was taken off the ring but refused (error()); `c.head` is valid
             ///< when error() is not head_range, so the device can give it back unused
    broken,  ///< avail->idx is impossible: nothing taken
};

} // namespace npa::virtio
