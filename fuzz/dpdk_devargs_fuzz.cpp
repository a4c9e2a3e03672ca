// fuzz/dpdk_devargs_fuzz.cpp: the net_npa device-argument parser (adapters/dpdk/src/devargs.cpp)
// on any string. The arguments come from the DPDK application's command line
// (--vdev 'net_npa0,dev(...),...'), so every byte is outside input.
//
// Invariants: no out-of-bounds access or undefined behaviour; a success gives 1..8
// NUL-terminated device strings, an active index naming one of them and times within
// bounds, with an empty error; plugin= and trusted_key= both given or both empty, and
// given exactly when a device is a sim model (dev(sim:...)); a failure leaves a
// non-empty, NUL-terminated sentence.
#include "fuzz_input.hpp"

#include "devargs.hpp"

#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string s(reinterpret_cast<const char*>(data), size);  // stops at the first NUL
    npa::dpdk::npa_devargs out;
    const npa::status st = npa::dpdk::parse_devargs(s.c_str(), out);
    NPA_FUZZ_CHECK(std::memchr(out.error.data(), 0, out.error.size()) != nullptr);
    if (st.ok()) {
        NPA_FUZZ_CHECK(out.error[0] == '\0');
        NPA_FUZZ_CHECK(out.dev_count >= 1 && out.dev_count <= npa::dpdk::max_sub_devices);
        NPA_FUZZ_CHECK(out.active < out.dev_count);
        NPA_FUZZ_CHECK(out.dwell_ms <= npa::dpdk::max_policy_ms);
        NPA_FUZZ_CHECK(out.backoff_ms <= npa::dpdk::max_policy_ms);
        bool sim = false;
        for (std::size_t i = 0; i < out.dev_count; ++i) {
            const auto& d = out.devs[i];
            NPA_FUZZ_CHECK(std::memchr(d.data(), 0, d.size()) != nullptr);
            NPA_FUZZ_CHECK(d[0] != '\0');
            sim = sim || npa::dpdk::is_sim_device(d.data());
        }
        NPA_FUZZ_CHECK(std::memchr(out.plugin.data(), 0, out.plugin.size()) != nullptr);
        NPA_FUZZ_CHECK(std::memchr(out.trusted_key.data(), 0, out.trusted_key.size()) != nullptr);
        NPA_FUZZ_CHECK((out.plugin[0] != '\0') == sim);
        NPA_FUZZ_CHECK((out.trusted_key[0] != '\0') == sim);
    } else {
        NPA_FUZZ_CHECK(st.code() == npa::errc::invalid_argument);
        NPA_FUZZ_CHECK(out.error[0] != '\0');
    }
    return 0;
}
