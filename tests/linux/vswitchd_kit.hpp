// npa-vswitchd as a child of a test: started on a private run directory with the given
// ports, its log beside them, its ports' state and counters read from their JSON files, and
// stopped (SIGTERM) and the directory removed when the test is done.
#pragma once

#include "vhost_testpmd.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace npa::test {

inline std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// A number after `key` in `text` (-1 when absent).
inline std::int64_t number_after(const std::string& text, const std::string& key, std::size_t from = 0) {
    const auto at = text.find(key, from);
    return at == std::string::npos ? -1 : std::strtoll(text.c_str() + at + key.size(), nullptr, 10);
}

/// Stops a txonly testpmd (SIGINT: it stops forwarding and closes its port) and answers
/// what it sent, from the "Accumulated forward statistics" it prints on the way out.
inline std::int64_t stop_sender(testpmd& t, const std::string& log) {
    REQUIRE(::kill(t.pid, SIGINT) == 0);
    int status = 0;
    REQUIRE(wait_until(std::chrono::seconds(20), [&] { return ::waitpid(t.pid, &status, WNOHANG) == t.pid; }));
    t.pid = -1;
    const std::string text = slurp(log);
    const auto acc = text.find("Accumulated forward statistics");
    REQUIRE(acc != std::string::npos);
    return number_after(text, "TX-packets:", acc);
}

struct vswitchd {
    pid_t pid = -1;
    std::string dir;

    /// `ports`: each a --port value (name,mac=...); returns once the last port's JSON exists.
    void start(const char* program, const std::string& run_dir, const std::vector<std::string>& ports,
               const std::vector<std::string>& extra = {}) {
        dir = run_dir;
        std::vector<std::string> a = {program, "--run-dir", dir};
        for (const std::string& p : ports) {
            a.insert(a.end(), {"--port", p});
        }
        a.insert(a.end(), extra.begin(), extra.end());
        pid = spawn(a, dir + "/vswitchd.log");
        const std::string last = ports.back().substr(0, ports.back().find(','));
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (::access((dir + "/" + last + ".json").c_str(), R_OK) != 0) {
            REQUIRE(std::chrono::steady_clock::now() < end);
            ::usleep(10000);
        }
    }
    [[nodiscard]] std::string json(const std::string& port) const { return slurp(dir + "/" + port + ".json"); }
    [[nodiscard]] std::string log() const { return slurp(dir + "/vswitchd.log"); }
    /// A counter of a port, from its JSON.
    [[nodiscard]] std::int64_t counter(const std::string& port, const std::string& name) const {
        return number_after(json(port), "\"" + name + "\": ");
    }
    [[nodiscard]] std::string state(const std::string& port) const {
        const std::string j = json(port);
        const auto at = j.find("\"state\": \"");
        return at == std::string::npos ? "" : j.substr(at + 10, j.find('"', at + 10) - at - 10);
    }
    /// Frames taken from the port's front end and dropped, every cause.
    [[nodiscard]] std::int64_t rx_drops(const std::string& p) const {
        std::int64_t t = 0;
        for (const char* k : {"rx_spoofed", "rx_vlan", "rx_runt", "rx_oversize", "rx_unknown_dst", "rx_hairpin"}) {
            t += counter(p, k);
        }
        return t;
    }
    /// Frames forwarded to the port and dropped there, every cause.
    [[nodiscard]] std::int64_t tx_drops(const std::string& p) const {
        std::int64_t t = 0;
        for (const char* k : {"tx_vlan", "tx_down", "tx_no_buffer", "tx_too_big"}) {
            t += counter(p, k);
        }
        return t;
    }
    void stop() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
        pid = -1;
    }
    ~vswitchd() {
        stop();
        if (!dir.empty()) {
            std::filesystem::remove_all(dir);
        }
    }
};

} // namespace npa::test
