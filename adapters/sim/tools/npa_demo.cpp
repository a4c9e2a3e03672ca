// npa-demo: the NPA scenario (`make demo`).
//
// A guest with one npa shell, the emulated vmxnet3 path (always there) and an 82576 VF
// (passthrough) on each host, runs numbered traffic both ways with a peer on the physical
// network while the sim hypervisors move it around:
//
//   boot on vmxnet3 (host A) -> VF allocated, switched in -> the guest changes its MAC
//   (allowed) and tries one it does not own (refused), and a forged frame (dropped by the
//   embedded switch) -> live migration: out to vmxnet3, the guest moves to host B, whose
//   VF has smaller rings and fewer offloads, switched in -> the VF is pulled mid-burst ->
//   the VF comes back flapping, and hysteresis keeps the data path still.
//
// Where plugin images are built (adapters/image), the guest is built with the vmxnet3
// plugin only, as the NPA proposal's guest: no VF plugin is compiled into it. Each host's
// hypervisor carries its VF's plugin as a signed image; when a VF is offered, the guest
// asks its vmxnet3 device for the plugin (LOAD_PLUGIN), verifies and loads it, and switches
// to a path that runs it: host A's at step 2, host B's after the migration. (Without
// images, the guest has the 82576 VF plugin compiled in.)
//
//   peer --- physical switch ---+--- host A vswitch --+-- vmxnet3 backend (the guest's, until migration)
//                               |                     +-- SR-IOV NIC A: embedded switch, VF0
//                               +--- host B vswitch --+-- vmxnet3 backend (after migration)
//                                                     +-- SR-IOV NIC B: embedded switch, VF0
//
// Loss, duplication and reordering are counted from sequence numbers at both ends. The
// story is checked as it runs: each step that did not happen as told (a switch refused,
// the MAC policy or anti-spoofing not enforced, no fallback on removal, hysteresis not
// holding the flapping VF, RX loss other than what the devices dropped, TX loss or
// reordering, an unbalanced audit) prints a "STEP FAILED" line and the exit status is 1.
// The last line is a summary; with --json it is one JSON object, with every switch
// record and capability event. --dwell-ms N changes the minimum dwell (default 50 ms).
#include <npa/sim/two_hosts.hpp>
#ifdef NPA_DEMO_VF_IMAGE
#include <npa/image/delivered.hpp>
#include <npa/image/image_files.hpp>
#endif

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace npa;
using namespace npa::sim;
using namespace npa::sim::two_hosts;

// ---- the guest's VF plugins, delivered by the hypervisors ---------------------------------

#ifdef NPA_DEMO_VF_IMAGE
/// The guest is built with vmxnet3 only: every VF plugin it runs comes from a hypervisor.
using demo_world = basic_world<delivered_vf>;
static_assert(!demo_world::vf_compiled_in);
#else
/// Without plugin images, the guest has the 82576 VF plugin compiled in.
using demo_world = world;
#endif
using guest_shell = demo_world::shell_type;

/// What the guest got through LOAD_PLUGIN on one host (the summary prints it).
struct delivery {
    const char* host = "";
    bool used = false;
    std::string plugin, digest, signer;
    std::size_t mapped = 0;
    std::uint64_t tx_lost = 0;
};
struct deliveries {
    delivery a, b;
};

/// Descriptors in a VF's TX ring 0 as the driver programmed them (TDLEN), whichever plugin
/// drives it: read at the device, like the hypervisor would.
std::uint32_t vf_tx_ring(host& h) {
    return h.nic->vf(0).window().read(igbvf_reg::tdlen, 0) / igbvf::desc_size;
}

#ifdef NPA_DEMO_VF_IMAGE
constexpr bool vf_image_delivered = true;
constexpr std::size_t plugin_area_bytes = std::size_t{1} << 20;

/// The first `n` bytes in hex (a digest's or a key's short form).
std::string short_hex(const std::uint8_t* p, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
    return out;
}

/// Each hypervisor is given its VF's plugin image (the one this tree builds and signs with
/// its TEST key), before the world is built: the same file on both hosts.
bool stock_hosts(demo_world& w, std::string& err) {
    auto bytes = image::read_file(NPA_DEMO_VF_IMAGE);
    if (!bytes) {
        err = "cannot read the VF plugin image " NPA_DEMO_VF_IMAGE;
        return false;
    }
    w.a.plugins[igbvf_window::image_device_id] = *bytes;
    w.b.plugins[igbvf_window::image_device_id] = std::move(*bytes);
    return true;
}

/// The guest is offered host h's VF and has no plugin for it: it asks the hypervisor for
/// the plugin through its vmxnet3 device (LOAD_PLUGIN), verifies and loads it (trusting
/// the tree's TEST key, as the images are signed with it), binds it to the VF and adds
/// the path. The loaded image then lives as long as the path.
path_id take_delivered_vf(demo_world& w, host& h, delivery& d, std::string& err) {
    const auto seed = image::read_seed(NPA_DEMO_IMAGE_KEY);
    if (!seed) {
        err = "cannot read the trusted key " NPA_DEMO_IMAGE_KEY;
        return no_path;
    }
    const image::public_key trusted[] = {image::public_key_of(*seed)};
    const vmxnet3::dma_block area = w.plugin_area(plugin_area_bytes);
    auto img = image::load_delivered(*w.vmx_ctl, igbvf_window::image_device_id, area, trusted);
    if (!img) {
        err = img.error().reason();
        return no_path;
    }
    auto dev = img->bind(h.nic->vf(0).window());
    if (!dev) {
        err = dev.error().reason();
        return no_path;
    }
    d.used = true;
    d.host = h.name;
    d.plugin = img->name();
    d.digest = short_hex(img->digest().data(), 8);
    d.signer = short_hex(img->signer().data(), 8);
    d.mapped = img->mapped_bytes();
    return w.add_delivered_vf_path(h, std::move(*dev));
}
#else
constexpr bool vf_image_delivered = false;
bool stock_hosts(demo_world&, std::string&) { return true; }
path_id take_delivered_vf(demo_world&, host&, delivery&, std::string& err) {
    err = "plugin images are not built";
    return no_path;
}
#endif

/// Where the guest has no VF plugin, host h's hypervisor delivers it when it offers the VF
/// (a step of the story: a refusal fails it). True when the VF has a path.
template <class Story>
bool deliver_vf(demo_world& w, Story& s, host& h, delivery& d, const char* step) {
    if constexpr (vf_image_delivered) {
        std::string why;
        const path_id p = take_delivered_vf(w, h, d, why);
        if (!s.check(p != no_path, step, why))
            return false;
        w.event(fmt::format("host {}'s hypervisor delivered the VF plugin '{}' (LOAD_PLUGIN): "
                            "digest {}.., signer {}.. (trusted), {} KiB mapped",
                            h.name, d.plugin, d.digest, d.signer, d.mapped / 1024));
    }
    return true;
}

// ---- the story's checks ------------------------------------------------------------------

/// What the timeline must show. Each step that did not happen as told is one line in
/// `failed`; the demo then exits 1.
struct story {
    demo_world* w = nullptr;
    std::vector<std::string> failed;

    bool check(bool ok, const char* step, std::string why) {
        if (!ok) {
            w->event(fmt::format("STEP FAILED: {}: {}", step, why));
            failed.push_back(fmt::format("{}: {}", step, why));
        }
        return ok;
    }
    /// The newest switch record, which must be a completed switch to `to` for `why`.
    bool switched(const char* step, const status& st, path_id to, switch_reason why) {
        const guest_shell& sh = *w->sh;
        if (!check(st.ok(), step, fmt::format("the switch was refused: {}", st.reason())))
            return false;
        const switch_record& r = sh.history().recent(0);
        return check(sh.active_path() == to && r.result == errc::ok && r.to == to &&
                         r.reason == why,
                     step,
                     fmt::format("expected path {} for {}, active is {} after {}",
                                 w->path_label(to), to_string(why),
                                 w->path_label(sh.active_path()), r)) &&
               check(r.tx_lost == 0, step,
                     fmt::format("{} TX packets lost in the switch", r.tx_lost));
    }
};

// ---- the timeline ------------------------------------------------------------------------

void scenario(demo_world& w, story& s, deliveries& d, bool quick) {
    // Each phase runs this long: longer than the minimum dwell, so that every
    // discretionary switch in the timeline is allowed and only the flapping VF is held.
    const std::uint64_t steady = quick ? 60 : 400;
    guest_shell& sh = *w.sh;

    // 1. Boot on the emulated path.
    if (const status st = sh.start(w.vmx_path);
        !s.check(st.ok(), "step 1 (boot on vmxnet3)", st.reason())) {
        return;
    }
    (void)sh.set_mac(guest_mac);
    sh.set_fallback(w.vmx_path);
    w.event(fmt::format("boot: guest up on {} (host A), offloads [{}]", sh.active_name(),
                        offload_names{sh.offloads()}));
    w.run_for(steady);

    // 2. The hypervisor allocates VF0 on host A's NIC (and delivers its plugin):
    //    passthrough on.
    const char* step2 = "step 2 (VF0 on host A switched in)";
    if (!deliver_vf(w, s, w.a, d.a, "step 2 (host A's VF plugin delivered by LOAD_PLUGIN)"))
        return;
    status st = w.switch_under_traffic(w.a.vf_path, switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host A allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    if (s.switched(step2, st, w.a.vf_path, switch_reason::vf_arrived) && d.a.used) {
        d.a.tx_lost = sh.history().recent(0).tx_lost;
    }
    const std::uint32_t ring_a = vf_tx_ring(w.a);
    const std::uint32_t caps_a = sh.active_capabilities().offloads;
    w.run_for(steady);

    // 3. The guest changes its MAC (allowed by the PF) and back; then one it does not own
    //    (refused through the mailbox), and a frame forged with a foreign source address
    //    (dropped by the embedded switch's anti-spoofing).
    const char* step3 = "step 3 (allowed MAC change applied by the PF)";
    st = sh.set_mac(guest_mac2);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:02: {}",
                        st.ok() ? "applied by the PF" : st.reason()));
    s.check(st.ok() && w.a.nic->pf().state(0).mac == guest_mac2, step3,
            fmt::format("02:4e:50:41:00:02 not in effect at the PF ({})",
                        st.ok() ? "accepted" : st.reason()));
    // (No traffic in between: its frames carry the first address, which the embedded
    // switch would rightly drop as spoofed while the VF owns the second.)
    st = sh.set_mac(guest_mac);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:01 again: {}",
                        st.ok() ? "applied by the PF" : st.reason()));
    s.check(st.ok() && w.a.nic->pf().state(0).mac == guest_mac, step3,
            fmt::format("02:4e:50:41:00:01 not restored at the PF ({})",
                        st.ok() ? "accepted" : st.reason()));
    const std::uint64_t nacks_before = w.a.nic->pf().stats(0).nacks;
    st = sh.set_mac(rogue_mac);
    if (!st) {
        ++w.mac_refusals;
        w.mac_refusal_reason = st.reason();
    }
    w.event(fmt::format("guest sets MAC 02:66:66:66:66:66: {} ({})",
                        st.ok() ? "applied" : "refused", st.reason()));
    s.check(st.code() == errc::refused && w.a.nic->pf().stats(0).nacks > nacks_before &&
                w.a.nic->pf().state(0).mac == guest_mac && sh.desired_control().mac() == guest_mac,
            "step 3 (spoofed MAC refused by the PF)",
            st.ok() ? std::string("the PF applied a MAC the guest does not own")
                    : fmt::format("not refused by the PF's policy ({}), or the MAC changed anyway",
                                  st.reason()));
    const std::uint64_t spoofed_before = w.a.nic->switch_stats(0).spoofed;
    {
        buffer_ref bf;
        if (sh.alloc(0, std::span(&bf, 1)) == 1) {
            traffic_gen forged(999, rogue_mac, peer_mac);
            bf.set_length(forged.build(std::span<std::byte>(bf.data(), bf.capacity())));
            w.spoofed_sent += sh.tx_burst(0, std::span(&bf, 1));
        }
    }
    w.run_for(steady);
    const std::uint64_t spoofed = w.a.nic->switch_stats(0).spoofed - spoofed_before;
    w.event(fmt::format("forged frame: embedded switch dropped {} spoofed frame(s)", spoofed));
    s.check(w.spoofed_sent == 1 && spoofed == w.spoofed_sent,
            "step 3 (spoofed frame dropped by the embedded switch)",
            fmt::format("{} forged frame(s) sent, {} counted as spoofed", w.spoofed_sent, spoofed));

    // 4. Live migration to host B: out to the emulated path, move, in on host B's VF.
    st = w.switch_under_traffic(w.vmx_path, switch_reason::migration);
    w.event(
        fmt::format("migration: passthrough off ({})", fmt::format("{}", sh.history().recent(0))));
    s.switched("step 4 (migration: switched out to vmxnet3)", st, w.vmx_path, switch_reason::migration);
    w.run_for(steady / 2);
    w.plug_vmx(w.b); // the guest and its vmxnet3 backend now live on host B
    (void)w.vmx_link_ch.submit(control_request::make_set_mac(sh.desired_control().mac()));
    w.event("migration: guest resumed on host B (vmxnet3 backend re-plugged, network re-steered)");
    w.run_for(steady / 2);
    const char* step4 = "step 4 (migration: switched back in on host B's VF)";
    if (!deliver_vf(w, s, w.b, d.b, "step 4 (host B's VF plugin delivered by LOAD_PLUGIN)"))
        return;
    st = w.switch_under_traffic(w.b.vf_path, switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host B allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    if (s.switched(step4, st, w.b.vf_path, switch_reason::vf_arrived)) {
        if (d.b.used) {
            d.b.tx_lost = sh.history().recent(0).tx_lost;
        }
        const std::uint32_t ring_b = vf_tx_ring(w.b);
        w.event(fmt::format("host B's VF: {}-descriptor TX rings (host A's: {})", ring_b, ring_a));
        s.check(ring_b != ring_a, step4,
                fmt::format("host B's VF rings are {} descriptors, like host A's", ring_b));
        s.check(sh.active_capabilities().offloads != caps_a, step4,
                "host B's VF reports the same capabilities as host A's");
        s.check(sh.history().recent(0).caps_lost != 0, step4,
                "no capability reported lost on host B's VF");
    }
    for (std::uint32_t i = 0; i < sh.capability_event_count() && i < 8; ++i) {
        const capability_event& ev = sh.capability_event_at(i);
        if (ev.switch_seq != sh.history().recent(0).seq)
            break;
        w.event(fmt::format("  capability {} {}: {}",
                            cap::name(static_cast<unsigned>(__builtin_ctz(ev.bit))),
                            ev.lost ? "lost" : "regained", ev.why));
    }
    w.run_for(steady);

    // 5. Surprise removal in the middle of a burst: the VF vanishes after 40 more TX
    //    descriptors; the shell falls back on its own, resending what the VF had taken.
    fault_plan gone;
    gone.remove_after_tx = 40;
    w.b.nic->vf(0).inject(gone);
    w.event("host B pulls VF0 (surprise removal after 40 more TX descriptors)");
    for (int i = 0; i < 2000 && (sh.active_path() != w.vmx_path || sh.switching()); ++i)
        w.round(burst, burst);
    w.event(fmt::format("fallback: {}", fmt::format("{}", sh.history().recent(0))));
    const char* step5 = "step 5 (surprise removal mid-burst, fallback to vmxnet3)";
    if (s.switched(step5, status{}, w.vmx_path, switch_reason::surprise_removal)) {
        const switch_record& r = sh.history().recent(0);
        s.check(r.requeued > 0, step5, "the VF held no unsent TX when it vanished (not mid-burst)");
        s.check(r.caps_gained != 0, step5, "no capability reported regained on vmxnet3");
    }
    w.run_for(steady);

    // 6. The VF comes back, flapping: every 2 ms it arrives or leaves. Leaving is
    //    mandatory; arriving is discretionary and held back by the minimum dwell.
    w.b.nic->vf(0).revive();
    w.b.nic->vf(0).inject(fault_plan{});
    //    The phase lasts its time and at least as many flap events as that time holds when
    //    nothing else runs, so a loaded machine that spaces the events further apart
    //    stretches the phase instead of thinning it out.
    const std::uint64_t flap_until = steady_ns() + (quick ? 150'000'000 : 600'000'000);
    const std::uint64_t flap_events_min = quick ? 75 : 300;
    const std::uint64_t switches_before = sh.history().switches();
    const std::uint64_t suppressed_before = sh.suppressed_switches();
    bool up = false;
    std::uint64_t next = steady_ns();
    while (steady_ns() < flap_until || w.flap_events < flap_events_min) {
        if (steady_ns() >= next && !sh.switching()) {
            next = steady_ns() + 2'000'000;
            up = !up;
            ++w.flap_events;
            if (up) {
                w.b.nic->vf(0).revive();
                w.b.nic->vf(0).inject(fault_plan{});
                ++w.flap_requests;
                const status fs = sh.request_switch(w.b.vf_path, switch_reason::vf_arrived);
                w.flap_refused += fs.code() == errc::busy;
            } else if (sh.active_path() == w.b.vf_path) {
                (void)sh.request_switch(w.vmx_path, switch_reason::vf_leaving);
            }
        }
        w.round(burst, burst);
    }
    while (sh.switching())
        w.round(burst, burst);
    const std::uint64_t flap_switches = sh.history().switches() - switches_before;
    const std::uint64_t suppressed = sh.suppressed_switches() - suppressed_before;
    w.event(fmt::format(
        "flapping VF: {} flap events, {} arrivals, {} held back by hysteresis, {} switches",
        w.flap_events, w.flap_requests, suppressed, flap_switches));
    s.check(suppressed > 0 && flap_switches < w.flap_events,
            "step 6 (flapping VF held by hysteresis)",
            fmt::format("{} of {} arrivals held back, {} switches for {} flap events", suppressed,
                        w.flap_requests, flap_switches, w.flap_events));
    if (sh.active_path() == w.b.vf_path) {
        st = w.switch_under_traffic(w.vmx_path, switch_reason::vf_leaving);
        s.switched("step 6 (VF leaves for good)", st, w.vmx_path, switch_reason::vf_leaving);
    }
    w.run_for(steady / 2);
    w.settle();
    w.collect();
}

// ---- the summary as JSON -------------------------------------------------------------------

/// A JSON string (the texts are the shell's own reason sentences; escape anyway).
std::string json_str(const char* s) {
    std::string out = "\"";
    for (const char* p = s != nullptr ? s : ""; *p != '\0'; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            out += fmt::format("\\u{:04x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + '"';
}

/// A JSON array of `to_json(e)` for each element.
template <class Range, class Fn>
std::string json_array(const Range& items, Fn to_json) {
    std::string out = "[";
    for (const auto& e : items) {
        if (out.size() > 1)
            out += ", ";
        out += to_json(e);
    }
    return out + ']';
}

std::string json_offloads(std::uint32_t bits) {
    std::vector<const char*> names;
    for (unsigned b = 0; b < cap::count; ++b) {
        if ((bits & (1u << b)) != 0)
            names.push_back(cap::name(b));
    }
    return json_array(names, json_str);
}

std::string json_switch_record(const guest_shell& sh, const switch_record& r) {
    return fmt::format(
        "{{\"seq\": {}, \"from\": {}, \"to\": {}, \"reason\": {}, \"result\": {}, "
        "\"duration_us\": {:.1f}, \"held\": {}, \"requeued\": {}, \"tx_lost\": {}, "
        "\"rx_dropped\": {}, \"caps_lost\": {}, \"caps_regained\": {}}}",
        r.seq, json_str(sh.path_name(r.from)), json_str(sh.path_name(r.to)),
        json_str(to_string(r.reason)),
        json_str(r.result == errc::ok ? "ok" : (r.detail != nullptr ? r.detail : "failed")),
        // Truncated to 0.1 us, like max_switch_us is truncated to 1 us: rounding up here
        // would make the longest record read larger than the reported maximum.
        static_cast<double>(r.duration_ns / 100) / 10.0, r.held, r.requeued, r.tx_lost, r.rx_dropped,
        json_offloads(r.caps_lost), json_offloads(r.caps_gained));
}

/// A delivered plugin: where, what, its digest and signer (short hex), the switch's TX loss.
std::string json_delivery(const delivery* d) {
    return fmt::format(
        "{{\"host\": {}, \"plugin\": {}, \"digest\": {}, \"signer\": {}, \"tx_lost\": {}}}",
        json_str(d->host), json_str(d->plugin.c_str()), json_str(d->digest.c_str()),
        json_str(d->signer.c_str()), d->tx_lost);
}

std::string json_cap_event(const capability_event& ev) {
    return fmt::format(
        "{{\"switch\": {}, \"offload\": {}, \"event\": {}, \"path\": {}, \"why\": {}}}",
        ev.switch_seq, json_str(cap::name(static_cast<unsigned>(__builtin_ctz(ev.bit)))),
        json_str(ev.lost ? "lost" : "regained"), json_str(ev.plugin), json_str(ev.why));
}

} // namespace

int main(int argc, char** argv) {
    bool json = false, quick = false;
    std::optional<std::uint64_t> dwell_ms;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (std::strcmp(argv[i], "--dwell-ms") == 0 && i + 1 < argc) {
            char* end = nullptr;
            dwell_ms = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0') {
                std::fprintf(stderr,
                             "npa-demo: --dwell-ms wants a number of milliseconds, not '%s'\n",
                             argv[i]);
                return 2;
            }
        } else {
            std::fprintf(stderr, "usage: %s [--json] [--quick] [--dwell-ms N]\n", argv[0]);
            return 2;
        }
    }
    auto w = std::make_unique<demo_world>();
    if (dwell_ms)
        w->min_dwell_ns = *dwell_ms * 1'000'000;
    std::string err;
    if (!stock_hosts(*w, err) || !w->build(err)) {
        std::fprintf(stderr, "npa-demo: %s\n", err.c_str());
        return 1;
    }
    fmt::print("npa-demo: one guest shell built with {}, two hosts; {} queues, {}-frame bursts "
               "both ways\n",
               demo_world::vf_compiled_in
                   ? "two plugins (vmxnet3, igbvf)"
                   : "one plugin (vmxnet3): each host's hypervisor delivers its VF's plugin",
               w->queues, burst);
    story s{w.get(), {}};
    deliveries d;
    scenario(*w, s, d, quick);

    guest_shell& sh = *w->sh;
    // Frames still waiting in the guest's qdisc go back to the pool (none after settle).
    for (std::uint16_t q = 0; q < w->queues; ++q)
        sh.free(q, w->pending[q]);
    std::uint64_t tx_sent = 0, tx_lost = 0, tx_dup = 0, tx_reord = 0, tx_recv = 0;
    for (std::uint16_t q = 0; q < w->queues; ++q) {
        const std::uint64_t sent = w->gens[q].sent() - w->pending[q].size();
        const flow_report r = w->peer.report(guest_flow + q, sent);
        tx_sent += r.sent;
        tx_recv += r.received;
        tx_lost += r.lost;
        tx_dup += r.duplicates;
        tx_reord += r.reordered;
        w->pending[q].clear();
    }
    const flow_report rx = w->sink.report(peer_flow, w->peer_sent);
    const audit_report audit = sh.audit();
    const switch_history& h = sh.history();
    const std::uint64_t device_drops = w->device_rx_drops();
    const std::uint64_t spoofed =
        w->a.nic->switch_stats(0).spoofed + w->b.nic->switch_stats(0).spoofed;
    const std::uint64_t max_us = h.max_duration_ns() / 1000;

    const char* totals = "totals";
    s.check(tx_sent > 0 && tx_lost == 0 && tx_dup == 0 && tx_reord == 0, totals,
            fmt::format("TX: {} sent, {} lost, {} duplicated, {} reordered", tx_sent, tx_lost,
                        tx_dup, tx_reord));
    s.check(
        rx.lost == device_drops && rx.duplicates == 0 && rx.reordered == 0, totals,
        fmt::format("RX: {} lost, but the devices counted {} dropped ({} duplicated, {} reordered)",
                    rx.lost, device_drops, rx.duplicates, rx.reordered));
    s.check(audit.ok(), totals, fmt::format("buffer audit: {}", audit));
    s.check(w->switch_log.size() == h.count(), totals,
            fmt::format("{} switch records collected of {}", w->switch_log.size(), h.count()));
    std::uint32_t caps_lost = 0, caps_regained = 0;
    for (const capability_event& ev : w->cap_log)
        (ev.lost ? caps_lost : caps_regained) += 1;
    s.check(caps_lost > 0 && caps_regained > 0, "capabilities",
            fmt::format("{} capability events lost and {} regained reported", caps_lost,
                        caps_regained));

    fmt::print("\n{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "", "sent", "received", "lost", "dup",
               "reordered");
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "TX guest -> peer", tx_sent, tx_recv,
               tx_lost, tx_dup, tx_reord);
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}   (devices dropped {})\n", "RX peer -> guest",
               rx.sent, rx.received, rx.lost, rx.duplicates, rx.reordered, device_drops);
    fmt::print("\nswitches: {} ({} refused or failed, {} held back by hysteresis), longest {} us\n",
               h.switches(), h.failures(), sh.suppressed_switches(), max_us);
    for (const switch_record& r : w->switch_log) {
        fmt::print("  {} {} -> {}: {}\n", r.seq, w->path_label(r.from), w->path_label(r.to), r);
    }
    fmt::print("capability events: {} offloads lost, {} regained (per switch above); in effect "
               "now: [{}]\n",
               caps_lost, caps_regained, offload_names{sh.offloads()});
    fmt::print(
        "policy: MAC refused {} time(s) ({}); spoofed frames dropped by embedded switches: {}\n",
        w->mac_refusals, w->mac_refusal_reason, spoofed);
    for (const delivery* dv : {&d.a, &d.b}) {
        if (dv->used) {
            fmt::print("delivered plugin: '{}' on host {}'s VF through vmxnet3 LOAD_PLUGIN, digest "
                       "{}.., signer {}.., switch TX lost {}\n",
                       dv->plugin, dv->host, dv->digest, dv->signer, dv->tx_lost);
        }
    }
    fmt::print("buffer audit: {}\n", audit);
    fmt::print("ran {} rounds in {:.2f} s\n", w->rounds, w->secs());
    const bool ok = s.failed.empty();
    if (ok) {
        fmt::print("result: every step of the story happened; zero TX loss, no reordering, RX loss "
                   "= device "
                   "drops, every buffer accounted for\n");
    } else {
        fmt::print("result: FAILED, {} check(s):\n", s.failed.size());
        for (const std::string& f : s.failed)
            fmt::print("  FAILED {}\n", f);
    }
    if (json) {
        std::vector<const delivery*> used;
        for (const delivery* dv : {&d.a, &d.b}) {
            if (dv->used)
                used.push_back(dv);
        }
        fmt::print(
            "{{\"tx_sent\": {}, \"tx_lost\": {}, \"tx_duplicates\": {}, \"tx_reordered\": {}, "
            "\"rx_sent\": {}, \"rx_lost\": {}, \"rx_device_drops\": {}, \"switches\": {}, "
            "\"switch_failures\": {}, \"suppressed\": {}, \"max_switch_us\": {}, "
            "\"spoofed_dropped\": {}, \"mac_refusals\": {}, \"caps_lost\": {}, \"caps_regained\": "
            "{}, "
            "\"audit_ok\": {}, \"story_ok\": {}, \"failed_steps\": {}, \"switch_log\": {}, "
            "\"capability_events\": {}, \"vf_plugin_compiled_in\": {}, \"delivered_plugins\": {}, "
            "\"delivered_plugin\": {}}}\n",
            tx_sent, tx_lost, tx_dup, tx_reord, rx.sent, rx.lost, device_drops, h.switches(),
            h.failures(), sh.suppressed_switches(), max_us, spoofed, w->mac_refusals, caps_lost,
            caps_regained, audit.ok() ? "true" : "false", ok ? "true" : "false",
            json_array(s.failed, [](const std::string& f) { return json_str(f.c_str()); }),
            json_array(w->switch_log,
                       [&](const switch_record& r) { return json_switch_record(sh, r); }),
            json_array(w->cap_log, json_cap_event), demo_world::vf_compiled_in ? "true" : "false",
            json_array(used, json_delivery), d.b.used ? json_delivery(&d.b) : std::string("null"));
    }
    return ok ? 0 : 1;
}
