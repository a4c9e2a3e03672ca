// net_npa.cpp: the net_npa virtual poll-mode driver.
//
// An ordinary ethdev port for the application; underneath, its data path runs over one of
// several sub-devices (any DPDK port, given as dev(<device>) devargs) and moves between
// them without losing packets (datapath.hpp). The control state the application sets
// (MAC addresses, promiscuous/allmulticast, MTU, VLAN filter) is kept here and applied to
// every sub-device, and replayed onto a sub-device when it is (re)attached.
//
// Built as librte_net_npa.so: `dpdk-testpmd -d <dir>` loads it, and applications link it.
// This file: probe and remove, the public API, telemetry, registration; npa_private.hpp
// lists the others.
#include "npa_private.hpp"

#include <npa/dpdk/rte_pmd_npa.h>

#include <bus_vdev_driver.h>
#include <ethdev_vdev.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_malloc.h>
#include <rte_telemetry.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>

static rte_vdev_driver net_npa_drv;

namespace npa::dpdk::pmd {

int logtype = -1;

namespace {

/// The port behind port_id when it is a net_npa port, else null.
npa_port* find_port(std::uint16_t port_id) noexcept {
    if (!rte_eth_dev_is_valid_port(port_id)) return nullptr;
    rte_eth_dev* dev = &rte_eth_devices[port_id];
    if (dev->dev_ops != &npa_ops || dev->data == nullptr) return nullptr;
    return priv(dev);
}

// ---- probe / remove ---------------------------------------------------------------------

/// The ethdev port a probed device string made: by name (vdevs and PCI ports are named
/// after their device), else the first port whose device matches the string.
std::uint16_t port_of(const char* devstr) noexcept {
    char name[RTE_ETH_NAME_MAX_LEN];
    std::size_t n = std::strcspn(devstr, ",");
    if (n >= sizeof name) n = sizeof name - 1;
    std::memcpy(name, devstr, n);
    name[n] = '\0';
    std::uint16_t id = RTE_MAX_ETHPORTS;
    if (rte_eth_dev_get_port_by_name(name, &id) == 0) return id;
    rte_dev_iterator it{};
    if (rte_eth_iterator_init(&it, devstr) == 0) {
        id = rte_eth_iterator_next(&it);
        rte_eth_iterator_cleanup(&it);
        if (id < RTE_MAX_ETHPORTS) return id;
    }
    return RTE_MAX_ETHPORTS;
}

int npa_probe(rte_vdev_device* vdev) {
    const char* name = rte_vdev_device_name(vdev);
    if (rte_eal_process_type() != RTE_PROC_PRIMARY) {
        NPA_LOG(ERR, "%s: secondary processes are not supported\n", name);
        return -ENOTSUP;
    }
    // Step 1: arguments, all checked before anything is probed.
    npa_devargs args;
    if (const status st = parse_devargs(rte_vdev_device_args(vdev), args); !st.ok()) {
        NPA_LOG(ERR, "%s: %s\n", name, args.error.data());
        return -EINVAL;
    }
    // Step 1b: the image paths' devices (image file, key, signature, the sim model),
    // before anything the application could see exists.
    std::array<std::unique_ptr<image_path_device>, max_sub_devices> images{};
    for (std::size_t i = 0; i < args.dev_count; ++i) {
        if (!is_sim_device(args.devs[i].data())) continue;
        std::string err;
        images[i] = image_path_device::open(args, err);
        if (!images[i]) {
            NPA_LOG(ERR, "%s: %s\n", name, err.c_str());
            return -EINVAL;
        }
        NPA_LOG(INFO, "%s: dev(%s) runs plugin image %s (%s), digest %s, signer %s\n", name,
                args.devs[i].data(), images[i]->file().c_str(), images[i]->plugin_name(),
                images[i]->digest().c_str(), images[i]->signer().c_str());
    }
    // Step 2: the port, its private data constructed in place.
    rte_eth_dev* dev = rte_eth_vdev_allocate(vdev, sizeof(npa_port));
    if (dev == nullptr) return -ENOMEM;
    auto* p = ::new (dev->data->dev_private) npa_port{};
    p->dev = dev;
    p->args = args;
    p->lanes.setup(p, dev->data->port_id);
    dev->dev_ops = &npa_ops;
    dev->rx_pkt_burst = npa_rx_burst;
    dev->tx_pkt_burst = npa_tx_burst;
    dev->data->mac_addrs = static_cast<rte_ether_addr*>(
        rte_zmalloc_socket(name, sizeof(rte_ether_addr) * max_mac_addrs, 0, rte_socket_id()));
    int rc = 0;
    if (dev->data->mac_addrs == nullptr) {
        rc = -ENOMEM;
    } else if (rte_eth_dev_owner_new(&p->owner.id) != 0) {
        rc = -EIO;
    } else {
        std::snprintf(p->owner.name, sizeof p->owner.name, "%s", name);
    }
    // Step 3: the sub-devices, in preference order; each is owned by this port so that
    // the application does not also use it as a port of its own.
    for (std::size_t i = 0; rc == 0 && i < args.dev_count; ++i) {
        const char* ds = args.devs[i].data();
        sub_device& s = p->subs[i];
        if (images[i]) {
            // A sim device: no DPDK port; its path is the image.
            std::snprintf(s.name, sizeof s.name, "%s", ds);
            s.image = images[i].get();
            p->images[i] = std::move(images[i]);
            p->nsubs = i + 1;
            continue;
        }
        const int r = rte_dev_probe(ds);
        if (r != 0 && r != -EEXIST) {
            // rte_dev_probe's codes say little by themselves (an unknown vdev driver is
            // -EFAULT, "Bad address"): say what they mean here.
            const char* why = r == -EFAULT || r == -EINVAL || r == -ENOENT || r == -ENODEV
                                  ? "no DPDK driver or device matches it (vdev names start "
                                    "with their driver's name, e.g. net_ring0; a PCI device "
                                    "is given by its address)"
                                  : std::strerror(-r);
            NPA_LOG(ERR, "%s: cannot probe sub-device dev(%s): %s\n", name, ds, why);
            rc = r == -EFAULT ? -ENODEV : r;
            break;
        }
        s.probed_here = r == 0;
        s.port_id = port_of(ds);
        p->nsubs = i + 1;
        if (s.port_id >= RTE_MAX_ETHPORTS) {
            NPA_LOG(ERR, "%s: dev(%s) is not an ethdev port\n", name, ds);
            rc = -ENODEV;
            break;
        }
        (void)rte_eth_dev_get_name_by_port(s.port_id, s.name);
        for (std::size_t k = 0; k < i; ++k) {
            if (p->subs[k].port_id == s.port_id) {
                NPA_LOG(ERR, "%s: dev(%s) and dev(%s) are the same device (%s): give each "
                        "sub-device once\n", name, args.devs[k].data(), ds, s.name);
                s.port_id = RTE_MAX_ETHPORTS;
                s.probed_here = false;
                rc = -EINVAL;
                break;
            }
        }
        if (rc != 0) break;
        if (rte_eth_dev_owner_set(s.port_id, &p->owner) != 0) {
            rte_eth_dev_owner other{};
            (void)rte_eth_dev_owner_get(s.port_id, &other);
            NPA_LOG(ERR, "%s: sub-device %s is already owned by %s: a port can be the "
                    "sub-device of one owner only\n", name, s.name,
                    other.name[0] != '\0' ? other.name : "another owner");
            s.port_id = RTE_MAX_ETHPORTS;
            rc = -EBUSY;
            break;
        }
        watch(s.port_id, *p, true);
    }
    if (rc != 0) {
        release_subs(*p);
        p->~npa_port();
        rte_eth_dev_release_port(dev);  // frees dev_private and mac_addrs
        return rc;
    }
    // Step 4: the port's MAC is the preferred sub-device's (as fail-safe does); it is
    // set on every sub-device when they start.
    // A sim device has no MAC of its own (its window has no MAC register): then the first
    // DPDK sub-device's, or a random locally administered one.
    rte_ether_addr mac{};
    for (std::size_t i = 0; i < p->nsubs && rte_is_zero_ether_addr(&mac); ++i) {
        const std::size_t k = i == 0 ? args.active : (i <= args.active ? i - 1 : i);
        if (p->subs[k].image == nullptr) (void)rte_eth_macaddr_get(p->subs[k].port_id, &mac);
    }
    if (rte_is_zero_ether_addr(&mac)) rte_eth_random_addr(mac.addr_bytes);
    if (!rte_is_zero_ether_addr(&mac)) p->ctl.apply(control_request::make_set_mac(to_mac(mac)));
    dev->data->mac_addrs[0] = mac;
    dev->data->dev_flags |= RTE_ETH_DEV_AUTOFILL_QUEUE_XSTATS;
    dev->data->dev_link.link_status = RTE_ETH_LINK_DOWN;
    rte_eth_dev_probing_finish(dev);
    NPA_LOG(INFO, "%s: port %u over %zu sub-device(s), active %s\n", name, dev->data->port_id,
            p->nsubs, p->subs[args.active].name);
    return 0;
}

int npa_remove(rte_vdev_device* vdev) {
    rte_eth_dev* dev = rte_eth_dev_allocated(rte_vdev_device_name(vdev));
    if (dev == nullptr) return 0;
    if (dev->state != RTE_ETH_DEV_UNUSED && dev->dev_ops == &npa_ops && dev->data->dev_private) {
        priv(dev)->bus_removing = true;  // see release_subs
        (void)rte_eth_dev_close(dev->data->port_id);
        return 0;
    }
    return rte_eth_dev_release_port(dev);
}

// ---- telemetry: /npa/switch and /npa/status ------------------------------------------

/// A telemetry answer that says what went wrong: {"error": "<sentence>"}, plus the
/// errno-style code when there is one.
int tel_error(rte_tel_data* d, const char* sentence, int code = 0) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "error", sentence);
    if (code != 0) rte_tel_data_add_dict_int(d, "code", code);
    return 0;
}

constexpr tel_param tel_port_param{"port_id", RTE_MAX_ETHPORTS - 1};

int tel_status_of(std::uint16_t port_id, rte_tel_data* d) {
    rte_pmd_npa_status_info st{};
    if (rte_pmd_npa_status(port_id, &st) != 0) {
        return tel_error(d, "port_id: not a net_npa port", -ENODEV);
    }
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "paths", st.paths);
    rte_tel_data_add_dict_u64(d, "active", st.active);
    rte_tel_data_add_dict_u64(d, "switching", st.switching);
    rte_tel_data_add_dict_u64(d, "switches", st.switches);
    rte_tel_data_add_dict_u64(d, "last_switch_ns", st.last_switch_ns);
    rte_tel_data_add_dict_u64(d, "max_switch_ns", st.max_switch_ns);
    rte_tel_data_add_dict_u64(d, "held", st.held);
    rte_tel_data_add_dict_u64(d, "lost", st.lost);
    rte_tel_data_add_dict_string(d, "last_reason", st.last_reason);
    npa_port* p = find_port(port_id);
    for (std::size_t i = 0; p != nullptr && i < p->nsubs; ++i) {
        char key[32];
        std::snprintf(key, sizeof key, "path%zu", i);
        rte_tel_data_add_dict_string(d, key, p->subs[i].removed ? "(removed)" : p->subs[i].name);
        if (const image_path_device* img = p->subs[i].image) {
            // The image a path runs: which file, which plugin, its digest and who signed it.
            const std::pair<const char*, const char*> fields[] = {
                {"image", img->file().c_str()},
                {"plugin", img->plugin_name()},
                {"signer", img->signer().c_str()}};
            for (const auto& [k, v] : fields) {
                std::snprintf(key, sizeof key, "path%zu_%s", i, k);
                rte_tel_data_add_dict_string(d, key, v);
            }
            // SHA-512 in hex is 128 digits, one more than a telemetry string holds: two
            // halves, in order.
            if (rte_tel_data* halves = rte_tel_data_alloc()) {
                rte_tel_data_start_array(halves, RTE_TEL_STRING_VAL);
                const std::string& dg = img->digest();
                rte_tel_data_add_array_string(halves, dg.substr(0, dg.size() / 2).c_str());
                rte_tel_data_add_array_string(halves, dg.substr(dg.size() / 2).c_str());
                std::snprintf(key, sizeof key, "path%zu_digest", i);
                if (rte_tel_data_add_dict_container(d, key, halves, 0) != 0) rte_tel_data_free(halves);
            }
        }
    }
    return 0;
}

int tel_status(const char*, const char* params, rte_tel_data* d) {
    tel_params v;
    if (!parse_tel_params(params, &tel_port_param, 1, v).ok()) return tel_error(d, v.error.data());
    return tel_status_of(static_cast<std::uint16_t>(v.v[0]), d);
}

int tel_switch(const char*, const char* params, rte_tel_data* d) {
    static constexpr tel_param specs[] = {tel_port_param, {"path", max_sub_devices - 1}};
    tel_params v;
    if (!parse_tel_params(params, specs, 2, v).ok()) return tel_error(d, v.error.data());
    const auto port_id = static_cast<std::uint16_t>(v.v[0]);
    npa_port* p = find_port(port_id);
    if (p == nullptr) return tel_error(d, "port_id: not a net_npa port", -ENODEV);
    const auto path = static_cast<std::uint32_t>(v.v[1]);
    const status st = do_switch(*p, path, switch_reason::operator_request);
    if (!st.ok()) return tel_error(d, st.reason(), switch_errno(st));
    return tel_status_of(port_id, d);
}

} // namespace
} // namespace npa::dpdk::pmd

// ---- public API -------------------------------------------------------------------------

extern "C" {

__attribute__((visibility("default"))) int rte_pmd_npa_is_npa_port(uint16_t port_id) {
    return npa::dpdk::pmd::find_port(port_id) != nullptr ? 1 : 0;
}

__attribute__((visibility("default"))) int rte_pmd_npa_switch(uint16_t port_id, uint32_t path) {
    using namespace npa::dpdk::pmd;
    npa_port* p = find_port(port_id);
    if (p == nullptr) return -ENODEV;
    const npa::status st = do_switch(*p, path, npa::switch_reason::operator_request);
    if (st.ok()) return 0;
    NPA_LOG(ERR, "%s: switch to path %u refused: %s\n", p->dev->data->name, path, st.reason());
    return switch_errno(st);
}

__attribute__((visibility("default"))) int rte_pmd_npa_status(uint16_t port_id,
                                                              struct rte_pmd_npa_status_info* st) {
    using namespace npa::dpdk::pmd;
    npa_port* p = find_port(port_id);
    if (p == nullptr || st == nullptr) return -ENODEV;
    const npa::switch_history h = p->paths.history();
    *st = {};
    st->paths = static_cast<uint32_t>(p->nsubs);
    st->active = p->started ? p->paths.target() : p->args.active;
    st->switching = p->paths.switching() ? 1 : 0;
    st->switches = h.switches();
    st->last_switch_ns = h.last_duration_ns();
    st->max_switch_ns = h.max_duration_ns();
    st->held = h.total_held();
    st->lost = h.total_tx_lost();
    st->last_reason = h.count() != 0 ? npa::to_string(h.recent(0).reason) : "none";
    for (std::size_t i = 0; i < 8; ++i) {
        st->sub_port[i] = i < p->nsubs && !p->subs[i].removed ? p->subs[i].port_id
                                                              : uint16_t{RTE_MAX_ETHPORTS};
    }
    return 0;
}

} // extern "C"

namespace npa::dpdk::pmd {
namespace {
RTE_INIT(npa_init) {
    logtype = rte_log_register_type_and_pick_level("pmd.net.npa", RTE_LOG_NOTICE);
    net_npa_drv.probe = npa_probe;
    net_npa_drv.remove = npa_remove;
    (void)rte_telemetry_register_cmd(
        "/npa/switch", tel_switch,
        "Moves a net_npa port's data path. Parameters: int port_id, int path");
    (void)rte_telemetry_register_cmd(
        "/npa/status", tel_status,
        "Returns a net_npa port's paths and switch telemetry. Parameters: int port_id");
}
} // namespace
} // namespace npa::dpdk::pmd

#define NPA_PMD_PARAMS "dev(<device>) active=<int> dwell_ms=<int> backoff_ms=<int> auto=<0|1> " \
                       "plugin=<path> trusted_key=<path>"
RTE_PMD_REGISTER_VDEV(net_npa, net_npa_drv);
RTE_PMD_REGISTER_PARAM_STRING(net_npa, NPA_PMD_PARAMS);

// What dpdk-pmdinfo.py reads from a PMD's shared object: DPDK's build generates this
// string for in-tree drivers (buildtools/pmdinfogen.py) from the two registrations above;
// an out-of-tree build writes it itself, in the same form.
extern "C" __attribute__((used, visibility("default"))) const char net_npa_pmd_info[] =
    "PMD_INFO_STRING= {\"name\": \"net_npa\", \"params\": \"" NPA_PMD_PARAMS "\", "
    "\"pci_ids\": []}";
