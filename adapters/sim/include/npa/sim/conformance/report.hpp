// npa/sim/conformance/report.hpp: what a conformance check hands back: a verdict (ok, or
// the failures in the order they were seen), the outcome of one check or hostile case as a
// reporter sees it, and the reporter that prints (part of npa/sim/conformance.hpp).
#pragma once

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>

namespace npa::sim {

/// The outcome of one conformance check: ok, or the first failure and any that followed.
struct verdict {
    bool ok = true;
    std::string message;

    void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        va_list ap, ap2;
        va_start(ap, fmt);
        va_copy(ap2, ap);
        const int len = std::vsnprintf(nullptr, 0, fmt, ap);
        va_end(ap);
        std::string buf(len > 0 ? static_cast<std::size_t>(len) + 1 : 1, '\0');
        std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
        va_end(ap2);
        buf.pop_back();
        message += ok ? "" : "\n  then: ";
        message += buf;
        ok = false;
    }
};

/// The outcome of one check, or of one hostile-device case, as a reporter sees it.
struct conformance_result {
    const char* check;         ///< the check's name
    const char* hostile_case;  ///< the hostile-device case, or nullptr
    verdict v;
    bool skipped = false;      ///< the case does not apply to this rig (v.message says why)
};

/// A reporter with no test framework: one line per failure or skip on stderr, a count of
/// each kind for summary().
struct print_reporter {
    std::uint32_t passed = 0, failed = 0, skipped = 0;

    void operator()(const conformance_result& r) {
        const char* sep = r.hostile_case != nullptr ? ": " : "";
        const char* hc = r.hostile_case != nullptr ? r.hostile_case : "";
        if (r.skipped) {
            ++skipped;
            std::fprintf(stderr, "conformance: %s%s%s: %s\n", r.check, sep, hc, r.v.message.c_str());
        } else if (!r.v.ok) {
            ++failed;
            std::fprintf(stderr, "conformance FAILED: %s%s%s: %s\n", r.check, sep, hc,
                         r.v.message.c_str());
        } else {
            ++passed;
        }
    }
    void summary() const {
        std::printf("conformance: %u passed, %u failed, %u not run\n", passed, failed, skipped);
    }
};

} // namespace npa::sim
