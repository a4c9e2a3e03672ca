// npa/shm/layout.hpp: the format of a region shared between two processes (or a process
// and a VM, DPDK's IVSHMEM idea): a metadata header at offset 0 that names every object in
// the region by offset and size, then the objects (rings, pools).
//
//   offset 0     region_header (384 B): magic, format version, sizes, creator, object table,
//                checksum over all of it; written once by the creator, read-only afterwards
//   offset 384   side_state[2] (one cache line each): the liveness and wake words each side
//                writes
//   offset 512   objects, each cache-line aligned, none overlapping, all inside total_bytes
//
// Every field is little-endian and fixed-width (npa::le32/le64), sizes and offsets are
// static_asserted: a region reads the same from any process and any compiler. Shared memory
// holds offsets, never pointers: the two sides map it at different addresses.
//
// The peer is not trusted: validate() copies the header out once and checks the copy (the
// peer cannot change it between a check and a use), and refuses with a sentence a wrong
// magic, version, header size or checksum, a total size other than the mapping's, an object
// outside the region, overlapping the header or another object, a ring capacity that is not
// a power of two, a pool whose count, buffer size or headroom do not add up.
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>
#include <npa/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::shm {

// ---- format constants ------------------------------------------------------------------
/// "NPASHM01" as bytes in memory (read as a little-endian 64-bit word).
inline constexpr std::uint64_t region_magic = 0x31304d485341504eULL;
/// Bumped on any change of the header or of an object's memory layout.
inline constexpr std::uint32_t format_version = 2;
/// Objects one region describes (rings and pools; a pool's free ring is one of them).
inline constexpr std::uint32_t max_objects = 8;
/// Largest ring element the format allows (a descriptor of four cache lines).
inline constexpr std::uint32_t max_elem_size = 256;
/// Largest ring capacity (index_ring's limit: the top index bit stays free).
inline constexpr std::uint32_t max_ring_capacity = 1u << 31;
/// The two sides: 0 is the creator, 1 the peer that attaches.
inline constexpr std::uint32_t side_count = 2;

enum class object_kind : std::uint32_t {
    none = 0, ///< an unused table entry (every entry past object_count)
    ring = 1, ///< an npa::index_ring: elem_size bytes per element, count slots
    pool = 2, ///< buffers: count of elem_size bytes (headroom each), free indices in ring `link`
};

/// One entry of the object table (40 bytes).
struct object_desc {
    le32 kind;      ///< object_kind
    le32 elem_size; ///< ring: bytes per element; pool: bytes per buffer (a cache-line multiple)
    le64 offset;    ///< from the start of the region, cache-line aligned
    le64 bytes;     ///< size of the object in the region
    le32 count;     ///< ring: capacity (a power of two); pool: number of buffers
    le32 headroom;  ///< pool: bytes left before the data of each buffer; ring: 0
    le32 link;      ///< pool: the index of the ring holding its free buffer indices; ring: 0
    le32 tag;       ///< the application's name for the object (what it carries)
};
static_assert(sizeof(object_desc) == 40);
static_assert(offsetof(object_desc, offset) == 8 && offsetof(object_desc, count) == 24);

/// The metadata header at offset 0 of a region (384 bytes, six cache lines).
struct region_header {
    le64 magic;         ///< region_magic
    le32 version;       ///< format_version
    le32 header_bytes;  ///< sizeof(region_header)
    le64 total_bytes;   ///< the region's size (the mapping must be exactly this)
    le64 creator_id;    ///< a random 64-bit id the creator drew for this region
    le64 creator_start; ///< the creator's start time (boot-relative ns), with its pid an identity
    le32 creator_pid;
    le32 object_count;  ///< entries used in objects[]
    object_desc objects[max_objects];
    le64 reserved;      ///< zero
    le64 checksum;      ///< FNV-1a 64 of every byte before this field
};
static_assert(sizeof(region_header) == 384);
static_assert(offsetof(region_header, objects) == 48);
static_assert(offsetof(region_header, checksum) == 376);

/// What one side publishes about itself (one cache line each, outside the checksum: these
/// words change while the region is in use). Written only by that side, through le32/le64
/// atomic stores; read by the other.
struct alignas(cache_line_size) side_state {
    le64 heartbeat;   ///< bumped by the side while it runs (beat()); 0 = never attached
    le32 pid;         ///< the side's process id, 0 when detached
    le32 generation;  ///< bumped on every attach, so a restarted side reads as a new one
    le64 start_time;  ///< the side's start time (boot-relative ns): with pid, an identity
    /// Nonzero while the side sleeps (or is about to) and wants the other side to signal it
    /// when it publishes something (AF_XDP's need_wakeup flag); what the nonzero values
    /// mean, and how the signal travels, is the application's. The word was padding that
    /// write() zeroes, so a side that does not know it never sets it and reads as awake:
    /// it needed no new format_version.
    le32 wake;
};
static_assert(sizeof(side_state) == cache_line_size);
static_assert(offsetof(side_state, start_time) == 16 && offsetof(side_state, wake) == 24);

inline constexpr std::size_t sides_offset = sizeof(region_header);
inline constexpr std::size_t objects_offset = sides_offset + side_count * sizeof(side_state);
static_assert(sides_offset % cache_line_size == 0 && objects_offset == 512);

/// Bytes an index_ring of `capacity` elements of `elem_size` bytes occupies: three cache
/// lines (the producer's, the consumer's, the producer's staged count), then the slots,
/// rounded up to a cache line (what sizeof(npa::index_ring<T, C>) is; shm/region.hpp
/// static_asserts it per type).
[[nodiscard]] constexpr std::uint64_t ring_bytes(std::uint32_t capacity,
                                                 std::uint32_t elem_size) noexcept {
    const std::uint64_t raw = 3 * cache_line_size + std::uint64_t{capacity} * elem_size;
    return (raw + cache_line_size - 1) / cache_line_size * cache_line_size;
}

/// FNV-1a, 64 bits: enough to catch a torn or stale header, not a defence against a peer
/// that forges one (validate() is that defence; the checksum catches accidents).
[[nodiscard]] constexpr std::uint64_t fnv1a64(const unsigned char* p, std::size_t n) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

[[nodiscard]] inline std::uint64_t header_checksum(const region_header& h) noexcept {
    return fnv1a64(reinterpret_cast<const unsigned char*>(&h), offsetof(region_header, checksum));
}

namespace detail {

[[nodiscard]] constexpr bool add_overflows(std::uint64_t a, std::uint64_t b) noexcept {
    return a + b < a;
}

[[nodiscard]] inline status check_object(const region_header& h, std::uint32_t i) noexcept {
    const object_desc& o = h.objects[i];
    const std::uint64_t off = o.offset;
    const std::uint64_t bytes = o.bytes;
    const std::uint64_t total = h.total_bytes;
    if (off % cache_line_size != 0) {
        return {errc::invalid_argument, "shared region: an object is not cache-line aligned"};
    }
    if (off < objects_offset) {
        return {errc::invalid_argument, "shared region: an object overlaps the header"};
    }
    if (bytes == 0 || add_overflows(off, bytes) || off + bytes > total) {
        return {errc::invalid_argument,
                "shared region: an object does not fit inside the region's size"};
    }
    const std::uint32_t count = o.count;
    const std::uint32_t elem = o.elem_size;
    switch (static_cast<object_kind>(static_cast<std::uint32_t>(o.kind))) {
    case object_kind::ring:
        if (count == 0 || !is_power_of_two(count) || count > max_ring_capacity) {
            return {errc::invalid_argument,
                    "shared region: a ring's capacity is not a power of two"};
        }
        if (elem == 0 || elem > max_elem_size) {
            return {errc::invalid_argument,
                    "shared region: a ring's element size is zero or too large"};
        }
        if (bytes < ring_bytes(count, elem)) {
            return {errc::invalid_argument,
                    "shared region: a ring's size is smaller than its capacity needs"};
        }
        if (o.headroom != 0 || o.link != 0) {
            return {errc::invalid_argument, "shared region: a ring has pool fields set"};
        }
        return status::success();
    case object_kind::pool: {
        if (count == 0) {
            return {errc::invalid_argument, "shared region: a pool has no buffers"};
        }
        if (elem == 0 || elem % cache_line_size != 0) {
            return {errc::invalid_argument,
                    "shared region: a pool's buffer size is not a multiple of a cache line"};
        }
        if (o.headroom >= elem) {
            return {errc::invalid_argument,
                    "shared region: a pool's headroom is not smaller than its buffer size"};
        }
        // count and elem are 32-bit: their product fits in 64 bits, no overflow.
        if (std::uint64_t{count} * elem != bytes) {
            return {errc::invalid_argument,
                    "shared region: a pool's buffer count times buffer size is not its size"};
        }
        const std::uint32_t link = o.link;
        if (link >= h.object_count || link == i) {
            return {errc::invalid_argument, "shared region: a pool's free ring does not exist"};
        }
        const object_desc& f = h.objects[link];
        if (static_cast<std::uint32_t>(f.kind) != static_cast<std::uint32_t>(object_kind::ring) ||
            f.elem_size != sizeof(std::uint32_t) || f.count < count) {
            return {errc::invalid_argument,
                    "shared region: a pool's free ring is not a ring of 4-byte indices that "
                    "holds every buffer"};
        }
        return status::success();
    }
    case object_kind::none: break;
    }
    return {errc::invalid_argument, "shared region: an object of unknown kind"};
}

} // namespace detail

/// Checks a header copy against the size of the mapping it came from. Touches nothing:
/// the caller copies the header out of shared memory first (validate() below does).
[[nodiscard]] inline status validate_header(const region_header& h,
                                            std::uint64_t region_bytes) noexcept {
    if (h.magic != region_magic) {
        return {errc::invalid_argument, "shared region: wrong magic (not an npa shared region)"};
    }
    if (h.version != format_version) {
        return {errc::not_supported, "shared region: format version not supported"};
    }
    if (h.header_bytes != sizeof(region_header)) {
        return {errc::invalid_argument, "shared region: header size does not match the version"};
    }
    if (h.checksum != header_checksum(h)) {
        return {errc::invalid_argument, "shared region: header checksum does not match"};
    }
    if (h.total_bytes != region_bytes) {
        return {errc::invalid_argument,
                "shared region: the header's total size is not the mapping's size"};
    }
    if (h.object_count > max_objects) {
        return {errc::invalid_argument, "shared region: more objects than the table holds"};
    }
    if (h.reserved != 0) {
        return {errc::invalid_argument, "shared region: reserved header fields are not zero"};
    }
    for (std::uint32_t i = 0; i < max_objects; ++i) {
        if (i >= h.object_count) {
            if (h.objects[i].kind != static_cast<std::uint32_t>(object_kind::none)) {
                return {errc::invalid_argument,
                        "shared region: an object past object_count is not empty"};
            }
            continue;
        }
        if (status st = detail::check_object(h, i); !st) {
            return st;
        }
    }
    for (std::uint32_t i = 0; i < h.object_count; ++i) {
        for (std::uint32_t j = i + 1; j < h.object_count; ++j) {
            const std::uint64_t a = h.objects[i].offset;
            const std::uint64_t b = h.objects[j].offset;
            // Both fit in the region (checked above), so the ends do not overflow.
            if (a < b + h.objects[j].bytes && b < a + h.objects[i].bytes) {
                return {errc::invalid_argument, "shared region: two objects overlap"};
            }
        }
    }
    return status::success();
}

/// Copies the header out of `region` (shared memory the peer may still be writing) into
/// `out`, then validates the copy. On failure `out` is left as it was.
[[nodiscard]] inline status validate(std::span<const std::byte> region,
                                     region_header& out) noexcept {
    if (region.size() < objects_offset) {
        return {errc::invalid_argument, "shared region: smaller than its header"};
    }
    region_header copy;
    std::memcpy(&copy, region.data(), sizeof(copy));
    if (status st = validate_header(copy, region.size()); !st) {
        return st;
    }
    out = copy;
    return status::success();
}

/// Builds the header of a new region: add the objects, then write() into memory of
/// total_bytes(). A constexpr-friendly value; nothing is allocated.
class layout {
public:
    /// Adds a ring; returns its object index (max_objects when the table is full or the
    /// ring is invalid, which write() then refuses).
    std::uint32_t add_ring(std::uint32_t capacity, std::uint32_t elem_size,
                           std::uint32_t tag = 0) noexcept {
        return add(object_kind::ring, elem_size, ring_bytes(capacity, elem_size), capacity, 0, 0,
                   tag);
    }
    /// Adds a pool of `count` buffers of `buf_size` bytes (rounded up to a cache line)
    /// and its free ring of `free_capacity` indices (a power of two, at least count);
    /// returns the pool's object index.
    std::uint32_t add_pool(std::uint32_t count, std::uint32_t buf_size, std::uint32_t headroom,
                           std::uint32_t free_capacity, std::uint32_t tag = 0) noexcept {
        const std::uint32_t ring = add_ring(free_capacity, sizeof(std::uint32_t), tag);
        const auto stride = static_cast<std::uint32_t>(
            (std::uint64_t{buf_size} + cache_line_size - 1) / cache_line_size * cache_line_size);
        return add(object_kind::pool, stride, std::uint64_t{count} * stride, count, headroom,
                   ring, tag);
    }

    [[nodiscard]] std::uint64_t total_bytes() const noexcept { return end_; }
    [[nodiscard]] const region_header& header() const noexcept { return h_; }

    /// Writes the header (with `creator`'s identity and the checksum) and clears the side
    /// words. Refuses, touching nothing, what validate() would refuse.
    [[nodiscard]] status write(std::span<std::byte> region, std::uint64_t creator_id,
                               std::uint32_t creator_pid, std::uint64_t creator_start) noexcept {
        region_header h = h_;
        h.creator_id = creator_id;
        h.creator_pid = creator_pid;
        h.creator_start = creator_start;
        h.checksum = header_checksum(h);
        if (status st = validate_header(h, region.size()); !st) {
            return st;
        }
        std::memcpy(region.data(), &h, sizeof(h));
        std::memset(region.data() + sides_offset, 0, side_count * sizeof(side_state));
        return status::success();
    }

private:
    std::uint32_t add(object_kind kind, std::uint32_t elem, std::uint64_t bytes,
                      std::uint32_t count, std::uint32_t headroom, std::uint32_t link,
                      std::uint32_t tag) noexcept {
        const std::uint32_t i = h_.object_count;
        if (i >= max_objects) {
            return max_objects;
        }
        object_desc& o = h_.objects[i];
        o.kind = static_cast<std::uint32_t>(kind);
        o.elem_size = elem;
        o.offset = end_;
        o.bytes = bytes;
        o.count = count;
        o.headroom = headroom;
        o.link = link;
        o.tag = tag;
        h_.object_count = i + 1;
        end_ += (bytes + cache_line_size - 1) / cache_line_size * cache_line_size;
        h_.total_bytes = end_;
        return i;
    }

    region_header h_ = initial();
    std::uint64_t end_ = objects_offset;

    static region_header initial() noexcept {
        region_header h;
        std::memset(&h, 0, sizeof(h));
        h.magic = region_magic;
        h.version = format_version;
        h.header_bytes = sizeof(region_header);
        h.total_bytes = objects_offset;
        return h;
    }
};

} // namespace npa::shm
