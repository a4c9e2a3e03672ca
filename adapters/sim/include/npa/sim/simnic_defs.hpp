// npa/sim/simnic_defs.hpp: the simnic's device ABI (its "datasheet").
//
// The simnic is a deliberately plain NIC, close to vmxnet3 and the Intel descriptor rings
// in shape, so that a plugin written against it teaches the real thing:
//
//   per queue pair: a TX descriptor ring, a TX completion ring, an RX descriptor ring and
//   an RX completion ring, all in guest memory, each `size` entries of 16 bytes, size a
//   power of two in [simnic_min_ring_size, simnic_max_ring_size]. A completion ring has
//   as many entries as its descriptor ring, so the device can never overrun it.
//
//   Ownership: bit 31 of word 3 of every descriptor and completion is a generation bit
//   (vmxnet3_defs.h "gen"). The producer writes the entry, then flips the bit to its
//   current generation; both sides start at generation 1 on zeroed rings and flip on
//   every wrap.
//
//   Doorbells: the driver writes the free-running count of descriptors it has handed
//   over on a ring (like virtio's avail->idx, virtio 1.1 section 2.6.6), once per burst.
//   The device fetches exactly that many; a doorbell ahead of the descriptors' generation
//   bits, or more than a ring ahead, is a driver error.
//
//   Tags: the driver writes a 32-bit tag in each descriptor (the free-running count of
//   that descriptor on its ring); the device copies it into the completion. A completion
//   whose tag does not match the descriptor in that slot is stale, duplicated or invented,
//   and the driver rejects it (virtio packed rings use a buffer id the same way).
//
//   Completions: one per descriptor, in ring order, on both rings. TX completion `len`
//   is 0; RX completion `len` is the frame length. `error` set: the device could not DMA
//   the buffer (the frame was not sent / the buffer holds nothing).
//
//   Interrupts: one line per queue pair, raised after the device writes completions.
//
//   Byte order: every descriptor and completion field is little-endian (npa::le16 ...),
//   as on the real devices it imitates, on every host.
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>
#include <npa/ring/gen_ring.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>

namespace npa::sim {

inline constexpr std::uint16_t simnic_max_queues = 8;       // queue pairs (interrupt lines)
inline constexpr std::uint32_t simnic_min_ring_size = 32;   // as vmxnet3's minimum
inline constexpr std::uint32_t simnic_max_ring_size = 4096; // as vmxnet3's TX maximum
inline constexpr std::uint32_t simnic_desc_size = 16;
/// Smallest RX buffer the device accepts: a full frame must fit (no scatter on RX).
inline constexpr std::uint32_t simnic_min_rx_buf = 1518;

/// Generation bit: bit 15 of `ctrl`, i.e. bit 31 of descriptor word 3.
inline constexpr std::uint16_t simnic_ctrl_gen = 1u << 15;
/// Completion status: the buffer DMA failed.
inline constexpr std::uint16_t simnic_ctrl_error = 1u << 0;

struct simnic_tx_desc {
    le64 addr = 0;  ///< IOVA of the frame
    le32 tag = 0;   ///< echoed in the completion
    le16 len = 0;   ///< frame bytes
    le16 ctrl = 0;  ///< gen
};
struct simnic_rx_desc {
    le64 addr = 0;  ///< IOVA of the buffer
    le32 tag = 0;   ///< echoed in the completion
    le16 len = 0;   ///< buffer bytes available (>= simnic_min_rx_buf)
    le16 ctrl = 0;  ///< gen
};
struct simnic_comp_desc {
    le32 index = 0;     ///< slot of the descriptor this completes
    le32 tag = 0;       ///< that descriptor's tag
    le32 rss_hash = 0;  ///< RX: the hash the queue was chosen by
    le16 len = 0;       ///< RX: frame bytes written
    le16 ctrl = 0;      ///< gen, error
};

static_assert(sizeof(simnic_tx_desc) == simnic_desc_size && offsetof(simnic_tx_desc, tag) == 8 &&
              offsetof(simnic_tx_desc, len) == 12 && offsetof(simnic_tx_desc, ctrl) == 14);
static_assert(sizeof(simnic_rx_desc) == simnic_desc_size && offsetof(simnic_rx_desc, len) == 12 &&
              offsetof(simnic_rx_desc, ctrl) == 14);
static_assert(sizeof(simnic_comp_desc) == simnic_desc_size &&
              offsetof(simnic_comp_desc, tag) == 4 && offsetof(simnic_comp_desc, len) == 12 &&
              offsetof(simnic_comp_desc, ctrl) == 14);

using simnic_tx_traits = gen_bit_traits<simnic_tx_desc, 3, 31>;
using simnic_rx_traits = gen_bit_traits<simnic_rx_desc, 3, 31>;
using simnic_comp_traits = gen_bit_traits<simnic_comp_desc, 3, 31>;

/// Where a queue pair's rings are: written by the driver to the queue's registers before
/// it activates the queue.
struct simnic_ring_layout {
    iova_t tx_ring = 0;
    iova_t txc_ring = 0;
    iova_t rx_ring = 0;
    iova_t rxc_ring = 0;
    std::uint32_t tx_size = 0;
    std::uint32_t rx_size = 0;
};

/// Device status register.
enum class simnic_state : std::uint32_t {
    running = 0,  ///< normal
    failed = 1,   ///< a queue hit a driver error; the device stopped it
    reset = 2,    ///< the device reset itself: every queue is gone until re-activated
    removed = 3,  ///< surprise removal: nothing answers any more
};

[[nodiscard]] constexpr bool simnic_ring_size_ok(std::uint32_t n) noexcept {
    return is_power_of_two(n) && n >= simnic_min_ring_size && n <= simnic_max_ring_size;
}

/// Bytes of ring memory one queue pair needs.
[[nodiscard]] constexpr std::size_t simnic_ring_bytes(std::uint32_t tx, std::uint32_t rx) noexcept {
    return (std::size_t{tx} * 2 + std::size_t{rx} * 2) * simnic_desc_size;
}

} // namespace npa::sim
