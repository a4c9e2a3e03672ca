// fuzz/vhost_user_message_fuzz.cpp: vhost-user messages as they arrive from a peer that is
// not trusted (adapters/linux/include/npa/linux/vhost_user/message.hpp): a back end reads a
// front end's requests, a front end reads a back end's replies.
//
// Input: byte 0 is the number of descriptors said to come with the message (0-15), byte 1
// bit 0 reads the rest as a reply (to the request in byte 2), the rest is the wire bytes.
// Invariants: no out-of-bounds access or undefined behaviour; an accepted message has the
// size its header announces, within the largest payload, the descriptors its request takes
// (one a region for SET_MEM_TABLE, whose regions neither are empty nor wrap), ring indexes
// below 256; a refused one says why and leaves the output untouched.
#include "fuzz_input.hpp"

#include <npa/linux/vhost_user/message.hpp>

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace vu = npa::vhost_user;
    if (size < 3) {
        return 0;
    }
    const std::uint32_t nfds = data[0] & 15;
    const bool as_reply = (data[1] & 1) != 0;
    const auto expected = static_cast<vu::request>(1 + data[2] % 20);
    const std::span<const std::byte> wire(reinterpret_cast<const std::byte*>(data + 3), size - 3);
    vu::message m;
    m.hdr.request = 0xdead;
    const npa::status st = vu::parse(wire, nfds, m, as_reply, expected);
    if (!st) {
        NPA_FUZZ_CHECK(st.reason() != nullptr && std::strlen(st.reason()) > 0);
        NPA_FUZZ_CHECK(m.hdr.request == 0xdead);
        return 0;
    }
    NPA_FUZZ_CHECK(m.hdr.size <= vu::max_payload && wire.size() == sizeof(vu::header) + m.hdr.size);
    NPA_FUZZ_CHECK((m.hdr.flags & vu::version_mask) == vu::version);
    if (as_reply) {
        NPA_FUZZ_CHECK(m.req() == expected && nfds == 0);
        return 0;
    }
    if (m.req() == vu::request::set_mem_table) {
        const auto t = m.get<vu::memory_table>();
        NPA_FUZZ_CHECK(t.nregions >= 1 && t.nregions <= vu::max_regions && nfds == t.nregions);
        for (std::uint32_t i = 0; i < t.nregions; ++i) {
            NPA_FUZZ_CHECK(t.regions[i].memory_size != 0);
            NPA_FUZZ_CHECK(t.regions[i].userspace_addr + t.regions[i].memory_size > t.regions[i].userspace_addr);
        }
    }
    if (vu::request_payload(m.req()) == vu::payload_kind::state) {
        NPA_FUZZ_CHECK(m.get<vu::vring_state>().index < vu::max_rings);
    }
    return 0;
}
