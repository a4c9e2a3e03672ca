/* SPDX-License-Identifier: GPL-2.0 */
/*
 * npa_kmod.h: the interface between the module's two halves.
 *
 *   npa_kmod_main.c (C, kernel headers)      PCI driver, net_device, NAPI, interrupts
 *   npa_kmod_core.cpp (C++20, npa headers)   npa::shell over the vmxnet3 plugin
 *
 * The C++ half never includes a kernel header: everything it needs from the kernel it
 * asks for through the npa_kmod_* functions below, which the C half defines. The C half
 * drives the shell through the npa_core_* functions, which the C++ half defines. Plain C
 * types only, so that both compilers read this file the same way.
 *
 * Threads: npa_core_create / start / stop / destroy run in process context (probe,
 * ndo_open, ndo_stop, remove) with the data path quiet. npa_core_xmit, npa_core_poll and
 * npa_core_link run with the C half's per-device spinlock held: the shell's queue 0 has
 * one owner at a time (npa::shell's data-path contract), whichever of ndo_start_xmit and
 * the NAPI poll holds the lock.
 */
#ifndef NPA_KMOD_H
#define NPA_KMOD_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
extern "C" {
#define NPA_KMOD_NOEXCEPT noexcept
typedef std::uint8_t npa_u8;
typedef std::uint32_t npa_u32;
typedef std::uint64_t npa_u64;
typedef std::size_t npa_size;
#else
#include <linux/types.h>
#define NPA_KMOD_NOEXCEPT
typedef u8 npa_u8;
typedef u32 npa_u32;
typedef u64 npa_u64;
typedef size_t npa_size;
#endif

/* Log levels, as npa::log_level (debug, info, warning, error). */
enum { NPA_KMOD_DEBUG = 0, NPA_KMOD_INFO = 1, NPA_KMOD_WARN = 2, NPA_KMOD_ERR = 3 };

/* ---- what the C half gives the C++ half (npa_kmod_main.c) ------------------------- */

/* Memory for the control path (the shell, its queues, plugin bookkeeping): kvmalloc /
 * kvfree, GFP_KERNEL. Process context only. */
void *npa_kmod_alloc(npa_size bytes) NPA_KMOD_NOEXCEPT;
void npa_kmod_free(void *p) NPA_KMOD_NOEXCEPT;
/* `fn` is one of the device's PCI functions (the vmxnet3, or the VF of the second path).
 * DMA memory the function can reach (dma_alloc_coherent); zeroed. NULL on failure. */
void *npa_kmod_dma_alloc(void *fn, npa_size bytes, npa_u64 *iova) NPA_KMOD_NOEXCEPT;
void npa_kmod_dma_free(void *fn, npa_size bytes, void *virt, npa_u64 iova) NPA_KMOD_NOEXCEPT;
/* A register of the function: BAR 0 or 1, byte offset; ioread32 / iowrite32. Outside the
 * BAR: reads all ones, writes dropped. */
npa_u32 npa_kmod_reg_read(void *fn, npa_u32 bar, npa_u32 off) NPA_KMOD_NOEXCEPT;
void npa_kmod_reg_write(void *fn, npa_u32 bar, npa_u32 off, npa_u32 v) NPA_KMOD_NOEXCEPT;
/* udelay(): the VF's mailbox polls (control requests may run under a spinlock). */
void npa_kmod_udelay(npa_u32 us) NPA_KMOD_NOEXCEPT;
/* ktime_get_ns(). */
npa_u64 npa_kmod_now_ns(void) NPA_KMOD_NOEXCEPT;
/* printk with the device's name. */
void npa_kmod_log(void *host, int level, const char *msg) NPA_KMOD_NOEXCEPT;
/* Wake the poller of queue q (napi_schedule). */
void npa_kmod_wake(void *host, npa_u32 q) NPA_KMOD_NOEXCEPT;
/* Copies `len` bytes of the socket buffer `skb` into `dst` (skb_copy_bits). */
int npa_kmod_skb_copy(const void *skb, void *dst, npa_u32 len) NPA_KMOD_NOEXCEPT;
/* One received frame for the stack (napi_alloc_skb, copy, napi_gro_receive). */
void npa_kmod_rx(void *host, const void *data, npa_u32 len) NPA_KMOD_NOEXCEPT;

/* ---- what the C++ half gives the C half (npa_kmod_core.cpp) ----------------------- */

struct npa_core;

struct npa_core_stats {
	npa_u64 rx_packets, rx_bytes, rx_dropped;
	npa_u64 tx_packets, tx_bytes, tx_dropped;
};

/* Sizes the module runs with (also the module parameters' defaults). */
struct npa_core_params {
	npa_u32 ring_size;   /* TX and RX descriptors per ring: a multiple of 32 */
	npa_u32 buffers;     /* packet buffers in the pool */
	npa_u32 mtu;
};

/* Builds the shell and the vmxnet3 path's window over `host` (the C half's per-device
 * state, passed back in npa_kmod_log / wake / rx) and `fn` (the vmxnet3's PCI function).
 * NULL on failure (logged). */
struct npa_core *npa_core_create(void *host, void *fn, const struct npa_core_params *p) NPA_KMOD_NOEXCEPT;
/* The second path: the 82576 VF `fn` (BAR0 mapped). Function-level reset, the mailbox
 * RESET through the PF (which answers with the MAC it assigned, zeroes when none), then
 * the igbvf path is added to the shell. Its control path is the PF's mailbox. Process
 * context, the device down. 0 or -errno. */
int npa_core_add_vf(struct npa_core *c, void *fn, npa_u8 assigned_mac[6]) NPA_KMOD_NOEXCEPT;
/* After the shell fell back from the VF because it was reset or wrote something impossible
 * (the newest switch record says so), the VF is reset again and the PF's mailbox RESET
 * handshake redone, so a later switch to it finds it clear to send (Linux's igb refuses a
 * reset VF's requests until then). 0 when done or not needed, else -errno. */
/* Removes the VF's path (not the active one: -EBUSY). */
int npa_core_remove_vf(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* The VF is going (its PCI remove): 1 when a switch is under way that the caller must
 * finish (npa_core_service, NAPI kept scheduled) before asking again (a pending one, or the
 * fallback to the vmxnet3 just requested when the VF was active), 0 when the VF's path is
 * idle and npa_core_remove_vf can take it, else a negative errno. */
int npa_core_vf_leaving(struct npa_core *c) NPA_KMOD_NOEXCEPT;
void npa_core_destroy(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* Interrupt types, numbered as vmxnet3's GET_CONF_INTR answers them. */
enum { NPA_KMOD_IT_NONE = 0, NPA_KMOD_IT_INTX = 1, NPA_KMOD_IT_MSI = 2, NPA_KMOD_IT_MSIX = 3 };
/* At probe: the interrupt type the device asks for (GET_CONF_INTR, after the revision
 * select; AUTO is MSI-X), NPA_KMOD_IT_NONE when the device cannot be driven (logged). */
npa_u32 npa_core_irq_type(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* The type to try when `type` could not be enabled: MSI-X, MSI, INTx, then NONE. */
npa_u32 npa_core_irq_next(npa_u32 type) NPA_KMOD_NOEXCEPT;
/* The vectors the C half enabled, before the first start: 2 (MSI-X: queue 0, then the
 * events) or 1 (INTx, MSI: one for both; the plugin then lays out one queue pair). */
void npa_core_set_irqs(struct npa_core *c, npa_u32 vectors) NPA_KMOD_NOEXCEPT;
/* INTx: 1 when the interrupt was the device's (ICR is non-zero; its read lowers the line),
 * 0 when it was another function's on the shared line. Hard-irq context, no lock. */
int npa_core_irq_ours(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* With the events on the queue's vector, 1 when the running vmxnet3 has events pending
 * (ECR): the NAPI poll then hands them to the link check. Under the per-device lock. */
int npa_core_events(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* The MAC address the device holds (read from MACL/MACH). */
void npa_core_mac(struct npa_core *c, npa_u8 mac[6]) NPA_KMOD_NOEXCEPT;
/* ndo_open: attach the vmxnet3 path (shell start), set the MAC and RX mode. 0 or -errno. */
int npa_core_start(struct npa_core *c, const npa_u8 mac[6]) NPA_KMOD_NOEXCEPT;
/* ndo_stop: detach; every buffer back to the pool. */
void npa_core_stop(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* Sends one frame (copied out of `skb`); 1 when the shell took it, 0 when it was dropped. */
int npa_core_xmit(struct npa_core *c, const void *skb, npa_u32 len) NPA_KMOD_NOEXCEPT;
/* NAPI poll: up to `budget` frames to npa_kmod_rx, TX completions reaped. Returns the
 * frames delivered; *rearmed is set when the queue's interrupt was armed (idle). */
int npa_core_poll(struct npa_core *c, int budget, int *rearmed) NPA_KMOD_NOEXCEPT;
/* Link state (acknowledges a link event): 1 up, 0 down. */
int npa_core_link(struct npa_core *c) NPA_KMOD_NOEXCEPT;
void npa_core_get_stats(struct npa_core *c, struct npa_core_stats *s) NPA_KMOD_NOEXCEPT;
/* Where every buffer is (npa::shell::audit): 1 when it balances. */
int npa_core_audit(struct npa_core *c) NPA_KMOD_NOEXCEPT;

/* The control path (npa::shell::control and its wrappers): the request goes to the active
 * path's authority (the vmxnet3's hypervisor, the VF's PF) and, accepted, joins the state
 * the shell replays on every attach; with the device down it is only recorded. 0, or
 * -errno for a refusal (-EINVAL malformed, -EOPNOTSUPP beyond the device, -EPERM refused
 * by the authority, ...). Process context under RTNL, like every control call. */
int npa_core_set_mac(struct npa_core *c, const npa_u8 mac[6]) NPA_KMOD_NOEXCEPT;
int npa_core_set_mtu(struct npa_core *c, npa_u32 mtu) NPA_KMOD_NOEXCEPT;
int npa_core_vlan(struct npa_core *c, npa_u32 vid, int add) NPA_KMOD_NOEXCEPT;
/* RX mode bits, as npa::rx_mode. */
enum {
	NPA_RXM_UCAST = 1 << 0, NPA_RXM_MCAST = 1 << 1, NPA_RXM_BCAST = 1 << 2,
	NPA_RXM_ALLMULTI = 1 << 3, NPA_RXM_PROMISC = 1 << 4,
};
/* The most multicast addresses the filter takes; a longer list is all-multicast. */
#define NPA_CORE_MAX_MCAST 32
/* RX mode and multicast list (`count` addresses of 6 bytes, at most NPA_CORE_MAX_MCAST). */
int npa_core_set_rx_mode(struct npa_core *c, npa_u32 mode, const npa_u8 *mcast, npa_u32 count) NPA_KMOD_NOEXCEPT;

/* ethtool -S: the shell's counters of queue 0, then each path's (npa::shell::path_stats),
 * monotonic across switches. Names are at most NPA_CORE_STAT_NAME - 1 characters. */
#define NPA_CORE_STAT_NAME 32
npa_u32 npa_core_stat_count(struct npa_core *c) NPA_KMOD_NOEXCEPT;
void npa_core_stat_names(struct npa_core *c, char *names, npa_u32 count) NPA_KMOD_NOEXCEPT;
void npa_core_stat_values(struct npa_core *c, npa_u64 *values, npa_u32 count) NPA_KMOD_NOEXCEPT;

/* Paths, numbered 0 .. npa_core_path_count() - 1 in the order they were added (0: the
 * vmxnet3). Under RTNL (the sysfs group takes it). */
npa_u32 npa_core_path_count(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* The plugin's name of path i ("vmxnet3", ...); "none" out of range. */
const char *npa_core_path_name(struct npa_core *c, npa_u32 i) NPA_KMOD_NOEXCEPT;
/* The path the data path runs on, or -1 when the shell is stopped. */
int npa_core_active_path(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* Asks for path i (npa::shell::request_switch, reason operator_request): 0 when it is the
 * active one already, 1 when the switch is under way (the new path attached and the
 * control state replayed; the queue finishes it in its NAPI polls, npa_core_service
 * drives the rest), else -errno (-EINVAL no such path, -ENETDOWN stopped, -EBUSY a switch
 * under way or the hysteresis, ...; the old path runs on). Under RTNL. */
int npa_core_switch(struct npa_core *c, npa_u32 i) NPA_KMOD_NOEXCEPT;
/* npa::shell::service(): 1 while a switch is under way. */
int npa_core_service(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* How the last switch ended: 0, or -errno. */
int npa_core_switch_result(struct npa_core *c) NPA_KMOD_NOEXCEPT;

/* The shell's switch log (npa::switch_record), newest last. */
struct npa_core_switch_rec {
	npa_u64 seq;
	const char *from, *to;		/* path names ("none" before the first start) */
	const char *reason;		/* npa::to_string(switch_reason) */
	const char *result;		/* "ok", or npa::to_string(errc) */
	npa_u64 duration_ns, held, requeued, tx_lost, rx_dropped;
};
/* Records kept (the last 64). */
npa_u32 npa_core_switch_count(struct npa_core *c) NPA_KMOD_NOEXCEPT;
/* Record i, 0 the oldest kept. */
void npa_core_switch_record(struct npa_core *c, npa_u32 i, struct npa_core_switch_rec *r) NPA_KMOD_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* NPA_KMOD_H */
