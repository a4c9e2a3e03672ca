// npa/endian.hpp: device byte order on any host. Every check is on bytes in memory, so on a
// big-endian host (the cross-s390x preset) a conversion that does nothing fails here.
#include <doctest/doctest.h>

#include <npa/endian.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace {
template <class T>
const unsigned char* bytes_of(const T& v) {
    return reinterpret_cast<const unsigned char*>(&v);
}
} // namespace

TEST_CASE("endian: byteswap reverses the bytes, at compile time too") {
    static_assert(npa::byteswap(std::uint16_t{0x1122}) == 0x2211);
    static_assert(npa::byteswap(std::uint32_t{0x11223344}) == 0x44332211u);
    static_assert(npa::byteswap(std::uint64_t{0x1122334455667788}) == 0x8877665544332211ull);
    CHECK(npa::byteswap(std::uint8_t{0xab}) == 0xab);
    CHECK(npa::from_le32(npa::to_le32(0xdeadbeefu)) == 0xdeadbeefu);
}

TEST_CASE("endian: le16 / le32 / le64 store the least significant byte first") {
    npa::le16 a = 0x1122;
    npa::le32 b = 0x11223344u;
    npa::le64 c = 0x1122334455667788ull;
    CHECK(bytes_of(a)[0] == 0x22);
    CHECK(bytes_of(a)[1] == 0x11);
    CHECK(bytes_of(b)[0] == 0x44);
    CHECK(bytes_of(b)[3] == 0x11);
    CHECK(bytes_of(c)[0] == 0x88);
    CHECK(bytes_of(c)[7] == 0x11);
    // Reading converts back.
    const std::uint32_t v = b;
    CHECK(v == 0x11223344u);
    CHECK(c.get() == 0x1122334455667788ull);
    // Compound assignment works on the value, not on the stored bytes.
    npa::le32 n = 0xff;
    n += 1;
    CHECK(n == 0x100u);
    CHECK(bytes_of(n)[0] == 0x00);
    CHECK(bytes_of(n)[1] == 0x01);
    n |= 0x80000000u;
    CHECK(bytes_of(n)[3] == 0x80);
    n &= 0xffu;
    CHECK(n == 0u);
}

TEST_CASE("endian: load and store at unaligned byte addresses") {
    unsigned char buf[16] = {};
    npa::store_le32(buf + 1, 0x0a0b0c0du);
    CHECK(buf[1] == 0x0d);
    CHECK(buf[4] == 0x0a);
    CHECK(npa::load_le32(buf + 1) == 0x0a0b0c0du);
    npa::store_le16(buf + 7, 0xbeef);
    CHECK(buf[7] == 0xef);
    CHECK(npa::load_le16(buf + 7) == 0xbeef);
    npa::store_le64(buf + 3, 0x0102030405060708ull);
    CHECK(buf[3] == 0x08);
    CHECK(buf[10] == 0x01);
    CHECK(npa::load_le64(buf + 3) == 0x0102030405060708ull);
}

TEST_CASE("endian: atomic load and store convert like plain access") {
    npa::le32 w = 0;
    w.store(0x01020304u, std::memory_order_release);
    CHECK(bytes_of(w)[0] == 0x04);
    CHECK(w.load(std::memory_order_acquire) == 0x01020304u);
    // raw() is the stored word: what an ownership mask in device order is compared with.
    CHECK(w.raw() == npa::to_le32(0x01020304u));
}

TEST_CASE("endian: the wrapper keeps layouts (size, alignment, trivially copyable)") {
    struct desc {
        npa::le64 addr;
        npa::le32 w2;
        npa::le16 len;
        npa::le16 flags;
    };
    static_assert(sizeof(desc) == 16 && alignof(desc) == 8);
    static_assert(std::is_trivially_copyable_v<desc>);
    desc d{};
    d.len = 60;
    unsigned char raw[16];
    std::memcpy(raw, &d, sizeof d);
    CHECK(raw[12] == 60);
    CHECK(raw[13] == 0);
}
