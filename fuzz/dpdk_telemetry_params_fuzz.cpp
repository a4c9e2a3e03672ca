// fuzz/dpdk_telemetry_params_fuzz.cpp: the parser of net_npa's telemetry command
// parameters (adapters/dpdk/src/devargs.cpp, parse_tel_params) on any string. The
// parameters come from whoever can reach the process's telemetry socket
// (/npa/switch,<port_id>,<path>), so every byte is outside input.
//
// Invariants: no out-of-bounds access or undefined behaviour; a success gives values
// within their ranges with an empty error, and printing the values back gives the input
// (leading zeros aside); a failure leaves a non-empty, NUL-terminated sentence.
#include "fuzz_input.hpp"

#include "devargs.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // The first byte picks the parameter list; the rest is the parameter string.
    static constexpr npa::dpdk::tel_param lists[][2] = {
        {{"port_id", 31}, {"path", 7}},
        {{"port_id", 1023}, {"n", ~std::uint64_t{0}}},
    };
    const auto& specs = lists[data[0] % 2];
    const std::size_t count = 1 + (data[0] >> 1) % 2;
    // The parser reads a C string: the input up to its first NUL.
    const char* text = reinterpret_cast<const char*>(data + 1);
    const std::string s(text, strnlen(text, size - 1));
    npa::dpdk::tel_params out;
    const npa::status st = npa::dpdk::parse_tel_params(s.c_str(), specs, count, out);
    NPA_FUZZ_CHECK(std::memchr(out.error.data(), 0, out.error.size()) != nullptr);
    if (st.ok()) {
        NPA_FUZZ_CHECK(out.error[0] == '\0');
        std::string back;
        for (std::size_t i = 0; i < count; ++i) {
            NPA_FUZZ_CHECK(out.v[i] <= specs[i].max);
            char num[24];
            std::snprintf(num, sizeof num, "%" PRIu64, out.v[i]);
            back += (i != 0 ? "," : "") + std::string{num};
        }
        NPA_FUZZ_CHECK(s.find_first_not_of("0123456789,") == std::string::npos);
        // Leading zeros aside, the input is the values written back: nothing wrapped.
        NPA_FUZZ_CHECK(back.size() <= s.size());
        NPA_FUZZ_CHECK(static_cast<std::size_t>(std::count(s.begin(), s.end(), ',')) ==
                       count - 1);
    } else {
        NPA_FUZZ_CHECK(st.code() == npa::errc::invalid_argument);
        NPA_FUZZ_CHECK(out.error[0] != '\0');
    }
    return 0;
}
