/* npa/dpdk/rte_pmd_npa.h: the public API of the net_npa poll-mode driver.
 *
 * net_npa is an ethdev port whose data path runs over one of several sub-devices
 * (other DPDK ports) and moves between them without losing packets. These calls are
 * control path: call them from any thread except a data-path lcore's burst loop.
 * The same operations are reachable from DPDK telemetry as /npa/switch and /npa/status.
 * Plain C, so C applications can use it. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What rte_pmd_npa_status() reports. */
struct rte_pmd_npa_status_info {
    uint32_t paths;            /**< sub-devices configured */
    uint32_t active;           /**< path the data path is on (or moving to) */
    uint32_t switching;        /**< 1 while a switch is draining */
    uint64_t switches;         /**< completed switches */
    uint64_t last_switch_ns;   /**< duration of the last switch */
    uint64_t max_switch_ns;    /**< longest switch */
    uint64_t held;             /**< packets held back by switches */
    uint64_t lost;             /**< packets lost by switches */
    /** Why the last switch happened: "boot" (the start-up attach), "operator-request"
     *  (rte_pmd_npa_switch, /npa/switch), "surprise-removal" (RTE_ETH_EVENT_INTR_RMV on
     *  the active sub-device), "policy" (link down, or back to a preferred path whose link
     *  is up), "vf-arrived" (a removed sub-device came back and took the traffic back);
     *  "none" before the first start. The xstat switch_last_reason holds the same as a
     *  number: boot 0, vf-arrived 1, policy 4, surprise-removal 7, operator-request 8. */
    const char* last_reason;
    uint16_t sub_port[8];      /**< ethdev port id of each path (RTE_MAX_ETHPORTS: gone) */
};

/** Moves port_id's data path to sub-device `path` (0-based, dev() order). An operator's
 *  switch is not subject to the dwell time (dwell_ms applies to automatic switches).
 *  Returns 0 on success (the switch completes as the queues drain; asking for the path
 *  the port is on or moving to is a no-op and returns 0), -ENODEV if port_id is not a
 *  net_npa port, -EINVAL for a path out of range, -EBUSY while a switch drains or during
 *  the back-off after a failed switch to that path, -EIO if the path's device is gone or
 *  could not be started. */
int rte_pmd_npa_switch(uint16_t port_id, uint32_t path);

/** Fills *st. Returns 0, or -ENODEV if port_id is not a net_npa port. */
int rte_pmd_npa_status(uint16_t port_id, struct rte_pmd_npa_status_info* st);

/** 1 if port_id is a net_npa port, 0 otherwise. */
int rte_pmd_npa_is_npa_port(uint16_t port_id);

#ifdef __cplusplus
}
#endif
