// npa/linux/rx_whole_gate.hpp: whole mode for received frames only while the shell is steady.
//
// An AF_PACKET path in whole mode (af_packet_plugin::set_rx_whole) holds a large TCP frame
// back from rx_burst and hands it to its owner through rx_whole, which writes it to the
// TAP past the shell. That is right while the shell runs on one path. During a switch it
// is not: the shell delivers what the old path received before anything from the new one,
// and reads the old path until a burst comes back short. A frame held back makes the old
// path's burst short, so the shell fills the rest of it from the new path (overtaking the
// held frame), and a run of such frames reads as an old path gone quiet, so the drain can
// end with frames still in the old path's ring, which go with its detach.
//
// rx_whole_gate keeps whole mode on for the paths it is given only while every queue of
// the shell is steady (shell::steady_path), and off otherwise: switching it off cuts a
// frame that waits, so the next rx_burst delivers it through the shell, in order. The
// owner calls sync() before each RX pass of its queues; it calls set_rx_whole only when
// the answer changes.
#pragma once

#include <cstdint>

namespace npa::lnx {

class rx_whole_gate {
public:
    /// `allowed`: whole mode is wanted at all (the TAP takes a virtio-net header).
    explicit rx_whole_gate(bool allowed = false) noexcept : allowed_(allowed) {}

    void allow(bool allowed) noexcept { allowed_ = allowed; }
    /// Whether whole mode is on, as last set.
    [[nodiscard]] bool on() const noexcept { return on_; }
    /// Times whole mode was switched off because a switch started.
    [[nodiscard]] std::uint64_t closed() const noexcept { return closed_; }

    /// Sets whole mode on every path in `paths` that has it (set_rx_whole) to "allowed and
    /// each of the shell's first `queues` queues steady", when that changed. Returns on().
    template <class Shell, class Paths>
    bool sync(Shell& sh, std::uint16_t queues, const Paths& paths) noexcept {
        bool want = allowed_;
        for (std::uint16_t q = 0; want && q < queues; ++q) {
            want = sh.steady_path(q) != Shell::no_path;
        }
        if (want == on_) {
            return on_;
        }
        on_ = want;
        closed_ += want ? 0 : 1;
        for (const auto p : paths) {
            if (p == Shell::no_path) {
                continue;
            }
            sh.with_plugin(p, [want](auto& pl) {
                if constexpr (requires { pl.set_rx_whole(true); }) {
                    pl.set_rx_whole(want);
                }
            });
        }
        return on_;
    }

private:
    bool allowed_;
    bool on_ = false;
    std::uint64_t closed_ = 0;
};

} // namespace npa::lnx
