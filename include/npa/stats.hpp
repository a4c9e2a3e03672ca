// npa/stats.hpp: per-queue counters shared by plugins and the shell.
//
// Failures on the data path are counters with names, never return values (STYLE.md
// point 5), after Linux vmxnet3_int.h's per-queue driver stats.
#pragma once

#include <cstdint>

namespace npa {

struct queue_stats {
    std::uint64_t rx_packets = 0;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_packets = 0;      ///< completed by the device
    std::uint64_t tx_bytes = 0;
    std::uint64_t rx_no_buffer = 0;    ///< RX refill found the pool empty
    std::uint64_t rx_dropped = 0;      ///< received but dropped (bad length, error bit)
    std::uint64_t tx_ring_full = 0;    ///< tx_burst had to return a short count
    std::uint64_t tx_errors = 0;       ///< completions reporting an error
    std::uint64_t bad_completion = 0;  ///< device wrote something out of range or out of order
    std::uint64_t irqs = 0;            ///< interrupts taken
    std::uint64_t resets = 0;          ///< queue/ring resets after a device violation

    queue_stats& operator+=(const queue_stats& o) noexcept {
        rx_packets += o.rx_packets;
        rx_bytes += o.rx_bytes;
        tx_packets += o.tx_packets;
        tx_bytes += o.tx_bytes;
        rx_no_buffer += o.rx_no_buffer;
        rx_dropped += o.rx_dropped;
        tx_ring_full += o.tx_ring_full;
        tx_errors += o.tx_errors;
        bad_completion += o.bad_completion;
        irqs += o.irqs;
        resets += o.resets;
        return *this;
    }
};

} // namespace npa
