// fuzz/linkd_flags_fuzz.cpp: npa-linkd's command line (adapters/linux/src/config.cpp,
// parse_args then validate). The input is split into arguments at NUL and newline bytes.
//
// Invariants: no out-of-bounds access or undefined behaviour; a refusal always says why
// (a non-empty message); a configuration that parses and validates respects its limits.
#include "fuzz_input.hpp"
#include "linkd_safe_paths.hpp"

#include "config.hpp"

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    if (npa::fuzz::names_special_file(all) || size > 4096) return 0;
    std::vector<std::string> args{"npa-linkd"};
    std::string cur;
    for (const char c : all) {
        if (c == '\0' || c == '\n') {
            args.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) args.push_back(cur);
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);

    npa::lnx::tools::daemon_config cfg;
    std::string err;
    if (!npa::lnx::tools::parse_args(static_cast<int>(args.size()), argv.data(), cfg, err)) {
        NPA_FUZZ_CHECK(!err.empty());
        return 0;
    }
    if (cfg.help) return 0;
    if (!npa::lnx::tools::validate(cfg, err)) {
        NPA_FUZZ_CHECK(!err.empty());
        return 0;
    }
    NPA_FUZZ_CHECK(!cfg.lowers.empty());
    NPA_FUZZ_CHECK(cfg.policy.mtu_min <= cfg.policy.mtu_max);
    for (const auto& l : cfg.lowers) NPA_FUZZ_CHECK(!l.ifname.empty());
    return 0;
}
