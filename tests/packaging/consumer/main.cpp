// A downstream program: a buffer pool and an index ring, used through <npa/npa.hpp> only.
#include <npa/npa.hpp>

#include <array>
#include <cstdio>

int main() {
    constexpr std::uint32_t count = 8;
    auto pool = npa::fixed_pool<>::create(npa::pool_config{.count = count, .buf_size = 512,
                                                           .headroom = 64, .pool_id = 0});
    if (!pool) {
        std::puts("npa consumer: pool creation failed");
        return 1;
    }
    std::array<npa::buffer_ref, count> bufs{};
    if (pool->alloc_bulk(bufs) != count || pool->available() != 0) {
        std::puts("npa consumer: alloc_bulk failed");
        return 2;
    }
    npa::index_ring<npa::buffer_ref, count> ring;
    std::array<npa::buffer_ref, count> out{};
    if (ring.enqueue_burst(bufs) != count || ring.dequeue_burst(out) != count || out != bufs) {
        std::puts("npa consumer: ring round trip failed");
        return 3;
    }
    pool->free_burst(out);
    if (pool->available() != count) {
        std::puts("npa consumer: buffers lost");
        return 4;
    }
    std::puts("npa consumer: ok");
    return 0;
}
