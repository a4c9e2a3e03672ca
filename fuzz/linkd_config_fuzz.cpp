// fuzz/linkd_config_fuzz.cpp: npa-linkd's config and policy files (adapters/linux/src/
// config.cpp, load_config_file and load_policy_file). The input is the file's contents,
// handed over through an anonymous memory file (memfd) so nothing touches the disk.
//
// Invariants: no out-of-bounds access or undefined behaviour; a refusal names the file
// and line (a non-empty message); a policy that loads keeps mtu values as written and
// VLAN ids within 0..4095 (the bitset's size makes anything else an out-of-range access).
#include "fuzz_input.hpp"
#include "linkd_safe_paths.hpp"

#include "config.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace {

// One memfd for the whole run, rewritten for each input.
int memfd() {
    static const int fd = memfd_create("npa-linkd-config", 0);
    return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 8192) return 0;
    const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (npa::fuzz::names_special_file(all)) return 0;
    const int fd = memfd();
    NPA_FUZZ_CHECK(fd >= 0);
    NPA_FUZZ_CHECK(ftruncate(fd, 0) == 0);
    NPA_FUZZ_CHECK(pwrite(fd, all.data(), all.size(), 0) == static_cast<ssize_t>(all.size()));
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    std::string err;
    if ((data[0] & 1) != 0) {
        npa::lnx::tools::daemon_config cfg;
        if (!npa::lnx::tools::load_config_file(path, cfg, err)) {
            NPA_FUZZ_CHECK(!err.empty());
        } else if (!npa::lnx::tools::validate(cfg, err)) {
            NPA_FUZZ_CHECK(!err.empty());
        }
    } else {
        npa::lnx::tools::policy_config pol;
        if (!npa::lnx::tools::load_policy_file(path, pol, err)) {
            NPA_FUZZ_CHECK(!err.empty());
        }
    }
    return 0;
}
