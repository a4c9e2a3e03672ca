// The shell's data path allocates nothing: alloc, tx_burst, rx_burst, free and poll on
// every queue of a shell over two simnic paths, under bidirectional traffic and across
// switches in both directions, with every operator new on the queue thread counted
// (tests/support/alloc_counter.hpp). The device models, the far end and the control
// thread's switch requests run outside the counted scopes: they are test equipment and
// control path, which may allocate.
#include <doctest/doctest.h>

#include "../support/alloc_counter.hpp"

#include <npa/sim/shell_rig.hpp>

#include <array>
#include <cstdint>
#include <cstring>

namespace sim = npa::sim;
using npa::buffer_ref;
using npa::test::allocations;
using npa::test::no_alloc_scope;

namespace {

// An Ethernet header to the peer; the payload is whatever the buffer holds.
void write_frame(buffer_ref& b) noexcept {
    std::byte* d = b.data();
    std::memcpy(d, sim::shell_rig::peer_mac.data(), 6);
    std::memcpy(d + 6, sim::shell_rig::guest_mac.data(), 6);
    d[12] = std::byte{0x88};
    d[13] = std::byte{0xb5}; // local experimental EtherType
    b.set_length(96);
}

} // namespace

TEST_CASE("no allocation: shell data path under traffic and switches") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    auto& sh = r.sh();
    constexpr std::uint16_t burst = 16;
    std::array<std::array<buffer_ref, burst>, 2> held{};
    std::array<std::uint16_t, 2> nheld{};
    std::uint64_t sent = 0, received = 0, switches_requested = 0;
    const auto before = allocations;
    for (int round = 0; round < 3000; ++round) {
        {
            no_alloc_scope s;
            for (std::uint16_t q = 0; q < r.queues(); ++q) {
                auto& h = held[q];
                const auto want = static_cast<std::uint16_t>(burst - nheld[q]);
                const auto got =
                    static_cast<std::uint16_t>(sh.alloc(q, std::span(h).subspan(nheld[q], want)));
                for (std::uint16_t i = nheld[q]; i < nheld[q] + got; ++i)
                    write_frame(h[i]);
                nheld[q] = static_cast<std::uint16_t>(nheld[q] + got);
                const std::uint16_t k = sh.tx_burst(q, std::span(h).first(nheld[q]));
                sent += k;
                // What the shell did not take stays with the caller, in order.
                for (std::uint16_t i = k; i < nheld[q]; ++i)
                    h[i - k] = h[i];
                nheld[q] = static_cast<std::uint16_t>(nheld[q] - k);

                std::array<buffer_ref, 32> rx{};
                const std::uint16_t n = sh.rx_burst(q, rx);
                received += n;
                sh.free(q, std::span<const buffer_ref>(rx.data(), n));
                (void)sh.poll(q);
            }
        }
        // Test equipment and the control thread, uncounted.
        (void)r.peer().send(burst);
        (void)r.emu().step();
        (void)r.vf().step();
        (void)sh.service();
        sim::shell_rig::env_type::advance(10'000);
        if (round % 100 == 50 && !sh.switching()) {
            REQUIRE(r.request_flip().ok());
            ++switches_requested;
        }
    }
    CHECK(allocations == before);
    CHECK(sent > 10'000);
    CHECK(received > 10'000);
    CHECK(sh.history().switches() >= switches_requested); // the switches did happen
    CHECK(switches_requested >= 20);
    for (std::uint16_t q = 0; q < r.queues(); ++q) {
        sh.free(q, std::span<const buffer_ref>(held[q].data(), nheld[q]));
    }
    CHECK(sh.audit().ok());
}
