// Indirect descriptor tables in a test's own "driver memory" (virtio 1.2 2.7.5.3, 2.8.13),
// for the device-side tests of both ring layouts: entries written byte by byte at any
// offset (a table need not be aligned), and the table reader pop() is given, which maps
// [base, base + size) of guest addresses and nothing else.
#pragma once

#include <npa/endian.hpp>
#include <npa/virtio/virtqueue.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace npa::virtio::test {

struct driver_tables {
    static constexpr std::uint64_t base = 0x80000; // below the rings' 0x100000 address check
    std::vector<std::byte> mem = std::vector<std::byte>(4096);
    std::uint32_t reads = 0;

    /// Entry i of the table at `off`: a split virtq_desc (flags at 12, next at 14) or, with
    /// `packed`, a pvirtq_desc (id at 12, flags at 14).
    void put(std::size_t off, std::uint32_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
             std::uint16_t next = 0, bool packed = false) {
        std::byte* e = mem.data() + off + 16u * i;
        store_le64(e, addr);
        store_le32(e + 8, len);
        store_le16(e + (packed ? 14 : 12), flags);
        store_le16(e + (packed ? 12 : 14), packed ? std::uint16_t{0xEEEE} : next);
    }
    [[nodiscard]] static std::uint64_t gpa(std::size_t off) { return base + off; }

    /// The reader: the whole range inside mem, or nullptr.
    [[nodiscard]] auto reader() {
        return [this](std::uint64_t a, std::uint32_t len) -> const std::byte* {
            ++reads;
            if (a < base || a - base > mem.size() || len > mem.size() - (a - base)) {
                return nullptr;
            }
            return mem.data() + (a - base);
        };
    }
};

} // namespace npa::virtio::test
