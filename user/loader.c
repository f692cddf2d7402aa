/* Loads the tc egress program and attaches/detaches it (see loader.h). */
#include "loader.h"

#include <errno.h>
#include <net/if_arp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "smtp_egress.skel.h"
#include "tc_filters.h"

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"

static const uint16_t default_smtp_ports[] = { 25, 587 };
static const uint16_t default_tls_ports[] = { 465 };

static const char *const counter_names[RW_CNT_MAX] = {
	[RW_CNT_RECORDS] = "records",
	[RW_CNT_RESERVE_FAIL] = "reserve_fail",
	[RW_CNT_TRUNC_BYTES] = "trunc_bytes",
	[RW_CNT_BLOCKED_DROPS] = "blocked_drops",
	[RW_CNT_UNPARSABLE] = "unparsable",
	[RW_CNT_IPV6_EXT_UNKNOWN] = "ipv6_ext_unknown",
	[RW_CNT_FLOWS_NEW] = "flows_new",
	[RW_CNT_FLOWS_MIDSTREAM] = "flows_midstream",
	[RW_CNT_BODY_SKIPPED_BYTES] = "body_skipped_bytes",
	[RW_CNT_OPAQUE_PACKETS] = "opaque_packets",
	[RW_CNT_TLS_RECORDS] = "tls_records",
	[RW_CNT_TLS_TRUNC_BYTES] = "tls_trunc_bytes",
	[RW_CNT_TLS_UNATTRIBUTED] = "tls_unattributed",
	[RW_CNT_GATE_HELD] = "gate_held",
	[RW_CNT_GATE_EXPIRED] = "gate_expired",
};

const char *loader_counter_name(enum rw_counter c)
{
	if ((unsigned)c >= RW_CNT_MAX || !counter_names[c])
		return "unknown";
	return counter_names[c];
}

/* libbpf's print callback is process-wide, so its switches are too. */
static bool libbpf_verbose;
static bool libbpf_quiet; /* during probes whose failure is an answer */

/* libbpf is chatty at debug level: only with --verbose. fmt comes from
 * libbpf itself, hence the non-literal format. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !libbpf_verbose)
		return 0;
	if (libbpf_quiet && !libbpf_verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}
#pragma GCC diagnostic pop

static int check_environment(char *err, size_t errlen)
{
	if (geteuid() != 0) {
		snprintf(err, errlen, "must run as root (loading BPF programs and attaching tc filters needs CAP_BPF and CAP_NET_ADMIN)");
		return -EPERM;
	}
	if (access(VMLINUX_BTF, R_OK) != 0) {
		int e = errno;
		snprintf(err, errlen, "kernel BTF %s missing (%s): the kernel needs CONFIG_DEBUG_INFO_BTF=y",
			 VMLINUX_BTF, strerror(e));
		return -e;
	}
	return 0;
}

static int fill_ports(struct loader *ld, const struct loader_opts *o)
{
	const uint16_t *smtp = o->smtp_ports ? o->smtp_ports : default_smtp_ports;
	size_t n_smtp = o->smtp_ports ? o->n_smtp_ports : 2;
	const uint16_t *tls = o->tls_ports ? o->tls_ports : default_tls_ports;
	size_t n_tls = o->tls_ports ? o->n_tls_ports : 1;

	for (size_t i = 0; i < n_smtp; i++) {
		int rc = loader_set_port(ld, smtp[i], RW_PORT_SMTP);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < n_tls; i++) {
		int rc = loader_set_port(ld, tls[i], RW_PORT_TLS);
		if (rc)
			return rc;
	}
	return 0;
}

int loader_open_load(struct loader *ld, const struct loader_opts *opts, char *err, size_t errlen)
{
	static const struct loader_opts defaults;
	const struct loader_opts *o = opts ? opts : &defaults;

	memset(ld, 0, sizeof(*ld));
	libbpf_verbose = o->verbose;
	libbpf_set_print(libbpf_print);

	int rc = check_environment(err, errlen);
	if (rc)
		return rc;

	ld->skel = smtp_egress__open();
	if (!ld->skel) {
		rc = -errno;
		snprintf(err, errlen, "open BPF object: %s", strerror(-rc));
		return rc;
	}
	/* 6.1 refuses bpf_get_current_pid_tgid in tc programs; later kernels take it. */
	ld->have_pid_helper = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS,
						      BPF_FUNC_get_current_pid_tgid, NULL) == 1;
	ld->skel->rodata->have_pid_helper = ld->have_pid_helper;
	if (o->max_chunks > RW_MAX_CHUNKS) {
		snprintf(err, errlen, "max_chunks %u over RW_MAX_CHUNKS (%u)", o->max_chunks, RW_MAX_CHUNKS);
		loader_close(ld);
		return -EINVAL;
	}
	ld->skel->rodata->max_chunks = o->max_chunks ? o->max_chunks : RW_MAX_CHUNKS;
	ld->skel->rodata->adaptive_wakeup = o->adaptive_wakeup;
	if (o->ring_size) {
		rc = bpf_map__set_max_entries(ld->skel->maps.rw_ring, o->ring_size);
		if (rc) {
			snprintf(err, errlen, "ring size %u: %s", o->ring_size, strerror(-rc));
			loader_close(ld);
			return rc;
		}
	}

	rc = smtp_egress__load(ld->skel);
	if (rc) {
		if (rc == -EPERM)
			snprintf(err, errlen, "load BPF program: %s (must run as root with CAP_BPF, CAP_NET_ADMIN)", strerror(-rc));
		else
			snprintf(err, errlen, "load BPF program: %s (run with --verbose for the verifier log)", strerror(-rc));
		loader_close(ld);
		return rc;
	}
	rc = fill_ports(ld, o);
	if (rc) {
		snprintf(err, errlen, "fill ports map: %s", strerror(-rc));
		loader_close(ld);
		return rc;
	}
	return 0;
}

int loader_set_port(struct loader *ld, uint16_t port, uint8_t kind)
{
	uint32_t key = port;
	if (bpf_map_update_elem(bpf_map__fd(ld->skel->maps.rw_ports), &key, &kind, BPF_ANY))
		return -errno;
	return 0;
}

static void egress_hook(struct bpf_tc_hook *hook, int ifindex)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = BPF_TC_EGRESS;
}

/* Name of the program behind a filter, "" if it cannot be read. */
static void prog_name_by_id(uint32_t id, char *name, size_t len)
{
	struct bpf_prog_info info;
	uint32_t info_len = sizeof(info);

	name[0] = '\0';
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &info_len))
		snprintf(name, len, "%s", info.name);
	close(fd);
}

int loader_remove_stale(int ifindex)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);

	egress_hook(&hook, ifindex);
	/* "No filter there" is the usual answer: keep the kernel's
	 * "Cannot find specified filter chain" out of the log. */
	libbpf_quiet = true;
	int rc = bpf_tc_query(&hook, &q);
	libbpf_quiet = false;
	if (rc == -ENOENT || rc == -EINVAL)
		return 0; /* no filter there, or no clsact qdisc at all */
	if (rc)
		return rc;

	char name[BPF_OBJ_NAME_LEN];
	prog_name_by_id(q.prog_id, name, sizeof(name));
	if (strcmp(name, LOADER_PROG_NAME) != 0)
		return -EEXIST; /* someone else's filter: leave it alone */

	LIBBPF_OPTS(bpf_tc_opts, d, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);
	rc = bpf_tc_detach(&hook, &d);
	return rc ? rc : 1;
}

static int attach_one(struct loader *ld, const char *ifname, char *err, size_t errlen)
{
	if (ld->n_ifaces >= LOADER_MAX_IFACES) {
		snprintf(err, errlen, "attach tc egress on %s: more than %d interfaces", ifname,
			 LOADER_MAX_IFACES);
		return -E2BIG;
	}
	int ifindex = (int)if_nametoindex(ifname);
	if (!ifindex) {
		snprintf(err, errlen, "interface %s does not exist", ifname);
		return -ENODEV;
	}
	for (size_t i = 0; i < ld->n_ifaces; i++)
		if (ld->ifaces[i].ifindex == ifindex)
			return 0; /* named twice */

	/* The qdisc first: querying a hook without one makes the kernel
	 * complain through libbpf's log. */
	struct bpf_tc_hook hook;
	egress_hook(&hook, ifindex);
	/* An existing clsact is the usual case; keep the kernel's
	 * "Exclusivity flag on" remark about it out of the log. */
	libbpf_quiet = true;
	int rc = bpf_tc_hook_create(&hook);
	libbpf_quiet = false;
	bool created = rc == 0;
	if (rc && rc != -EEXIST) {
		snprintf(err, errlen, "create clsact qdisc on %s: %s", ifname, strerror(-rc));
		return rc;
	}
	rc = loader_remove_stale(ifindex);
	if (rc == -EEXIST) {
		snprintf(err, errlen,
			 "attach tc egress on %s: another program holds handle 0x%x priority 0x%x",
			 ifname, LOADER_TC_HANDLE, LOADER_TC_PRIORITY);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "remove stale filter on %s: %s", ifname, strerror(-rc));
		return rc;
	}
	ld->stale_removed += rc;
	bool had_stale = rc > 0;

	LIBBPF_OPTS(bpf_tc_opts, a, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY,
		    .prog_fd = bpf_program__fd(ld->skel->progs.rw_egress));
	rc = bpf_tc_attach(&hook, &a);
	if (rc) {
		snprintf(err, errlen, "attach tc egress on %s: %s", ifname, strerror(-rc));
		return rc;
	}
	struct loader_iface *li = &ld->ifaces[ld->n_ifaces++];
	li->ifindex = ifindex;
	snprintf(li->name, sizeof(li->name), "%s", ifname);
	li->created_qdisc = created;
	li->had_stale = had_stale;
	return 0;
}

/* Up, not loopback, and with an Ethernet header (what the program parses). */
static bool iface_wanted(int sock, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return false;
	if (!(ifr.ifr_flags & IFF_UP) || (ifr.ifr_flags & IFF_LOOPBACK))
		return false;
	if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
		return false;
	return ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
}

static int attach_all_up(struct loader *ld, char *err, size_t errlen)
{
	struct if_nameindex *names = if_nameindex();
	if (!names) {
		int e = errno;
		snprintf(err, errlen, "list interfaces: %s", strerror(e));
		return -e;
	}
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		int e = errno;
		if_freenameindex(names);
		snprintf(err, errlen, "list interfaces: socket: %s", strerror(e));
		return -e;
	}
	int rc = 0;
	for (struct if_nameindex *n = names; n->if_index && !rc; n++)
		if (iface_wanted(sock, n->if_name))
			rc = attach_one(ld, n->if_name, err, errlen);
	close(sock);
	if_freenameindex(names);
	if (!rc && ld->n_ifaces == 0) {
		snprintf(err, errlen, "no interface is up (other than loopback): name one with --iface");
		return -ENODEV;
	}
	return rc;
}

int loader_attach(struct loader *ld, const char *const *ifnames, size_t n, char *err,
		  size_t errlen)
{
	int rc = 0;
	if (n == 0)
		rc = attach_all_up(ld, err, errlen);
	for (size_t i = 0; i < n && !rc; i++)
		rc = attach_one(ld, ifnames[i], err, errlen);
	if (rc)
		loader_detach_all(ld); /* all or nothing */
	return rc;
}

/* Deletes the clsact qdisc if neither hook has a filter left. */
static void remove_qdisc_if_empty(const struct loader_iface *li)
{
	if (tc_filters_count(li->ifindex, false) != 0 || tc_filters_count(li->ifindex, true) != 0)
		return; /* in use by someone, or unknown: leave it */
	struct bpf_tc_hook hook;
	egress_hook(&hook, li->ifindex);
	hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS; /* the whole clsact qdisc */
	int rc = bpf_tc_hook_destroy(&hook);
	if (rc && rc != -ENOENT && rc != -EINVAL && rc != -ENODEV)
		fprintf(stderr, "rcptwall: remove clsact qdisc on %s: %s\n", li->name, strerror(-rc));
}

void loader_detach_all(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_ifaces; i++) {
		const struct loader_iface *li = &ld->ifaces[i];
		struct bpf_tc_hook hook;
		egress_hook(&hook, li->ifindex);
		LIBBPF_OPTS(bpf_tc_opts, d, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);
		int rc = bpf_tc_detach(&hook, &d);
		/* Gone already (interface deleted, or someone removed it) is fine. */
		if (rc && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL)
			fprintf(stderr, "rcptwall: detach tc egress on %s: %s\n", li->name,
				strerror(-rc));
		if (li->created_qdisc || li->had_stale)
			remove_qdisc_if_empty(li);
	}
	ld->n_ifaces = 0;
}

void loader_close(struct loader *ld)
{
	loader_detach_all(ld);
	smtp_egress__destroy(ld->skel);
	ld->skel = NULL;
}

void loader_map_fds(const struct loader *ld, struct loader_maps *out)
{
	out->ring = bpf_map__fd(ld->skel->maps.rw_ring);
	out->flows = bpf_map__fd(ld->skel->maps.rw_flows);
	out->blocked = bpf_map__fd(ld->skel->maps.rw_blocked);
	out->counters = bpf_map__fd(ld->skel->maps.rw_counters);
	out->ports = bpf_map__fd(ld->skel->maps.rw_ports);
	out->judged = bpf_map__fd(ld->skel->maps.rw_judged);
	out->consumer = bpf_map__fd(ld->skel->maps.rw_consumer);
}

int loader_prog_fd(const struct loader *ld)
{
	return bpf_program__fd(ld->skel->progs.rw_egress);
}

int loader_read_counters(const struct loader *ld, uint64_t out[RW_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	uint64_t *vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	int fd = bpf_map__fd(ld->skel->maps.rw_counters);
	int rc = 0;
	for (uint32_t k = 0; k < RW_CNT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals)) {
			rc = -errno;
			break;
		}
		for (int c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
	free(vals);
	return rc;
}
