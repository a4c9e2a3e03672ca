// fuzz/linkd_safe_paths.hpp: keeps the npa-linkd parser targets off special files.
//
// The flags and the config file may name further files (--config, --policy, policy =).
// A fuzzer that writes /dev/zero or a FIFO there would test the disk, not the parser, and
// could block; such inputs are skipped. Relative names are harmless (they do not exist in
// the fuzzer's working directory, so the parser reports them missing).
#pragma once

#include <string_view>

namespace npa::fuzz {

[[nodiscard]] inline bool names_special_file(std::string_view s) noexcept {
    for (const std::string_view bad : {"/dev", "/proc", "/sys", "/run", "/tmp", "/var", "/mnt"}) {
        if (s.find(bad) != std::string_view::npos) return true;
    }
    return false;
}

} // namespace npa::fuzz
