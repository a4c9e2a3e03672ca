// npa/detail/store_changed.hpp: a store that leaves memory alone when it already holds the
// value, for fields in memory the other side of a ring reads.
//
// A line the other side has read is shared between the two caches; a store takes it back
// from the other cache first, whether or not the bytes change, and the other side's next
// read then misses. A field written with the same bytes again and again (a virtio-net
// header with no offloads, in a buffer that goes out over and over) costs that transfer
// every time; reading it first costs a hit in the writer's own copy. DPDK's virtio driver
// spares its transmit headers the same way. Used by the virtio-net plugin's transmit
// header and npa-vswitchd's receive header (sending to net_vhost: 0.92 -> 1.18 of
// net_virtio_user per CPU-second; adapters/linux/README.md).
#pragma once

#include <npa/config.hpp>

#include <cstddef>
#include <cstring>

namespace npa::detail {

/// Copies n bytes from src to dst unless dst holds them already. With n known at compile
/// time both the compare and the copy are a few plain moves.
NPA_ALWAYS_INLINE void store_changed(void* dst, const void* src, std::size_t n) noexcept {
    if (std::memcmp(dst, src, n) != 0) {
        std::memcpy(dst, src, n);
    }
}

} // namespace npa::detail
