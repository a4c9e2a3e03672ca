// npa/sim/traffic.hpp: sequence-numbered test traffic, so that loss, duplication and
// reordering are measured, not guessed.
//
// Payload after the Ethernet header (EtherType eth::type_sim), big-endian:
//   magic u32 ("NPAT") | flow u32 | seq u64 | payload bytes (pattern, seq-dependent)
// The pattern lets the sink catch a frame whose bytes were corrupted in transit (a device
// writing into the wrong buffer, a buffer reused too early).
#pragma once

#include <npa/sim/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <vector>

namespace npa::sim {

inline constexpr std::uint32_t traffic_magic = 0x4e504154;  // "NPAT"
inline constexpr std::uint32_t traffic_header = 16;

/// Writes frames of one flow: src -> dst on `vlan`, `frame_len` bytes each.
class traffic_gen {
public:
    traffic_gen() = default;
    traffic_gen(std::uint32_t flow, mac_addr src, mac_addr dst, std::uint16_t vlan = 0,
                std::uint32_t frame_len = 128) noexcept
        : flow_(flow), src_(src), dst_(dst), vlan_(vlan), len_(frame_len) {}

    /// Writes the next frame into `out` (at least frame_len bytes); returns its length.
    std::uint32_t build(std::span<std::byte> out) noexcept {
        const std::uint32_t off = eth::write_header(out, dst_, src_, vlan_, eth::type_sim);
        const std::uint32_t want = varied_ ? varied_len(seq_) : len_;
        const std::uint32_t len = want < off + traffic_header ? off + traffic_header : want;
        std::byte* p = out.data() + off;
        put32(p, traffic_magic);
        put32(p + 4, flow_);
        put32(p + 8, static_cast<std::uint32_t>(seq_ >> 32));
        put32(p + 12, static_cast<std::uint32_t>(seq_));
        for (std::uint32_t i = off + traffic_header; i < len; ++i) {
            out[i] = pattern(seq_, i);
        }
        ++seq_;
        return len;
    }
    void build(frame& f) noexcept { f.len = build(std::span<std::byte>(f.data)); }

    /// From now on each frame's length is varied_len(its sequence number), not frame_len.
    void vary_length() noexcept { varied_ = true; }
    /// A length of its own for frame `seq`: 64..1063 bytes, and never the length of the
    /// frame a power-of-two ring's lap earlier (37 * 2^k is no multiple of 1000), so a
    /// length left over from the previous lap of a completion ring is told apart.
    static constexpr std::uint32_t varied_len(std::uint64_t seq) noexcept {
        return 64 + static_cast<std::uint32_t>((seq * 37) % 1000);
    }
    /// The sequence number of a frame of this traffic (the payload off bytes in, as
    /// eth::parse says), given at least off + traffic_header bytes.
    static std::uint64_t seq_of(const std::byte* payload) noexcept {
        return (std::uint64_t{get32(payload + 8)} << 32) | get32(payload + 12);
    }

    [[nodiscard]] std::uint64_t sent() const noexcept { return seq_; }
    [[nodiscard]] std::uint32_t flow() const noexcept { return flow_; }

    static std::byte pattern(std::uint64_t seq, std::uint32_t i) noexcept {
        return static_cast<std::byte>((seq * 31 + i) & 0xff);
    }
    static void put32(std::byte* p, std::uint32_t v) noexcept {
        eth::put16(p, static_cast<std::uint16_t>(v >> 16));
        eth::put16(p + 2, static_cast<std::uint16_t>(v));
    }
    static std::uint32_t get32(const std::byte* p) noexcept {
        return (std::uint32_t{eth::get16(p)} << 16) | eth::get16(p + 2);
    }

private:
    std::uint32_t flow_ = 0;
    mac_addr src_{};
    mac_addr dst_{};
    std::uint16_t vlan_ = 0;
    std::uint32_t len_ = 128;
    bool varied_ = false;
    std::uint64_t seq_ = 0;
};

/// What a sink measured for one flow, given how many the sender sent.
struct flow_report {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;    ///< distinct sequence numbers seen
    std::uint64_t lost = 0;        ///< sent - received
    std::uint64_t duplicates = 0;  ///< a sequence number seen again
    std::uint64_t reordered = 0;   ///< arrived after a higher sequence number
    std::uint64_t corrupt = 0;     ///< payload pattern wrong
};

/// Checks frames of any number of flows. Allocation happens as sequence numbers grow
/// (a bitmap per flow): this is test equipment, not data path.
class traffic_sink {
public:
    /// Sequence numbers tracked per flow (the bitmap's bound: 8 MiB of bits).
    static constexpr std::uint64_t max_tracked_seq = std::uint64_t{1} << 26;

    /// Records one frame; false if it is not sim traffic (counted as foreign).
    bool record(std::span<const std::byte> f) {
        eth::header h;
        if (!eth::parse(f, h) || h.type != eth::type_sim ||
            f.size() < h.payload_off + traffic_header ||
            traffic_gen::get32(f.data() + h.payload_off) != traffic_magic) {
            ++foreign_;
            return false;
        }
        const std::byte* p = f.data() + h.payload_off;
        const std::uint32_t flow = traffic_gen::get32(p + 4);
        const std::uint64_t seq = traffic_gen::seq_of(p);
        state& s = flows_[flow];
        if (seq >= max_tracked_seq) {
            ++s.corrupt;  // no test sends this many; a garbled sequence number
            return true;
        }
        for (std::size_t i = h.payload_off + traffic_header; i < f.size(); ++i) {
            if (f[i] != traffic_gen::pattern(seq, static_cast<std::uint32_t>(i))) {
                ++s.corrupt;
                return true;
            }
        }
        if (seq >= s.seen.size()) {
            s.seen.resize(seq + 1 + s.seen.size());
        }
        if (s.seen[seq]) {
            ++s.duplicates;
            return true;
        }
        s.seen[seq] = true;
        ++s.received;
        if (s.any && seq < s.max_seq) {
            ++s.reordered;
        }
        if (!s.any || seq > s.max_seq) {
            s.max_seq = seq;
        }
        s.any = true;
        return true;
    }

    [[nodiscard]] flow_report report(std::uint32_t flow, std::uint64_t sent) const {
        flow_report r;
        r.sent = sent;
        const auto it = flows_.find(flow);
        if (it != flows_.end()) {
            r.received = it->second.received;
            r.duplicates = it->second.duplicates;
            r.reordered = it->second.reordered;
            r.corrupt = it->second.corrupt;
        }
        r.lost = sent > r.received ? sent - r.received : 0;
        return r;
    }
    [[nodiscard]] std::uint64_t foreign() const noexcept { return foreign_; }
    [[nodiscard]] std::uint64_t received(std::uint32_t flow) const {
        const auto it = flows_.find(flow);
        return it == flows_.end() ? 0 : it->second.received;
    }

private:
    struct state {
        std::vector<bool> seen;
        std::uint64_t received = 0, duplicates = 0, reordered = 0, corrupt = 0, max_seq = 0;
        bool any = false;
    };
    std::map<std::uint32_t, state> flows_;
    std::uint64_t foreign_ = 0;
};

/// The far end of a cable: a host that sends numbered frames and checks what it gets.
class traffic_peer final : public frame_port {
public:
    traffic_peer(std::uint32_t flow, mac_addr self, mac_addr remote, std::uint16_t vlan = 0,
                 std::uint32_t frame_len = 128) noexcept
        : gen_(flow, self, remote, vlan, frame_len) {}

    /// Sends `n` frames down the cable; returns how many left (0 if unplugged).
    std::uint64_t send(std::uint64_t n) noexcept {
        std::uint64_t k = 0;
        for (; k < n; ++k) {
            gen_.build(scratch_);
            if (!frame_out(scratch_)) {
                break;
            }
        }
        return k;
    }

    void frame_in(const frame& f) noexcept override {
        std::lock_guard g(mu_);
        (void)sink_.record(f.bytes());
        ++frames_in_;
    }

    [[nodiscard]] flow_report report(std::uint32_t flow, std::uint64_t sent) const {
        std::lock_guard g(mu_);
        return sink_.report(flow, sent);
    }
    [[nodiscard]] std::uint64_t frames_in() const {
        std::lock_guard g(mu_);
        return frames_in_;
    }
    [[nodiscard]] const traffic_gen& gen() const noexcept { return gen_; }

private:
    traffic_gen gen_;
    frame scratch_{};
    mutable std::mutex mu_;
    traffic_sink sink_;
    std::uint64_t frames_in_ = 0;
};

} // namespace npa::sim
