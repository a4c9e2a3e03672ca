// tests/dpdk/log_capture.hpp: what DPDK logs while a test looks (the refusal sentences a
// probe writes), read back as text.
#pragma once

#include <rte_log.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace npa::test {

/// Captures what DPDK logs while it lives.
class log_capture {
public:
    log_capture() : f_(open_memstream(&buf_, &len_)) { rte_openlog_stream(f_); }
    ~log_capture() {
        rte_openlog_stream(nullptr);
        std::fclose(f_);
        std::free(buf_);
    }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;

    std::string text() {
        std::fflush(f_);
        return std::string(buf_, len_);
    }

private:
    char* buf_ = nullptr;
    std::size_t len_ = 0;
    std::FILE* f_;
};

} // namespace npa::test
