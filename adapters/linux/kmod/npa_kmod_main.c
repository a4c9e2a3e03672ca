// SPDX-License-Identifier: GPL-2.0
/*
 * npa_kmod_main.c: the module's C half: a PCI driver for the vmxnet3 (15ad:07b0) whose
 * data path is an npa shell (npa_kmod_core.cpp), registered as an ordinary net_device.
 *
 *   probe      enable the function, map BAR0 (PT) and BAR1 (VD), 64-bit DMA, build the
 *              shell (npa_core_create), the interrupts the device asks for (GET_CONF_INTR)
 *              with Linux's vmxnet3 fallback: two MSI-X vectors (vector 0: queue 0,
 *              vector 1: events, as the vmxnet3 plugin lays out intrIdx), else MSI, else
 *              INTx (one vector for both, the line shared: ICR says whether it was ours),
 *              register "npa%d" with the MAC the device holds;
 *   ndo_open   npa_core_start (the shell attaches the vmxnet3 path and replays MAC and RX
 *              mode), NAPI on, one poll scheduled so that the first round arms the queue;
 *   xmit       copy the frame into an npa buffer and tx_burst it (npa_core_xmit);
 *   NAPI       npa_core_poll: the shell's napi_poll; frames copied into sk_buffs;
 *              napi_complete_done when the shell re-armed the queue's interrupt;
 *   ndo_stop   NAPI off, npa_core_stop (every buffer back; the audit must balance).
 *
 * Locking: `lock` serialises the shell's queue 0 between ndo_start_xmit and the NAPI poll
 * (npa::shell's data path has one owner at a time). Both run with bottom halves off, and
 * nothing that can transmit runs under it: the poll queues the frames it received and hands
 * them to the stack after unlocking (the stack answers a TCP segment with an ACK from
 * inside napi_gro_receive, through ndo_start_xmit: under the lock, a self-deadlock). The
 * event interrupt takes no lock either: it hands the link check to a work item (with one
 * vector for all, the NAPI poll hands it over when ECR holds an event). Every
 * control call of the shell (open, stop, the control requests, a VF joining or leaving, a
 * switch from sysfs) runs in process context under RTNL.
 *
 * A second path: the 82576 VF the parameter `vf` names (8086:10ca, the same pci_driver),
 * its queue vector on the same NAPI, its control path the PF's mailbox; switches between
 * the two are asked through /sys/class/net/npaN/npa/active_path.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>

#include "npa_kmod.h"

#define NPA_KMOD_NAME "npa_vmxnet3"

static char *bdf;
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "only drive the vmxnet3 at this PCI address (e.g. 0000:00:03.0); all when empty");
static char *vf;
module_param(vf, charp, 0444);
MODULE_PARM_DESC(vf, "the 82576 VF (8086:10ca) at this PCI address joins the device of bdf as its second path");
static unsigned int ring_size = 256;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size, "TX and RX descriptors per ring (a multiple of 32, up to 4096)");
static unsigned int buffers = 1024;
module_param(buffers, uint, 0444);
MODULE_PARM_DESC(buffers, "packet buffers in the pool (2176 bytes each, one DMA block)");
static unsigned int switch_wait_ms = 5000;
module_param(switch_wait_ms, uint, 0644);
MODULE_PARM_DESC(switch_wait_ms, "how long a write to active_path (or the VF's removal) drives a switch before ETIMEDOUT");
static char *intr = "msix";
module_param(intr, charp, 0444);
MODULE_PARM_DESC(intr, "the most the module enables of what the device asks for: msix (default), msi or intx; it falls back MSI-X, MSI, INTx");
static unsigned int health_ms = 100;
module_param(health_ms, uint, 0644);
MODULE_PARM_DESC(health_ms, "how often the active path's health is checked while up (ms; 0: never)");

/* A PCI function the C++ half reaches (npa_kmod_dma_*, npa_kmod_reg_*): the vmxnet3 or
 * the VF. */
struct npa_kmod_fn {
	struct pci_dev *pdev;
	void __iomem *bar[2];
};

struct npa_kmod_dev;

/* The VF of the second path. */
struct npa_kmod_vf {
	struct npa_kmod_fn fn;
	struct npa_kmod_dev *owner;	/* NULL once the owner went away first */
	bool irq;			/* its queue vector requested (on the owner's NAPI) */
	char irq_name[IFNAMSIZ + 8];
};

/* The device a VF joins: the one bdf named (the first probed without bdf). */
static struct npa_kmod_dev *npa_kmod_owner;
static DEFINE_MUTEX(npa_kmod_owner_lock);

struct npa_kmod_dev {
	struct npa_kmod_fn fn;		/* the vmxnet3 */
	struct pci_dev *pdev;
	struct net_device *netdev;
	struct napi_struct napi;
	struct npa_kmod_vf *vf;		/* the second path's function, under RTNL */
	spinlock_t lock;		/* the shell's queue 0: xmit and NAPI poll */
	struct npa_core *core;
	bool up;
	bool ctl_up;			/* under RTNL: the shell started, RX mode goes to it */
	struct work_struct rx_mode_work;	/* ndo_set_rx_mode, done under RTNL */
	struct work_struct link_work;		/* the event vector's link check */
	struct delayed_work health_work;	/* the active path's health, every health_ms */
	struct sk_buff_head rxq;		/* received under `lock`, to the stack after it */
	u32 irq_type;			/* NPA_KMOD_IT_*: what pci_alloc_irq_vectors enabled */
	int nvec;			/* 2: queue 0 and the events; 1: one for both */
	char irq_name[2][IFNAMSIZ + 16];
};

#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX PCI_IRQ_LEGACY	/* its name before Linux 6.8 */
#endif

static const char *const npa_kmod_it_names[] = { "none", "INTx", "MSI", "MSI-X" };

/* ---- what the C++ half asks for (npa_kmod.h) ---------------------------------------- */

void *npa_kmod_alloc(size_t bytes)
{
	return kvzalloc(bytes, GFP_KERNEL);
}

void npa_kmod_free(void *p)
{
	kvfree(p);
}

void *npa_kmod_dma_alloc(void *fn, size_t bytes, u64 *iova)
{
	struct npa_kmod_fn *f = fn;
	dma_addr_t a = 0;
	void *v = dma_alloc_coherent(&f->pdev->dev, bytes, &a, GFP_KERNEL);

	*iova = a;
	return v;
}

void npa_kmod_dma_free(void *fn, size_t bytes, void *virt, u64 iova)
{
	struct npa_kmod_fn *f = fn;

	dma_free_coherent(&f->pdev->dev, bytes, virt, (dma_addr_t)iova);
}

u32 npa_kmod_reg_read(void *fn, u32 bar, u32 off)
{
	struct npa_kmod_fn *f = fn;

	if (bar > 1 || !f->bar[bar] || off > pci_resource_len(f->pdev, bar) - 4)
		return ~0u;	/* outside the BAR: reads as a removed device */
	return ioread32(f->bar[bar] + off);
}

void npa_kmod_reg_write(void *fn, u32 bar, u32 off, u32 v)
{
	struct npa_kmod_fn *f = fn;

	if (bar > 1 || !f->bar[bar] || off > pci_resource_len(f->pdev, bar) - 4)
		return;
	iowrite32(v, f->bar[bar] + off);
}

void npa_kmod_udelay(u32 us)
{
	udelay(us);
}

u64 npa_kmod_now_ns(void)
{
	return ktime_get_ns();
}

void npa_kmod_log(void *host, int level, const char *msg)
{
	struct npa_kmod_dev *d = host;

	switch (level) {
	case NPA_KMOD_ERR:
		dev_err(&d->pdev->dev, "npa: %s\n", msg);
		break;
	case NPA_KMOD_WARN:
		dev_warn(&d->pdev->dev, "npa: %s\n", msg);
		break;
	case NPA_KMOD_INFO:
		dev_info(&d->pdev->dev, "npa: %s\n", msg);
		break;
	default:
		dev_dbg(&d->pdev->dev, "npa: %s\n", msg);
		break;
	}
}

void npa_kmod_wake(void *host, u32 q)
{
	struct npa_kmod_dev *d = host;

	if (q == 0 && d->up)
		napi_schedule(&d->napi);
}

int npa_kmod_skb_copy(const void *skb, void *dst, u32 len)
{
	return skb_copy_bits(skb, 0, dst, len);
}

void npa_kmod_rx(void *host, const void *data, u32 len)
{
	struct npa_kmod_dev *d = host;
	struct sk_buff *skb = napi_alloc_skb(&d->napi, len);

	if (!skb) {
		d->netdev->stats.rx_dropped++;
		return;
	}
	skb_put_data(skb, data, len);
	skb->protocol = eth_type_trans(skb, d->netdev);
	__skb_queue_tail(&d->rxq, skb);	/* only the poll touches rxq */
}

/* ---- NAPI and interrupts -------------------------------------------------------------- */

static int npa_kmod_poll(struct napi_struct *napi, int budget)
{
	struct npa_kmod_dev *d = container_of(napi, struct npa_kmod_dev, napi);
	struct sk_buff *skb;
	int done, rearmed, events;

	spin_lock(&d->lock);
	done = npa_core_poll(d->core, budget, &rearmed);
	events = npa_core_events(d->core);
	spin_unlock(&d->lock);
	if (events)
		schedule_work(&d->link_work);	/* one vector for all: the link check */
	while ((skb = __skb_dequeue(&d->rxq)))
		napi_gro_receive(napi, skb);
	if (netif_queue_stopped(d->netdev))
		netif_wake_queue(d->netdev);
	if (done < budget) {
		/* The shell armed the interrupt when it found the queue idle; an interrupt
		 * between that and here finds NAPI scheduled and is replayed by
		 * napi_complete_done (NAPIF_STATE_MISSED). */
		napi_complete_done(napi, done);
		if (!rearmed)
			napi_schedule(napi);	/* a switch under way: keep polling */
	}
	return done;
}

static irqreturn_t npa_kmod_queue_irq(int irq, void *data)
{
	struct npa_kmod_dev *d = data;

	/* The device masked the vector when it raised it (autoMask); the shell unmasks it
	 * when a poll finds the queue idle. */
	napi_schedule(&d->napi);
	return IRQ_HANDLED;
}

static void npa_kmod_link_work(struct work_struct *w)
{
	struct npa_kmod_dev *d = container_of(w, struct npa_kmod_dev, link_work);
	int up;

	spin_lock_bh(&d->lock);
	up = d->up ? npa_core_link(d->core) : 0;
	spin_unlock_bh(&d->lock);
	if (up)
		netif_carrier_on(d->netdev);
	else
		netif_carrier_off(d->netdev);
}

static irqreturn_t npa_kmod_event_irq(int irq, void *data)
{
	struct npa_kmod_dev *d = data;

	/* `lock` is taken with interrupts on (xmit, the poll): not here. The vector stays
	 * masked (autoMask) until the work item has read the event and unmasked it. */
	schedule_work(&d->link_work);
	return IRQ_HANDLED;
}

/* One vector for queue 0 and the events (INTx, MSI), as Linux's vmxnet3_intr: on INTx the
 * line may be another function's too, and ICR says whether the device raised it (the read
 * lowers it). The vector stays masked (autoMask) until the shell re-arms the queue; the
 * poll hands an event to the link check. */
static irqreturn_t npa_kmod_shared_irq(int irq, void *data)
{
	struct npa_kmod_dev *d = data;

	if (d->irq_type == NPA_KMOD_IT_INTX && !npa_core_irq_ours(d->core))
		return IRQ_NONE;
	napi_schedule(&d->napi);
	return IRQ_HANDLED;
}

/* ---- net_device ----------------------------------------------------------------------- */

static int npa_kmod_open(struct net_device *nd)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	int err = npa_core_start(d->core, nd->dev_addr);

	if (err)
		return err;
	d->ctl_up = true;
	spin_lock_bh(&d->lock);
	d->up = true;
	spin_unlock_bh(&d->lock);
	napi_enable(&d->napi);
	netif_start_queue(nd);
	spin_lock_bh(&d->lock);
	err = npa_core_link(d->core);
	spin_unlock_bh(&d->lock);
	if (err)
		netif_carrier_on(nd);
	else
		netif_carrier_off(nd);
	napi_schedule(&d->napi);
	if (READ_ONCE(health_ms))
		schedule_delayed_work(&d->health_work, msecs_to_jiffies(READ_ONCE(health_ms)));
	netdev_info(nd, "npa shell up on the vmxnet3 path, link %s\n", err ? "up" : "down");
	return 0;
}

static int npa_kmod_stop(struct net_device *nd)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	int i;

	netif_stop_queue(nd);
	netif_carrier_off(nd);
	WRITE_ONCE(d->ctl_up, false);
	cancel_delayed_work_sync(&d->health_work);	/* it only tries RTNL: no deadlock */
	spin_lock_bh(&d->lock);
	d->up = false;
	spin_unlock_bh(&d->lock);
	napi_disable(&d->napi);
	for (i = 0; i < d->nvec; i++)
		synchronize_irq(pci_irq_vector(d->pdev, i));
	cancel_work_sync(&d->link_work);
	netif_carrier_off(nd);
	npa_core_stop(d->core);
	if (!npa_core_audit(d->core))
		netdev_warn(nd, "npa: buffer audit does not balance after stop\n");
	else
		netdev_info(nd, "npa shell stopped, every buffer back in the pool\n");
	return 0;
}

static netdev_tx_t npa_kmod_xmit(struct sk_buff *skb, struct net_device *nd)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	spin_lock(&d->lock);
	if (d->up)
		npa_core_xmit(d->core, skb, skb->len);
	spin_unlock(&d->lock);
	/* Copied (or counted as dropped by the core): the sk_buff is done either way. */
	dev_consume_skb_any(skb);
	return NETDEV_TX_OK;
}

static void npa_kmod_get_stats64(struct net_device *nd, struct rtnl_link_stats64 *s)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	struct npa_core_stats cs;

	spin_lock_bh(&d->lock);
	npa_core_get_stats(d->core, &cs);
	spin_unlock_bh(&d->lock);
	s->rx_packets = cs.rx_packets;
	s->rx_bytes = cs.rx_bytes;
	s->rx_dropped = cs.rx_dropped + nd->stats.rx_dropped;
	s->tx_packets = cs.tx_packets;
	s->tx_bytes = cs.tx_bytes;
	s->tx_dropped = cs.tx_dropped;
}

/* ---- the control path: every request through the shell (npa_core_set_*) ---------------- */

static int npa_kmod_set_mac_address(struct net_device *nd, void *p)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	struct sockaddr *sa = p;
	int err = eth_prepare_mac_addr_change(nd, p);

	if (err)
		return err;
	err = npa_core_set_mac(d->core, sa->sa_data);
	if (err) {
		netdev_warn(nd, "npa: MAC %pM refused (%d)\n", sa->sa_data, err);
		return err;
	}
	eth_commit_mac_addr_change(nd, p);
	return 0;
}

static int npa_kmod_change_mtu(struct net_device *nd, int mtu)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	int err;

	err = npa_core_set_mtu(d->core, mtu);
	if (err) {
		netdev_warn(nd, "npa: MTU %d refused (%d)\n", mtu, err);
		return err;
	}
	nd->mtu = mtu;
	return 0;
}

/* The RX mode in process context under RTNL, where every control call of the shell runs
 * (a switch's control replay among them): ndo_set_rx_mode itself runs under the address
 * lock, not always under RTNL, and only schedules this. */
static void npa_kmod_rx_mode_work(struct work_struct *w)
{
	struct npa_kmod_dev *d = container_of(w, struct npa_kmod_dev, rx_mode_work);
	struct net_device *nd = d->netdev;
	u8 list[NPA_CORE_MAX_MCAST][ETH_ALEN];
	struct netdev_hw_addr *ha;
	u32 mode = NPA_RXM_UCAST | NPA_RXM_BCAST | NPA_RXM_MCAST;
	u32 n = 0;
	int err;

	rtnl_lock();
	if (!d->ctl_up) {
		/* Down: the stack sets the mode again once the device is up. */
		rtnl_unlock();
		return;
	}
	netif_addr_lock_bh(nd);
	if (nd->flags & IFF_PROMISC)
		mode |= NPA_RXM_PROMISC;
	if ((nd->flags & IFF_ALLMULTI) || netdev_mc_count(nd) > NPA_CORE_MAX_MCAST)
		mode |= NPA_RXM_ALLMULTI;
	else
		netdev_for_each_mc_addr(ha, nd)
			ether_addr_copy(list[n++], ha->addr);
	netif_addr_unlock_bh(nd);
	err = npa_core_set_rx_mode(d->core, mode, &list[0][0], n);
	rtnl_unlock();
	if (err)
		netdev_warn(nd, "npa: RX mode %#x with %u multicast addresses refused (%d)\n", mode, n, err);
}

static void npa_kmod_set_rx_mode(struct net_device *nd)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	schedule_work(&d->rx_mode_work);
}

static int npa_kmod_vlan(struct net_device *nd, u16 vid, bool add)
{
	struct npa_kmod_dev *d = netdev_priv(nd);
	int err;

	if (vid == 0)
		return 0;	/* untagged and priority-tagged frames always pass the filter */
	err = npa_core_vlan(d->core, vid, add);
	if (err)
		netdev_warn(nd, "npa: VLAN %u %s refused (%d)\n", vid, add ? "add" : "kill", err);
	return err;
}

static int npa_kmod_vlan_add(struct net_device *nd, __be16 proto, u16 vid)
{
	return npa_kmod_vlan(nd, vid, true);
}

static int npa_kmod_vlan_kill(struct net_device *nd, __be16 proto, u16 vid)
{
	return npa_kmod_vlan(nd, vid, false);
}

static const struct net_device_ops npa_kmod_ops = {
	.ndo_open = npa_kmod_open,
	.ndo_stop = npa_kmod_stop,
	.ndo_start_xmit = npa_kmod_xmit,
	.ndo_get_stats64 = npa_kmod_get_stats64,
	.ndo_validate_addr = eth_validate_addr,
	.ndo_set_mac_address = npa_kmod_set_mac_address,
	.ndo_change_mtu = npa_kmod_change_mtu,
	.ndo_set_rx_mode = npa_kmod_set_rx_mode,
	.ndo_vlan_rx_add_vid = npa_kmod_vlan_add,
	.ndo_vlan_rx_kill_vid = npa_kmod_vlan_kill,
};

/* ---- ethtool ------------------------------------------------------------------------- */

static void npa_kmod_get_drvinfo(struct net_device *nd, struct ethtool_drvinfo *info)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	strscpy(info->driver, NPA_KMOD_NAME, sizeof(info->driver));
	strscpy(info->version, "npa shell", sizeof(info->version));
	strscpy(info->bus_info, pci_name(d->pdev), sizeof(info->bus_info));
}

static int npa_kmod_get_sset_count(struct net_device *nd, int sset)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	return sset == ETH_SS_STATS ? (int)npa_core_stat_count(d->core) : -EOPNOTSUPP;
}

static void npa_kmod_get_strings(struct net_device *nd, u32 sset, u8 *data)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	BUILD_BUG_ON(NPA_CORE_STAT_NAME != ETH_GSTRING_LEN);
	if (sset == ETH_SS_STATS)
		npa_core_stat_names(d->core, (char *)data, npa_core_stat_count(d->core));
}

static void npa_kmod_get_ethtool_stats(struct net_device *nd, struct ethtool_stats *st, u64 *data)
{
	struct npa_kmod_dev *d = netdev_priv(nd);

	spin_lock_bh(&d->lock);
	npa_core_stat_values(d->core, data, st->n_stats);
	spin_unlock_bh(&d->lock);
}

static const struct ethtool_ops npa_kmod_ethtool_ops = {
	.get_drvinfo = npa_kmod_get_drvinfo,
	.get_link = ethtool_op_get_link,
	.get_sset_count = npa_kmod_get_sset_count,
	.get_strings = npa_kmod_get_strings,
	.get_ethtool_stats = npa_kmod_get_ethtool_stats,
};

/* ---- sysfs: /sys/class/net/npaN/npa/ --------------------------------------------------
 *
 *   paths        one line a path: its number, its plugin, "active" on the running one
 *   active_path  the running path's number ("none" when down); write a number to switch
 *   switch_log   the shell's newest switch records (up to NPA_KMOD_LOG_LINES, which fit
 *                in a page at their longest), oldest first
 *
 * Each takes RTNL (restarting the system call when it is busy, as net-sysfs does: the
 * device's unregistration holds RTNL while it waits for these files), which orders them
 * against ndo_open, ndo_stop and the control requests.
 */

#define NPA_KMOD_LOG_LINES 16

static ssize_t paths_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct npa_kmod_dev *d = netdev_priv(to_net_dev(dev));
	ssize_t n = 0;
	u32 i;
	int active;

	if (!rtnl_trylock())
		return restart_syscall();
	active = npa_core_active_path(d->core);
	for (i = 0; i < npa_core_path_count(d->core); i++)
		n += sysfs_emit_at(buf, n, "%u %s%s\n", i, npa_core_path_name(d->core, i),
				   (int)i == active ? " active" : "");
	rtnl_unlock();
	return n;
}
static DEVICE_ATTR_RO(paths);

static ssize_t active_path_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct npa_kmod_dev *d = netdev_priv(to_net_dev(dev));
	int active;

	if (!rtnl_trylock())
		return restart_syscall();
	active = npa_core_active_path(d->core);
	rtnl_unlock();
	return active < 0 ? sysfs_emit(buf, "none\n") : sysfs_emit(buf, "%d\n", active);
}

/* Drives the switch under way, if any, to its end under RTNL: queue 0 takes its part in
 * its NAPI polls (kept scheduled), the rest is the shell's service(), here. Nonzero when
 * it has not finished after switch_wait_ms (it stays pending: the next call drives it on). */
static int npa_kmod_finish_switch(struct npa_kmod_dev *d)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(READ_ONCE(switch_wait_ms));

	while (npa_core_service(d->core) && time_before(jiffies, deadline)) {
		local_bh_disable();
		napi_schedule(&d->napi);
		local_bh_enable();
		usleep_range(200, 500);
	}
	return npa_core_service(d->core);
}

/* The active path's health, every health_ms while up: a VF that failed without the kernel
 * removing it (a function-level reset, a PF reset, a device that stopped answering, bad
 * completions) makes the shell's service() ask for the fallback, driven to its end here as
 * a sysfs write drives a switch. A switch a write left unfinished is driven on too. RTNL is
 * only tried: ndo_stop cancels this work under RTNL. */
/* The newest switch record's number (0: none yet); `r` holds it. */
static u64 npa_kmod_last_switch(struct npa_kmod_dev *d, struct npa_core_switch_rec *r)
{
	u32 count = npa_core_switch_count(d->core);	/* the records kept: it stops growing */

	if (!count)
		return 0;
	npa_core_switch_record(d->core, count - 1, r);
	return r->seq;
}

static void npa_kmod_health_work(struct work_struct *w)
{
	struct npa_kmod_dev *d = container_of(to_delayed_work(w), struct npa_kmod_dev, health_work);
	struct npa_core_switch_rec r;
	unsigned int ms = READ_ONCE(health_ms);
	u64 before;

	if (rtnl_trylock()) {
		before = npa_kmod_last_switch(d, &r);
		if (d->ctl_up && npa_core_service(d->core)) {
			int pending = npa_kmod_finish_switch(d);

			if (npa_kmod_last_switch(d, &r) != before)
				netdev_warn(d->netdev, "npa: %s -> %s (%s): %s\n", r.from, r.to, r.reason,
					    pending ? "not finished yet" : r.result);
		}
		rtnl_unlock();
	}
	if (ms && READ_ONCE(d->ctl_up))
		schedule_delayed_work(&d->health_work, msecs_to_jiffies(ms));
}

static ssize_t active_path_store(struct device *dev, struct device_attribute *attr,
				 const char *buf, size_t len)
{
	struct net_device *nd = to_net_dev(dev);
	struct npa_kmod_dev *d = netdev_priv(nd);
	unsigned int p;
	int err = kstrtouint(buf, 10, &p);

	if (err)
		return -EINVAL;	/* not a number (kstrtouint also says -ERANGE) */
	if (!rtnl_trylock())
		return restart_syscall();
	/* A switch an earlier write left unfinished (ETIMEDOUT) is driven on first. */
	err = npa_kmod_finish_switch(d) ? -ETIMEDOUT : npa_core_switch(d->core, p);
	if (err == 1)
		err = npa_kmod_finish_switch(d) ? -ETIMEDOUT : npa_core_switch_result(d->core);
	rtnl_unlock();
	if (err) {
		netdev_info(nd, "npa: switch to path %u not done (%d)\n", p, err);
		return err;
	}
	return len;
}
static DEVICE_ATTR_RW(active_path);

static ssize_t switch_log_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct npa_kmod_dev *d = netdev_priv(to_net_dev(dev));
	struct npa_core_switch_rec r;
	ssize_t n = 0;
	u32 i, count;

	if (!rtnl_trylock())
		return restart_syscall();
	count = npa_core_switch_count(d->core);
	for (i = count > NPA_KMOD_LOG_LINES ? count - NPA_KMOD_LOG_LINES : 0; i < count; i++) {
		npa_core_switch_record(d->core, i, &r);
		n += sysfs_emit_at(buf, n,
				   "%llu %s -> %s %s %s %lluns held %llu requeued %llu lost %llu rx_dropped %llu\n",
				   r.seq, r.from, r.to, r.reason, r.result, r.duration_ns, r.held,
				   r.requeued, r.tx_lost, r.rx_dropped);
	}
	rtnl_unlock();
	return n;
}
static DEVICE_ATTR_RO(switch_log);

static struct attribute *npa_kmod_attrs[] = {
	&dev_attr_paths.attr,
	&dev_attr_active_path.attr,
	&dev_attr_switch_log.attr,
	NULL,
};

static const struct attribute_group npa_kmod_group = {
	.name = "npa",
	.attrs = npa_kmod_attrs,
};

/* ---- PCI ------------------------------------------------------------------------------- */

/* A function's bring-up, shared by both drivers: enabled, its first `nbars` BARs mapped
 * (each at least `min_len` bytes), 64-bit DMA, bus master, `nvec` MSI-X vectors (none for
 * 0: the vmxnet3 asks its device first, npa_kmod_alloc_irqs). Managed (pcim_*) except the
 * vectors, which the caller frees. */
static int npa_kmod_fn_setup(struct pci_dev *pdev, struct npa_kmod_fn *fn, int nbars,
			     resource_size_t min_len, int nvec)
{
	int err, i;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	err = pcim_iomap_regions(pdev, GENMASK(nbars - 1, 0), NPA_KMOD_NAME);
	if (err)
		return err;
	fn->pdev = pdev;
	for (i = 0; i < nbars; i++) {
		if (pci_resource_len(pdev, i) < min_len)
			return -ENODEV;
		fn->bar[i] = pcim_iomap_table(pdev)[i];
	}
	err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (err)
		return err;
	pci_set_master(pdev);
	return nvec ? pci_alloc_irq_vectors(pdev, nvec, nvec, PCI_IRQ_MSIX) : 0;
}

/* The vmxnet3's interrupts, as Linux's vmxnet3_alloc_intr_resources chooses them: the type
 * the device asks for (GET_CONF_INTR; AUTO is MSI-X), at most what the parameter `intr`
 * allows, and when it cannot be enabled the next of MSI-X (two vectors: queue 0, events),
 * MSI, INTx (one vector for both). The core is told how many vectors there are, which is
 * what the plugin lays out at attach. 0 or -errno. */
static int npa_kmod_alloc_irqs(struct npa_kmod_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	const char *want = intr ? intr : "msix";
	u32 cap, asked, type;
	int n = -ENODEV;

	if (sysfs_streq(want, "msix")) {
		cap = NPA_KMOD_IT_MSIX;
	} else if (sysfs_streq(want, "msi")) {
		cap = NPA_KMOD_IT_MSI;
	} else if (sysfs_streq(want, "intx")) {
		cap = NPA_KMOD_IT_INTX;
	} else {
		dev_err(&pdev->dev, "intr=%s: msix, msi or intx\n", want);
		return -EINVAL;
	}
	asked = npa_core_irq_type(d->core);
	if (asked == NPA_KMOD_IT_NONE)
		return -ENODEV;
	/* The types are numbered INTx < MSI < MSI-X: the cap is a minimum. */
	for (type = min(asked, cap); type != NPA_KMOD_IT_NONE; type = npa_core_irq_next(type)) {
		if (type == NPA_KMOD_IT_MSIX)
			n = pci_alloc_irq_vectors(pdev, 2, 2, PCI_IRQ_MSIX);
		else
			n = pci_alloc_irq_vectors(pdev, 1, 1, type == NPA_KMOD_IT_MSI ? PCI_IRQ_MSI : PCI_IRQ_INTX);
		if (n > 0)
			break;
		dev_info(&pdev->dev, "npa: no %s (%d)\n", npa_kmod_it_names[type], n);
	}
	if (n <= 0)
		return n ? n : -ENODEV;
	d->irq_type = type;
	d->nvec = n;
	npa_core_set_irqs(d->core, n);
	dev_info(&pdev->dev, "npa: interrupts: %s, %d vector%s (the device asks for %s, intr=%s)\n",
		 npa_kmod_it_names[type], n, n == 1 ? " for queue 0 and the events" : "s",
		 npa_kmod_it_names[asked], want);
	return 0;
}

/* Queue 0's vector and the events' (MSI-X), or one for both, shared with other functions
 * on INTx. 0 or -errno, nothing left requested. */
static int npa_kmod_request_irqs(struct npa_kmod_dev *d)
{
	int i, err;

	for (i = 0; i < d->nvec; i++) {
		irq_handler_t fn = d->nvec == 1 ? npa_kmod_shared_irq :
				   i == 0 ? npa_kmod_queue_irq : npa_kmod_event_irq;

		snprintf(d->irq_name[i], sizeof(d->irq_name[i]), "%s-%s", pci_name(d->pdev),
			 d->nvec == 1 ? "rxtx-event" : i == 0 ? "rxtx" : "event");
		err = request_irq(pci_irq_vector(d->pdev, i), fn,
				  d->irq_type == NPA_KMOD_IT_INTX ? IRQF_SHARED : 0, d->irq_name[i], d);
		if (err) {
			while (i--)
				free_irq(pci_irq_vector(d->pdev, i), d);
			return err;
		}
	}
	return 0;
}

static void npa_kmod_free_irqs(struct npa_kmod_dev *d)
{
	int i;

	for (i = d->nvec - 1; i >= 0; i--)
		free_irq(pci_irq_vector(d->pdev, i), d);
}

static int npa_kmod_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct npa_core_params params = { .ring_size = ring_size, .buffers = buffers, .mtu = ETH_DATA_LEN };
	struct net_device *nd;
	struct npa_kmod_dev *d;
	u8 mac[ETH_ALEN];
	int err;

	if (bdf && bdf[0] && strcmp(bdf, pci_name(pdev)) != 0)
		return -ENODEV;	/* another function is ours (module parameter bdf) */
	if (ring_size < 32 || ring_size > 4096 || ring_size % 32 != 0) {
		dev_err(&pdev->dev, "ring_size %u: a multiple of 32 up to 4096\n", ring_size);
		return -EINVAL;
	}
	nd = alloc_etherdev(sizeof(*d));
	if (!nd)
		return -ENOMEM;
	SET_NETDEV_DEV(nd, &pdev->dev);
	strscpy(nd->name, "npa%d", sizeof(nd->name));
	d = netdev_priv(nd);
	d->pdev = pdev;
	d->netdev = nd;
	spin_lock_init(&d->lock);
	INIT_WORK(&d->rx_mode_work, npa_kmod_rx_mode_work);
	INIT_WORK(&d->link_work, npa_kmod_link_work);
	INIT_DELAYED_WORK(&d->health_work, npa_kmod_health_work);
	__skb_queue_head_init(&d->rxq);
	pci_set_drvdata(pdev, d);

	/* BAR0 (PT) and BAR1 (VD), a page each at least; the vectors once the device said
	 * which type it wants. */
	err = npa_kmod_fn_setup(pdev, &d->fn, 2, 4096, 0);
	if (err < 0)
		goto fail_netdev;

	d->core = npa_core_create(d, &d->fn, &params);
	if (!d->core) {
		err = -ENOMEM;
		goto fail_netdev;
	}
	err = npa_kmod_alloc_irqs(d);
	if (err)
		goto fail_core;
	npa_core_mac(d->core, mac);
	if (is_valid_ether_addr(mac))
		eth_hw_addr_set(nd, mac);
	else
		eth_hw_addr_random(nd);
	nd->netdev_ops = &npa_kmod_ops;
	nd->ethtool_ops = &npa_kmod_ethtool_ops;
	/* The device's limit: one 2176-byte pool buffer per frame (no scatter-gather). */
	nd->min_mtu = ETH_MIN_MTU;
	nd->max_mtu = ETH_DATA_LEN;
	nd->priv_flags |= IFF_LIVE_ADDR_CHANGE;
	nd->features |= NETIF_F_HW_VLAN_CTAG_FILTER;
	nd->hw_features = 0;
	nd->sysfs_groups[0] = &npa_kmod_group;
	netif_napi_add(nd, &d->napi, npa_kmod_poll);

	err = npa_kmod_request_irqs(d);
	if (err)
		goto fail_napi;
	err = register_netdev(nd);
	if (err)
		goto fail_irqs;
	netdev_info(nd, "npa shell (vmxnet3 plugin) on %s, MAC %pM\n", pci_name(pdev), nd->dev_addr);
	mutex_lock(&npa_kmod_owner_lock);
	if (!npa_kmod_owner)
		npa_kmod_owner = d;
	mutex_unlock(&npa_kmod_owner_lock);
	return 0;

fail_irqs:
	npa_kmod_free_irqs(d);
	cancel_work_sync(&d->link_work);
fail_napi:
	netif_napi_del(&d->napi);
	pci_free_irq_vectors(pdev);
fail_core:
	npa_core_destroy(d->core);
fail_netdev:
	free_netdev(nd);
	return err;
}

static void npa_kmod_vf_remove(struct pci_dev *pdev);

static void npa_kmod_remove(struct pci_dev *pdev)
{
	struct npa_kmod_dev *d;
	struct net_device *nd;

	if (pdev->device == 0x10ca) {
		npa_kmod_vf_remove(pdev);
		return;
	}
	d = pci_get_drvdata(pdev);
	nd = d->netdev;
	mutex_lock(&npa_kmod_owner_lock);
	if (npa_kmod_owner == d)
		npa_kmod_owner = NULL;
	mutex_unlock(&npa_kmod_owner_lock);
	unregister_netdev(nd);	/* calls ndo_stop if up */
	cancel_work_sync(&d->rx_mode_work);
	rtnl_lock();
	if (d->vf) {
		/* The VF outlives its owner: its vector leaves the owner's NAPI now, its path
		 * goes with the shell. */
		if (d->vf->irq)
			free_irq(pci_irq_vector(d->vf->fn.pdev, 0), d);
		d->vf->irq = false;
		d->vf->owner = NULL;
		d->vf = NULL;
	}
	rtnl_unlock();
	npa_kmod_free_irqs(d);
	cancel_work_sync(&d->link_work);	/* after the event vector: nothing requeues it */
	netif_napi_del(&d->napi);
	pci_free_irq_vectors(pdev);
	npa_core_destroy(d->core);
	free_netdev(nd);
}

/* ---- the VF: the second path ------------------------------------------------------------ */

static int npa_kmod_vf_probe(struct pci_dev *pdev)
{
	struct npa_kmod_dev *d;
	struct npa_kmod_vf *v;
	u8 mac[ETH_ALEN];
	int err;

	if (!vf || strcmp(vf, pci_name(pdev)) != 0)
		return -ENODEV;	/* not the VF the module parameter names */
	mutex_lock(&npa_kmod_owner_lock);
	d = npa_kmod_owner;
	mutex_unlock(&npa_kmod_owner_lock);
	if (!d)
		return -EPROBE_DEFER;	/* the vmxnet3 has not come yet */
	v = devm_kzalloc(&pdev->dev, sizeof(*v), GFP_KERNEL);
	if (!v)
		return -ENOMEM;
	pci_set_drvdata(pdev, v);
	/* BAR0, the VF's 16 KiB of registers; one vector for its queue pair. */
	err = npa_kmod_fn_setup(pdev, &v->fn, 1, 16384, 1);
	if (err < 0)
		return err;

	rtnl_lock();
	if (netif_running(d->netdev) || d->vf) {
		rtnl_unlock();
		dev_err(&pdev->dev, "%s is up or has a VF already: the VF joins it only while down\n",
			d->netdev->name);
		err = -EBUSY;
		goto fail_vectors;
	}
	err = npa_core_add_vf(d->core, &v->fn, mac);
	if (!err) {
		snprintf(v->irq_name, sizeof(v->irq_name), "%s-vf", pci_name(pdev));
		err = request_irq(pci_irq_vector(pdev, 0), npa_kmod_queue_irq, 0, v->irq_name, d);
		if (err)
			npa_core_remove_vf(d->core);
	}
	if (!err) {
		v->irq = true;
		v->owner = d;
		d->vf = v;
	}
	rtnl_unlock();
	if (err)
		goto fail_vectors;
	netdev_info(d->netdev, "npa: VF %s is path 1 (igbvf plugin), control through the PF's mailbox, PF-assigned MAC %pM\n",
		    pci_name(pdev), mac);
	return 0;

fail_vectors:
	pci_free_irq_vectors(pdev);
	return err;
}

static void npa_kmod_vf_remove(struct pci_dev *pdev)
{
	struct npa_kmod_vf *v = pci_get_drvdata(pdev);
	struct npa_kmod_dev *d;

	rtnl_lock();
	d = v->owner;
	if (d) {
		/* The VF goes under traffic (sriov_numvfs = 0 on the PF, an unbind): npa0 stays
		 * up, the shell falls back to the vmxnet3 while the VF can still be reached
		 * (its bus mastering is cleared after this returns), then its path goes. */
		int tries, err = 0;

		for (tries = 0; netif_running(d->netdev) && tries < 3; tries++) {
			err = npa_core_vf_leaving(d->core);
			if (err <= 0)
				break;
			if (npa_kmod_finish_switch(d)) {
				err = -ETIMEDOUT;
				break;
			}
		}
		if (netif_running(d->netdev) && err) {
			netdev_warn(d->netdev, "npa: no fallback to the vmxnet3 (%d): closing\n", err);
			dev_close(d->netdev);
		} else if (netif_running(d->netdev)) {
			netdev_info(d->netdev, "npa: VF %s removed, the shell runs on the vmxnet3 path\n",
				    pci_name(pdev));
		}
		if (npa_core_remove_vf(d->core))
			netdev_warn(d->netdev, "npa: the VF's path would not go\n");
		d->vf = NULL;
		if (v->irq)
			free_irq(pci_irq_vector(pdev, 0), d);
		v->irq = false;
		v->owner = NULL;
	}
	rtnl_unlock();
	pci_free_irq_vectors(pdev);
}

static int npa_kmod_any_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return pdev->device == 0x10ca ? npa_kmod_vf_probe(pdev) : npa_kmod_probe(pdev, id);
}

static const struct pci_device_id npa_kmod_ids[] = {
	{ PCI_DEVICE(0x15ad, 0x07b0) },	/* VMware vmxnet3 */
	{ PCI_DEVICE(0x8086, 0x10ca) },	/* 82576 VF: only the one `vf` names */
	{ }
};
/* No MODULE_DEVICE_TABLE: Linux's vmxnet3 owns the id's alias, and this module is loaded
 * on purpose (insmod), never by udev for every vmxnet3 in the machine. */

static struct pci_driver npa_kmod_driver = {
	.name = NPA_KMOD_NAME,
	.id_table = npa_kmod_ids,
	.probe = npa_kmod_any_probe,
	.remove = npa_kmod_remove,
};
module_pci_driver(npa_kmod_driver);

MODULE_DESCRIPTION("npa shell over the vmxnet3 plugin, as a Linux network device");
MODULE_LICENSE("GPL");
