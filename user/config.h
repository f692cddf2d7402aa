/*
 * rcptwall configuration: an INI file (parsed with inih) plus command-line
 * overrides.
 *
 * struct rw_config is a plain value: fixed-size fields, no pointers, so a
 * copy is a snapshot and nothing needs freeing. A reload loads into a fresh
 * struct and swaps it in only on success, so a broken file leaves the old
 * configuration in force.
 *
 * Every key is addressed as "section.key" (e.g. "enforce.set_timeout"), in
 * the file as
 *
 *     [enforce]
 *     set_timeout = 10m
 *
 * and from the command line through config_set(). The keys, their meaning
 * and defaults are listed in README.md ("Configuration") and etc/rcptwall.conf.
 */
#ifndef RCPTWALL_CONFIG_H
#define RCPTWALL_CONFIG_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/rcptwall/rcptwall.conf"

#define CONFIG_MAX_IFACES 64
#define CONFIG_MAX_PORTS 16
/* Room for a path; a longer one is an error, never cut. */
#define CONFIG_PATH_MAX 1024

enum rw_mode {
	RW_MODE_MONITOR = 0, /* log verdicts, touch nothing */
	RW_MODE_ENFORCE = 1, /* block flagged connections */
};

struct rw_config {
	/* [general] */
	enum rw_mode mode;
	bool realtime;              /* event loop under SCHED_FIFO: blocks land before the body */

	/* [capture] */
	char interfaces[CONFIG_MAX_IFACES][IF_NAMESIZE]; /* none: every interface that is up */
	size_t n_interfaces;
	uint16_t smtp_ports[CONFIG_MAX_PORTS];  /* plain SMTP, STARTTLS possible */
	size_t n_smtp_ports;
	uint16_t tls_ports[CONFIG_MAX_PORTS];   /* implicit TLS: opaque */
	size_t n_tls_ports;
	uint32_t ring_size;                     /* bytes, power of two, >= page size */
	uint32_t hold_ms;                       /* judgement gate: longest hold; 0: off */

	/* [policy] list files; "" means the embedded default list */
	char protect[CONFIG_PATH_MAX];
	char allow[CONFIG_PATH_MAX];
	char block[CONFIG_PATH_MAX];

	/* [parser] */
	uint64_t max_flows;
	uint64_t max_memory;        /* bytes over all flows */
	uint64_t max_reorder_bytes; /* out-of-order bytes held per flow */

	/* [enforce] */
	uint32_t set_timeout_s;     /* lifetime of an nft set element */
	bool keep_rules_on_exit;
	uint32_t flush_interval_ms; /* nft batch: longest wait of a queued element */
	uint32_t batch_size;        /* nft batch: elements per transaction */
	bool worker_thread;         /* nft and socket destroy off the event loop */

	/* [log] */
	char log_file[CONFIG_PATH_MAX]; /* "-" for stdout */
	bool syslog;
};

/* Fills cfg with the defaults (the embedded policy, monitor mode). */
void config_defaults(struct rw_config *cfg);

/*
 * Loads path on top of the defaults into *out. On error returns a negative
 * errno, leaves *out untouched and writes "FILE:LINE: [section] key: what"
 * into err.
 */
int config_load(const char *path, struct rw_config *out, char *err, size_t errlen);

/*
 * The configuration rcptwall starts with: path if given; else
 * CONFIG_DEFAULT_PATH if that file exists; else the defaults.
 * *used_path tells which file was read (NULL: none).
 */
int config_load_startup(const char *path, struct rw_config *out, const char **used_path,
			char *err, size_t errlen);

/*
 * Sets one key ("section.key") from text, as the file would. Used by the
 * command line. On error returns -EINVAL (unknown key or bad value) with a
 * message naming the key in err; cfg is unchanged then.
 */
int config_set(struct rw_config *cfg, const char *key, const char *value, char *err,
	       size_t errlen);

/*
 * Appends to a list key ("capture.interfaces", "capture.smtp_ports",
 * "capture.tls_ports"), for repeatable options such as --iface. Other keys:
 * -EINVAL. The first append from the command line should replace the
 * file's list: call config_set(cfg, key, "", ...) first where that is meant.
 */
int config_append(struct rw_config *cfg, const char *key, const char *value, char *err,
		  size_t errlen);

const char *config_mode_name(enum rw_mode mode);

#endif /* RCPTWALL_CONFIG_H */
