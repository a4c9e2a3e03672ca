// npa/fmt.hpp: {fmt} formatters for npa's telemetry (switch records, stats, audit).
//
// Optional: the core never includes this; tools, tests and adapters that print do.
//   fmt::print("{}\n", shell.history().recent(0));
#pragma once

#if !__has_include(<fmt/format.h>)
#error "npa/fmt.hpp needs {fmt} (Debian: libfmt-dev)"
#endif

#include <npa/capabilities.hpp>
#include <npa/shell.hpp>
#include <npa/stats.hpp>
#include <npa/switch.hpp>

#include <fmt/format.h>

#include <string>

namespace npa {

/// Offload bits as a readable list: "tso,rx-csum".
struct offload_names {
    std::uint32_t bits;
};

} // namespace npa

template <>
struct fmt::formatter<npa::offload_names> : fmt::formatter<fmt::string_view> {
    template <class Ctx>
    auto format(const npa::offload_names& o, Ctx& ctx) const {
        auto out = ctx.out();
        bool first = true;
        for (unsigned bit = 0; bit < npa::cap::count; ++bit) {
            if ((o.bits >> bit & 1u) != 0) {
                out = fmt::format_to(out, "{}{}", first ? "" : ",", npa::cap::name(bit));
                first = false;
            }
        }
        if (first) {
            out = fmt::format_to(out, "none");
        }
        return out;
    }
};

template <>
struct fmt::formatter<npa::switch_record> : fmt::formatter<fmt::string_view> {
    template <class Ctx>
    auto format(const npa::switch_record& r, Ctx& ctx) const {
        auto out = fmt::format_to(ctx.out(), "#{} {} -> {} ({}): ", r.seq, r.from, r.to,
                                  npa::to_string(r.reason));
        if (r.result != npa::errc::ok) {
            return fmt::format_to(out, "failed: {}", r.detail != nullptr ? r.detail : npa::to_string(r.result));
        }
        out = fmt::format_to(out, "{:.1f} us, held {}, requeued {}, tx lost {}, rx dropped {}",
                             static_cast<double>(r.duration_ns) / 1000.0, r.held, r.requeued,
                             r.tx_lost, r.rx_dropped);
        if (r.caps_lost != 0) {
            out = fmt::format_to(out, ", lost [{}]", npa::offload_names{r.caps_lost});
        }
        if (r.caps_gained != 0) {
            out = fmt::format_to(out, ", regained [{}]", npa::offload_names{r.caps_gained});
        }
        return out;
    }
};

template <>
struct fmt::formatter<npa::queue_stats> : fmt::formatter<fmt::string_view> {
    template <class Ctx>
    auto format(const npa::queue_stats& s, Ctx& ctx) const {
        return fmt::format_to(ctx.out(),
                              "rx {} pkts {} B, tx {} pkts {} B, rx_no_buffer {}, rx_dropped {}, "
                              "tx_ring_full {}, tx_errors {}, bad_completion {}, irqs {}, resets {}",
                              s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.rx_no_buffer,
                              s.rx_dropped, s.tx_ring_full, s.tx_errors, s.bad_completion, s.irqs,
                              s.resets);
    }
};

template <>
struct fmt::formatter<npa::shell_queue_counters> : fmt::formatter<fmt::string_view> {
    template <class Ctx>
    auto format(const npa::shell_queue_counters& c, Ctx& ctx) const {
        return fmt::format_to(ctx.out(),
                              "tx accepted {}, backlogged {}, backlog full {}, no path {}, "
                              "requeued {}, lost {}; rx delivered {}; flips {}",
                              c.tx_accepted, c.tx_backlogged, c.tx_backlog_full, c.tx_no_path,
                              c.tx_requeued, c.tx_lost, c.rx_delivered, c.flips);
    }
};

template <>
struct fmt::formatter<npa::audit_report> : fmt::formatter<fmt::string_view> {
    template <class Ctx>
    auto format(const npa::audit_report& a, Ctx& ctx) const {
        return fmt::format_to(ctx.out(),
                              "{}: {} buffers = {} in pools + {} with the OS + {} backlogged + "
                              "{} requeued + {} in plugins{}{}{}",
                              a.ok() ? "balanced" : "UNBALANCED", a.pool_size, a.in_pool, a.caller,
                              a.backlog, a.requeue, a.in_plugins, a.leaked != 0 ? "; " : "",
                              a.leaked != 0 ? fmt::to_string(a.leaked) : std::string{},
                              a.leaked != 0 ? " leaked by detached plugins" : "");
    }
};
