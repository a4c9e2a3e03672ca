// npa/concepts/control_channel.hpp: how the shell reaches the hypervisor / PF.
//
// Checked by the compiler: a single request and a batch can be submitted, each answered
// with an npa::status.
//
// Semantic requirements (not checked by the compiler):
//   - the authority on the other side applies policy and may refuse with a reason
//     (errc::refused plus a sentence); a refusal changes nothing;
//   - submit_batch is all or nothing: on any failure every request of the batch that
//     was applied is rolled back before it returns (used to replay the whole control
//     state onto a new device at switch time);
//   - optional: `void device_reset() noexcept`, called by the shell when the device's
//     health says it was reset behind the driver's back and when a switch brings the
//     device up anew (before the replay); a channel whose authority wants a handshake
//     after a reset (an SR-IOV VF's mailbox RESET) redoes it before the next request;
//   - optional: `errc health() noexcept`, what the authority's side of the device says
//     of it where only the channel can see it (an SR-IOV VF's mailbox shows its PF's
//     own reset, which the data path's registers need not): errc::reset or
//     errc::removed, as a plugin's health() would say them. The shell reads it on the
//     control thread for the active path, after the plugin's health() said ok, and acts
//     on it as on the plugin's (device_reset(), then the fallback);
//   - calls are control path: they may block briefly (a mailbox round trip) and are
//     never made from the data path.
#pragma once

#include <npa/control.hpp>
#include <npa/status.hpp>

#include <concepts>
#include <span>

namespace npa {

template <class C>
concept control_channel =
    requires(C& c, const control_request& r, std::span<const control_request> batch) {
        { c.submit(r) } -> std::same_as<status>;
        { c.submit_batch(batch) } -> std::same_as<status>;
    };

} // namespace npa
