// npa/linux/pci/virtio_pci.hpp: the virtio-net plugin's transport over virtio-pci's modern
// interface (virtio 1.2 section 4.1), on a function bound from user space (pci_function).
//
//   capabilities  the vendor-specific capabilities of configuration space (4.1.4) name, for
//                 each structure, a BAR, an offset and a length: common configuration (type
//                 1), notifications (2, with notify_off_multiplier), ISR status (3), device
//                 configuration (4). The first of each type in a usable memory BAR is taken
//                 (4.1.4.1: "the driver SHOULD use the first instance"); a capability with a
//                 BAR number above 5 is ignored (4.1.4: "MUST ignore"), one in a BAR that
//                 is not a memory BAR is skipped (QEMU's modern-pio-notify puts a second
//                 notify capability in an I/O BAR). Every capability is checked against
//                 configuration space and its region against its BAR's size before
//                 anything is mapped; a missing or malformed one is an error that says which.
//   features      both 32-bit halves through device_feature_select (4.1.4.3). Not carried:
//                 ACCESS_PLATFORM (there is no IOMMU between the device and the hugepage DMA
//                 memory: device addresses are physical addresses from /proc/self/pagemap),
//                 NOTIFICATION_DATA (a notification here is the queue index only).
//                 RING_PACKED only after offer_packed_ring(true) (split rings stay the
//                 default, as on vhost-user with net_config::packed_ring); QEMU offers it
//                 with packed=on on virtio-net-pci.
//   status        device_status; writing 0 resets, and the reset is waited for until the
//                 register reads 0 (4.1.4.3.2).
//   queues        queue_select, then queue_size, queue_msix_vector (NO_VECTOR: see below),
//                 queue_desc / queue_driver / queue_device as two 32-bit writes each (split:
//                 descriptor table, available ring, used ring; packed: descriptor ring,
//                 driver event suppression, device event suppression: 4.1.4.3 names the
//                 areas, not the layout, so the writes are the same), then
//                 queue_enable = 1, read back. The queue's notify address is the notify
//                 capability's offset + queue_notify_off * notify_off_multiplier (4.1.4.4),
//                 checked against the capability's length.
//   notify        a 16-bit write of the queue index to that address, after a release fence
//                 (the ring's stores come first, as Linux's iowrite16 orders them).
//   interrupts    none: the rings are polled (as every guest test of the rig polls). Both the
//                 configuration and every queue vector are VIRTIO_MSI_NO_VECTOR; irq_mask
//                 only records the mask; isr() reads (and so clears) the ISR status byte.
//   config        device configuration (5.1.4) read byte by byte between two reads of
//                 config_generation, again until they agree (4.1.4.3.1); bytes past the
//                 capability's length read as 0.
// Control path only, except notify (a volatile store) and irq_mask (a flag).
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/virtio/split_ring.hpp>
#include <npa/virtio/transport.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>

namespace npa::lnx::pci {

namespace virtio_pci {

inline constexpr std::uint16_t vendor_id = 0x1af4;
/// 4.1.2.1: 0x1040 + device type for a modern-only function (0x1041: network), 0x1000 for
/// a transitional network function (which also has the modern capabilities).
inline constexpr std::uint16_t device_net_modern = 0x1041;
inline constexpr std::uint16_t device_net_transitional = 0x1000;

// cfg_type of struct virtio_pci_cap (4.1.4).
inline constexpr std::uint8_t cap_common_cfg = 1;
inline constexpr std::uint8_t cap_notify_cfg = 2;
inline constexpr std::uint8_t cap_isr_cfg = 3;
inline constexpr std::uint8_t cap_device_cfg = 4;

/// PCI: capability ID of a vendor-specific capability; the status register's capability
/// list bit and the capability pointer (PCI Local Bus 6.7).
inline constexpr std::uint8_t pci_cap_vndr = 0x09;
inline constexpr std::uint32_t pci_status = 0x06;
inline constexpr std::uint16_t status_cap_list = 1u << 4;
inline constexpr std::uint32_t pci_cap_ptr = 0x34;

/// Bytes of struct virtio_pci_cap, and of virtio_pci_notify_cap (notify_off_multiplier after it).
inline constexpr std::uint8_t cap_len_min = 16;
inline constexpr std::uint8_t notify_cap_len_min = 20;

/// struct virtio_pci_common_cfg (4.1.4.3), byte offsets.
namespace common {
inline constexpr std::uint32_t device_feature_select = 0x00;
inline constexpr std::uint32_t device_feature = 0x04;
inline constexpr std::uint32_t driver_feature_select = 0x08;
inline constexpr std::uint32_t driver_feature = 0x0C;
inline constexpr std::uint32_t config_msix_vector = 0x10;
inline constexpr std::uint32_t num_queues = 0x12;
inline constexpr std::uint32_t device_status = 0x14;
inline constexpr std::uint32_t config_generation = 0x15;
inline constexpr std::uint32_t queue_select = 0x16;
inline constexpr std::uint32_t queue_size = 0x18;
inline constexpr std::uint32_t queue_msix_vector = 0x1A;
inline constexpr std::uint32_t queue_enable = 0x1C;
inline constexpr std::uint32_t queue_notify_off = 0x1E;
inline constexpr std::uint32_t queue_desc = 0x20;
inline constexpr std::uint32_t queue_driver = 0x28;
inline constexpr std::uint32_t queue_device = 0x30;
/// The structure up to queue_device's end (virtio 1.0's whole structure): what a common
/// capability must at least cover.
inline constexpr std::uint32_t size = 0x38;
} // namespace common

inline constexpr std::uint16_t no_vector = 0xFFFF; ///< VIRTIO_MSI_NO_VECTOR

/// One structure's place: BAR, offset and length.
struct region {
    std::uint8_t bar = 0xFF;
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    [[nodiscard]] bool found() const noexcept { return bar < pci_function::max_bars; }
};

/// The four structures of a modern virtio function.
struct layout {
    region common, notify, isr, device;
    std::uint32_t notify_off_multiplier = 0;
};

/// Size of each BAR the binding can map (a memory BAR), 0 for an I/O or absent BAR.
using bar_sizes = std::array<std::uint64_t, pci_function::max_bars>;

/// Walks the capability list of `cfg` (configuration space as read) and fills `out` with
/// the first usable capability of each type. False with a reason in `e` when the list is
/// malformed (a pointer outside configuration space or into the header, a loop, a
/// capability shorter than its structure, a region outside its BAR, a misaligned
/// structure, a notify multiplier that is not an even power of two or 0) or a structure is
/// missing.
[[nodiscard]] inline bool parse_caps(pci_error& e, std::span<const std::uint8_t> cfg,
                                     const bar_sizes& bars, layout& out) noexcept {
    out = {};
    if (cfg.size() < 0x40) {
        fail(e, errc::invalid_argument, 0,
             "virtio-pci: %zu bytes of configuration space, less than the "
             "64-byte header",
             cfg.size());
        return false;
    }
    if ((load_le16(&cfg[pci_status]) & status_cap_list) == 0) {
        fail(e, errc::not_supported, 0,
             "virtio-pci: no capability list (status register bit 4 clear)");
        return false;
    }
    std::uint32_t ptr = cfg[pci_cap_ptr] & 0xFCu;
    // At most (256 - 64) / 4 capabilities fit: more steps than that is a loop.
    for (unsigned steps = 0; ptr != 0; ++steps) {
        if (steps >= 48) {
            fail(e, errc::device_error, 0, "virtio-pci: the capability list loops");
            return false;
        }
        if (ptr < 0x40 || ptr + 2 > cfg.size()) {
            fail(e, errc::device_error, 0,
                 "virtio-pci: capability pointer 0x%x outside configuration "
                 "space (0x40..0x%zx)",
                 ptr, cfg.size());
            return false;
        }
        const std::uint32_t here = ptr;
        ptr = cfg[here + 1] & 0xFCu;
        if (cfg[here] != pci_cap_vndr) {
            continue;
        }
        if (here + cap_len_min > cfg.size()) {
            fail(e, errc::device_error, 0,
                 "virtio-pci: vendor capability at 0x%x runs past configuration "
                 "space",
                 here);
            return false;
        }
        const std::uint8_t len = cfg[here + 2], type = cfg[here + 3], bar = cfg[here + 4];
        if (type < cap_common_cfg || type > cap_device_cfg) {
            continue; // PCI configuration access (5), shared memory (8), vendor (9): not used
        }
        const std::uint8_t need = type == cap_notify_cfg ? notify_cap_len_min : cap_len_min;
        if (len < need || here + len > cfg.size()) {
            fail(e, errc::device_error, 0,
                 "virtio-pci: capability type %u at 0x%x: cap_len %u (needs %u, "
                 "and to end inside configuration space)",
                 type, here, len, need);
            return false;
        }
        if (bar >= pci_function::max_bars) {
            continue; // 4.1.4: a BAR value it does not know, the driver ignores
        }
        region* r = type == cap_common_cfg   ? &out.common
                    : type == cap_notify_cfg ? &out.notify
                    : type == cap_isr_cfg    ? &out.isr
                                             : &out.device;
        if (r->found()) {
            continue; // the first usable one counts
        }
        if (bars[bar] == 0) {
            continue; // an I/O or absent BAR: not usable here, a later capability may be
        }
        const std::uint32_t off = load_le32(&cfg[here + 8]), length = load_le32(&cfg[here + 12]);
        if (std::uint64_t{off} + length > bars[bar]) {
            fail(e, errc::device_error, 0,
                 "virtio-pci: capability type %u at 0x%x: 0x%x bytes at 0x%x "
                 "run past BAR %u (0x%llx bytes)",
                 type, here, length, off, bar, static_cast<unsigned long long>(bars[bar]));
            return false;
        }
        const std::uint32_t min_len = type == cap_common_cfg   ? common::size
                                      : type == cap_notify_cfg ? 2
                                                               : 1;
        const std::uint32_t align = type == cap_common_cfg ? 4 : type == cap_notify_cfg ? 2 : 1;
        if (length < min_len || off % align != 0) {
            fail(e, errc::device_error, 0,
                 "virtio-pci: capability type %u at 0x%x: 0x%x bytes at 0x%x (at "
                 "least 0x%x, %u-byte aligned)",
                 type, here, length, off, min_len, align);
            return false;
        }
        if (type == cap_notify_cfg) {
            const std::uint32_t m = load_le32(&cfg[here + 16]);
            if (m != 0 && (m % 2 != 0 || (m & (m - 1)) != 0)) { // 4.1.4.4: an even power of 2, or 0
                fail(e, errc::device_error, 0,
                     "virtio-pci: notify_off_multiplier %u is not an even power "
                     "of two or 0",
                     m);
                return false;
            }
            out.notify_off_multiplier = m;
        }
        *r = {bar, off, length};
    }
    const char* missing = !out.common.found()   ? "common configuration (type 1)"
                          : !out.notify.found() ? "notifications (type 2)"
                          : !out.isr.found()    ? "ISR status (type 3)"
                          : !out.device.found() ? "device configuration (type 4)"
                                                : nullptr;
    if (missing != nullptr) {
        fail(e, errc::not_supported, 0,
             "virtio-pci: no usable %s capability in a memory BAR "
             "(is this a modern virtio function?)",
             missing);
        return false;
    }
    return true;
}

/// The BAR sizes of a function from its sysfs `resource` file (one "start end flags" line
/// per resource): memory BARs only (IORESOURCE_MEM, 0x200); 0 for the rest.
[[nodiscard]] inline bool read_bar_sizes(pci_error& e, const pci_function& fn,
                                         bar_sizes& out) noexcept {
    out = {};
    char p[320];
    std::snprintf(p, sizeof p, "%s/resource", fn.sysfs_dir());
    std::FILE* f = std::fopen(p, "re");
    if (f == nullptr) {
        const int err = errno;
        fail(e, errno_code(err), err, "%s: open", p);
        return false;
    }
    for (unsigned i = 0; i < pci_function::max_bars; ++i) {
        unsigned long long start = 0, end = 0, flags = 0;
        if (std::fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3) {
            std::fclose(f);
            fail(e, errc::device_error, 0, "%s: line %u is not \"start end flags\"", p, i + 1);
            return false;
        }
        out[i] = (flags & 0x200) != 0 && end > start ? end - start + 1 : 0;
    }
    std::fclose(f);
    return true;
}

} // namespace virtio_pci

/// A virtio-net function over virtio-pci's modern interface: the capabilities found, their
/// BARs mapped, and the transport the virtio-net plugin's window carries. The function and
/// its mappings live here; the DMA memory is the caller's and must outlive this object.
class virtio_net_function {
public:
    /// Transport feature bits never carried (see the file comment); RING_PACKED is carried
    /// only after offer_packed_ring(true).
    static constexpr std::uint64_t not_carried =
        virtio::feature::ACCESS_PLATFORM | virtio::feature::NOTIFICATION_DATA;
    /// Queues whose notify address is kept: the plugin's eight pairs.
    static constexpr std::uint16_t max_queues = 16;

    virtio_net_function() noexcept = default;
    virtio_net_function(const virtio_net_function&) = delete;
    virtio_net_function& operator=(const virtio_net_function&) = delete;

    /// Opens `address`, checks it is a virtio network function (1af4:1041, or 1af4:1000
    /// with modern capabilities), binds it to uio_pci_generic, walks its capabilities,
    /// maps the BARs they name, turns bus mastering on and takes `ring_bytes` of ring
    /// memory from `arena` for the plugin.
    [[nodiscard]] bool open(pci_error& e, const char* address, dma_arena& arena,
                            std::size_t ring_bytes) noexcept {
        if (!fn_.open(e, address)) {
            return false;
        }
        if (fn_.vendor() != virtio_pci::vendor_id ||
            (fn_.device() != virtio_pci::device_net_modern &&
             fn_.device() != virtio_pci::device_net_transitional)) {
            fail(e, errc::not_supported, 0,
                 "%s: %04x:%04x is not a virtio network function (1af4:1041 or "
                 "1af4:1000)",
                 fn_.sysfs_dir(), fn_.vendor(), fn_.device());
            return false;
        }
        if (!fn_.bind_uio(e)) {
            return false;
        }
        std::array<std::uint8_t, 256> cfg{};
        virtio_pci::bar_sizes sizes{};
        virtio_pci::layout l;
        if (!fn_.read_config(e, 0, cfg.data(), cfg.size()) ||
            !virtio_pci::read_bar_sizes(e, fn_, sizes) ||
            !virtio_pci::parse_caps(e, cfg, sizes, l)) {
            return false;
        }
        std::array<bar_map, pci_function::max_bars> maps{};
        for (const virtio_pci::region* r : {&l.common, &l.notify, &l.isr, &l.device}) {
            if (!maps[r->bar]) {
                maps[r->bar] = fn_.map_bar(e, r->bar);
                if (!maps[r->bar]) {
                    return false;
                }
                if (maps[r->bar].size < sizes[r->bar]) { // the checks above were against sizes[]
                    fail(e, errc::device_error, 0,
                         "%s: BAR %u maps %zu bytes, the resource file says %llu", fn_.sysfs_dir(),
                         r->bar, maps[r->bar].size, static_cast<unsigned long long>(sizes[r->bar]));
                    return false;
                }
            }
        }
        if (!fn_.enable_bus_master(e)) {
            return false;
        }
        const auto rings = arena.take(ring_bytes, 4096);
        if (!rings) {
            fail(e, errc::no_memory, 0, "%s: DMA memory too small for %zu bytes of rings",
                 fn_.sysfs_dir(), ring_bytes);
            return false;
        }
        bind(l, maps, {rings.virt, rings.iova, rings.size});
        return true;
    }

    /// Builds the transport over structures already found and BARs already mapped (open()
    /// does this; a test passes memory standing in for the BARs).
    void bind(const virtio_pci::layout& l, const std::array<bar_map, pci_function::max_bars>& maps,
              virtio_net::ring_memory rings) noexcept {
        layout_ = l;
        common_ = maps[l.common.bar].base + l.common.offset;
        notify_ = maps[l.notify.bar].base + l.notify.offset;
        isr_ = maps[l.isr.bar].base + l.isr.offset;
        device_ = maps[l.device.bar].base + l.device.offset;
        notify_at_ = {};
        offered_ = 0;
        masked_ = 0;
        window_ = virtio_net::window(virtio::transport{&ops_, this}, rings);
    }

    /// Offer VIRTIO_F_RING_PACKED to the plugin when the device has it (QEMU: packed=on);
    /// off (the default): split rings, whatever the device offers. Takes effect at the
    /// plugin's next attach (its feature negotiation).
    void offer_packed_ring(bool on) noexcept { packed_ring_ = on; }
    [[nodiscard]] bool packed_ring_offered() const noexcept { return packed_ring_; }

    [[nodiscard]] pci_function& function() noexcept { return fn_; }
    [[nodiscard]] virtio_net::window& window() noexcept { return window_; }
    [[nodiscard]] const virtio_pci::layout& layout() const noexcept { return layout_; }
    /// Every feature bit the device offers (both halves, before narrowing).
    [[nodiscard]] std::uint64_t offered() noexcept { return read_features(); }
    /// The driver features the device holds, read back through driver_feature_select
    /// (QEMU answers with what was written): what the device will act on.
    [[nodiscard]] std::uint64_t driver_features() noexcept {
        return read_halves(virtio_pci::common::driver_feature_select,
                           virtio_pci::common::driver_feature);
    }
    /// num_queues of the common configuration.
    [[nodiscard]] std::uint16_t num_queues() const noexcept {
        return rd16(common_, virtio_pci::common::num_queues);
    }
    /// Reads the ISR status byte, which clears it (4.1.4.5): bit 0 a queue, bit 1 config.
    [[nodiscard]] std::uint8_t isr() const noexcept { return rd8(isr_, 0); }
    [[nodiscard]] std::uint64_t notifies() const noexcept { return notifies_; }
    /// The MAC of the device configuration (meaningful when the device offers MAC).
    [[nodiscard]] std::array<std::uint8_t, 6> mac() noexcept {
        std::array<std::uint8_t, 6> m{};
        read_config(this, 0, m.data(), 6);
        return m;
    }
    /// Why the last queue_enable failed ("" when none did).
    [[nodiscard]] const char* last_error() const noexcept { return last_error_; }

private:
    static virtio_net_function& self(void* c) noexcept {
        return *static_cast<virtio_net_function*>(c);
    }

    // Single volatile accesses of the width the field has, little-endian (4.1.3.1: "the
    // driver MUST access each field using the natural width"). A write comes after every
    // earlier store to DMA memory; a read before every later load from it.
    static std::uint8_t rd8(volatile std::byte* b, std::uint32_t off) noexcept {
        const auto v =
            static_cast<std::uint8_t>(*reinterpret_cast<volatile std::uint8_t*>(b + off));
        std::atomic_thread_fence(std::memory_order_acquire);
        return v;
    }
    static std::uint16_t rd16(volatile std::byte* b, std::uint32_t off) noexcept {
        const std::uint16_t raw = *reinterpret_cast<volatile std::uint16_t*>(b + off);
        std::atomic_thread_fence(std::memory_order_acquire);
        return load_le16(&raw);
    }
    static std::uint32_t rd32(volatile std::byte* b, std::uint32_t off) noexcept {
        const std::uint32_t raw = *reinterpret_cast<volatile std::uint32_t*>(b + off);
        std::atomic_thread_fence(std::memory_order_acquire);
        return load_le32(&raw);
    }
    static void wr8(volatile std::byte* b, std::uint32_t off, std::uint8_t v) noexcept {
        std::atomic_thread_fence(std::memory_order_release);
        *reinterpret_cast<volatile std::uint8_t*>(b + off) = v;
    }
    static void wr16(volatile std::byte* b, std::uint32_t off, std::uint16_t v) noexcept {
        std::uint16_t raw;
        store_le16(&raw, v);
        std::atomic_thread_fence(std::memory_order_release);
        *reinterpret_cast<volatile std::uint16_t*>(b + off) = raw;
    }
    static void wr32(volatile std::byte* b, std::uint32_t off, std::uint32_t v) noexcept {
        std::uint32_t raw;
        store_le32(&raw, v);
        std::atomic_thread_fence(std::memory_order_release);
        *reinterpret_cast<volatile std::uint32_t*>(b + off) = raw;
    }
    // A 64-bit field as two 32-bit writes, low half first (4.1.3.1 allows it; QEMU's
    // common configuration takes 32-bit accesses at most).
    static void wr64(volatile std::byte* b, std::uint32_t off, std::uint64_t v) noexcept {
        wr32(b, off, static_cast<std::uint32_t>(v));
        wr32(b, off + 4, static_cast<std::uint32_t>(v >> 32));
    }

    // A 64-bit feature word through its selector: half 0, then half 1.
    std::uint64_t read_halves(std::uint32_t select, std::uint32_t value) const noexcept {
        wr32(common_, select, 0);
        const std::uint64_t lo = rd32(common_, value);
        wr32(common_, select, 1);
        const std::uint64_t hi = rd32(common_, value);
        return hi << 32 | lo;
    }
    std::uint64_t read_features() const noexcept {
        return read_halves(virtio_pci::common::device_feature_select,
                           virtio_pci::common::device_feature);
    }

    [[nodiscard]] std::uint64_t carried() const noexcept {
        return ~(not_carried | (packed_ring_ ? 0 : virtio::feature::RING_PACKED));
    }
    static std::uint64_t device_features(void* c) noexcept {
        virtio_net_function& d = self(c);
        d.offered_ = d.read_features();
        return d.offered_ & d.carried();
    }
    static void set_driver_features(void* c, std::uint64_t f) noexcept {
        namespace cc = virtio_pci::common;
        const virtio_net_function& d = self(c);
        f &= d.carried();
        wr32(d.common_, cc::driver_feature_select, 0);
        wr32(d.common_, cc::driver_feature, static_cast<std::uint32_t>(f));
        wr32(d.common_, cc::driver_feature_select, 1);
        wr32(d.common_, cc::driver_feature, static_cast<std::uint32_t>(f >> 32));
    }
    static std::uint8_t get_status(void* c) noexcept {
        return rd8(self(c).common_, virtio_pci::common::device_status);
    }
    static void set_status(void* c, std::uint8_t s) noexcept {
        virtio_net_function& d = self(c);
        wr8(d.common_, virtio_pci::common::device_status, s);
        if (s == 0) {
            // 4.1.4.3.2: the reset is done when device_status reads 0 (QEMU resets within the
            // write; a device that needs longer gets a bounded wait, and the plugin sees a
            // non-zero status and says so). Then no vector: the rings are polled.
            for (int i = 0; i < 1000000 && rd8(d.common_, virtio_pci::common::device_status) != 0;
                 ++i) {
            }
            wr16(d.common_, virtio_pci::common::config_msix_vector, virtio_pci::no_vector);
            d.notify_at_ = {};
        }
    }
    static std::uint16_t queue_max(void* c, std::uint16_t q) noexcept {
        namespace cc = virtio_pci::common;
        const virtio_net_function& d = self(c);
        if (q >= rd16(d.common_, cc::num_queues)) {
            return 0;
        }
        wr16(d.common_, cc::queue_select, q);
        return rd16(d.common_, cc::queue_size);
    }
    static bool queue_enable(void* c, std::uint16_t q, const virtio::queue_setup& s) noexcept {
        namespace cc = virtio_pci::common;
        virtio_net_function& d = self(c);
        if (q >= max_queues || s.size == 0 || queue_max(c, q) < s.size) { // also selects q
            d.last_error_ = "virtio-pci: no such queue, or larger than its queue_size";
            return false;
        }
        // Relative to the notify region (notify_ already points at the capability's offset).
        const std::uint64_t off =
            std::uint64_t{rd16(d.common_, cc::queue_notify_off)} * d.layout_.notify_off_multiplier;
        if (off + 2 > d.layout_.notify.length) { // 4.1.4.4: inside the notify capability
            d.last_error_ =
                "virtio-pci: queue_notify_off * notify_off_multiplier outside the notify region";
            return false;
        }
        wr16(d.common_, cc::queue_size, s.size);
        wr16(d.common_, cc::queue_msix_vector, virtio_pci::no_vector);
        wr64(d.common_, cc::queue_desc, s.desc);
        wr64(d.common_, cc::queue_driver, s.driver);
        wr64(d.common_, cc::queue_device, s.device);
        wr16(d.common_, cc::queue_enable, 1);
        if (rd16(d.common_, cc::queue_enable) != 1) {
            d.last_error_ = "virtio-pci: queue_enable did not read back 1";
            return false;
        }
        d.notify_at_[q] = reinterpret_cast<volatile std::uint16_t*>(d.notify_ + off);
        return true;
    }
    static void notify(void* c, std::uint16_t q) noexcept {
        virtio_net_function& d = self(c);
        volatile std::uint16_t* at = q < max_queues ? d.notify_at_[q] : nullptr;
        if (at == nullptr) {
            return; // a queue never enabled: nothing to notify
        }
        std::uint16_t raw;
        store_le16(&raw, q);
        std::atomic_thread_fence(std::memory_order_release); // the ring's stores first
        *at = raw;
        ++d.notifies_;
    }
    static void irq_mask(void* c, std::uint16_t vector, bool masked) noexcept {
        virtio_net_function& d = self(c);
        if (vector < 32) { // polled: only recorded
            d.masked_ = masked ? d.masked_ | 1u << vector : d.masked_ & ~(1u << vector);
        }
    }
    static void read_config(void* c, std::uint32_t off, void* out, std::uint32_t len) noexcept {
        const virtio_net_function& d = self(c);
        auto* o = static_cast<std::uint8_t*>(out);
        for (int tries = 0; tries < 100; ++tries) {
            const std::uint8_t gen = rd8(d.common_, virtio_pci::common::config_generation);
            for (std::uint32_t i = 0; i < len; ++i) {
                const std::uint64_t at = std::uint64_t{off} + i;
                o[i] = at < d.layout_.device.length ? rd8(d.device_, static_cast<std::uint32_t>(at))
                                                    : 0;
            }
            if (rd8(d.common_, virtio_pci::common::config_generation) == gen) {
                return;
            }
        }
    }

    static constexpr virtio::transport_ops ops_{
        &device_features, &set_driver_features, &get_status, &set_status,
        &queue_max,       &queue_enable,        &notify,     &irq_mask,
        &read_config};

    pci_function fn_;
    virtio_pci::layout layout_{};
    volatile std::byte* common_ = nullptr;
    volatile std::byte* notify_ = nullptr;
    volatile std::byte* isr_ = nullptr;
    volatile std::byte* device_ = nullptr;
    std::array<volatile std::uint16_t*, max_queues> notify_at_{};
    std::uint64_t offered_ = 0, notifies_ = 0;
    std::uint32_t masked_ = 0;
    bool packed_ring_ = false;
    const char* last_error_ = "";
    virtio_net::window window_{};
};

} // namespace npa::lnx::pci
