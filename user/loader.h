/*
 * Loader: owns the smtp_egress BPF skeleton, fills the ports map, attaches
 * the tc egress classifier to interfaces and detaches it again.
 *
 * Filters of ours are recognised by a fixed handle and priority on the
 * clsact egress hook plus the program name: a start after a crash removes
 * the stale ones it finds (a legacy tc filter outlives its process).
 *
 * Functions return 0 or a negative errno and write a message with context
 * ("attach tc egress on eth0: ...") into err for the caller to report.
 */
#ifndef RCPTWALL_LOADER_H
#define RCPTWALL_LOADER_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

/* Our filter on clsact egress: handle and priority ("RW"), program name. */
#define LOADER_TC_HANDLE 0x5257
#define LOADER_TC_PRIORITY 0x5257
#define LOADER_PROG_NAME "rw_egress"

#define LOADER_MAX_IFACES 64

struct loader_opts {
	bool verbose;            /* libbpf debug output on stderr */
	uint32_t ring_size;      /* bytes (power of two, page multiple); 0 = RW_RING_SIZE_DEFAULT */
	uint32_t max_chunks;     /* records per segment, 1..RW_MAX_CHUNKS; 0 = RW_MAX_CHUNKS */
	bool adaptive_wakeup;    /* ring wakeups only when the consumer caught up (default: forced) */
	const uint16_t *smtp_ports; /* NULL: 25 and 587 */
	size_t n_smtp_ports;
	const uint16_t *tls_ports;  /* NULL: 465 */
	size_t n_tls_ports;
};

struct loader_iface {
	int ifindex;
	char name[IF_NAMESIZE];
	bool created_qdisc;     /* the clsact qdisc was made by this run */
	bool had_stale;         /* a filter of an earlier (killed) run was on it */
};

struct loader_maps {
	int ring, flows, blocked, counters, ports;
	int judged, consumer; /* the judgement gate's user-written maps */
};

struct smtp_egress;

struct loader {
	struct smtp_egress *skel;
	struct loader_iface ifaces[LOADER_MAX_IFACES];
	size_t n_ifaces;
	bool have_pid_helper;
	unsigned int stale_removed; /* filters of an earlier run removed at attach */
};

/* Checks privileges and BTF, probes helpers, opens and loads the program. */
int loader_open_load(struct loader *ld, const struct loader_opts *opts, char *err, size_t errlen);

/*
 * Attaches to the named interfaces, or with n == 0 to every interface that
 * is up, not loopback and Ethernet-like. Removes stale filters of ours first.
 */
int loader_attach(struct loader *ld, const char *const *ifnames, size_t n, char *err,
		  size_t errlen);

/*
 * Removes our filter from every interface attached; safe to call twice.
 * The clsact qdisc goes too when it has no filter left (ingress or egress)
 * and was ours: created by this run, or found holding a stale filter of an
 * earlier run (which most likely created it). A qdisc someone else made
 * stays.
 */
void loader_detach_all(struct loader *ld);

/* Detaches and frees everything. */
void loader_close(struct loader *ld);

void loader_map_fds(const struct loader *ld, struct loader_maps *out);
int loader_prog_fd(const struct loader *ld);

/* Sets the kind (enum rw_port_kind) of one destination port. */
int loader_set_port(struct loader *ld, uint16_t port, uint8_t kind);

/* Sums the per-CPU counters into out[RW_CNT_MAX]. */
int loader_read_counters(const struct loader *ld, uint64_t out[RW_CNT_MAX]);

/* Name of a counter for reports ("records", "reserve_fail", ...). */
const char *loader_counter_name(enum rw_counter c);

/*
 * Removes a filter of ours (handle, priority and program name all match)
 * from the egress hook of ifindex. Returns 1 if one was removed, 0 if none
 * was there, -EEXIST if another program sits at our handle and priority.
 */
int loader_remove_stale(int ifindex);

#endif /* RCPTWALL_LOADER_H */
