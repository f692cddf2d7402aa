/*
 * rcptwall run: the daemon. Loads the configuration, attaches the capture
 * path (tc egress, and the TLS uprobes where a TLS library is found), and
 * runs the pipeline (parser -> matcher -> enforcer -> log) until SIGINT or
 * SIGTERM; SIGHUP re-reads the configuration's lists. At exit it detaches
 * everything, removes its nft table (unless keep_rules_on_exit) and prints
 * a one-line summary.
 *
 * Layers: run_parse_args() turns argv into struct run_opts;
 * run_load_config() merges file and command line; run_setup() builds the
 * parts in dependency order; run_loop() polls; run_teardown() releases in
 * reverse. --dump swaps the pipeline for a printer of raw records.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "cli.h"
#include "config.h"
#include "dump.h"
#include "enforce.h"
#include "loader.h"
#include "log.h"
#include "match.h"
#include "pipeline.h"
#include "tls.h"

#define RUN_MAX_OVERRIDES 64
#define RUN_POLL_IDLE_MS 100

/* A command-line setting applied on top of the file, at start and at reload. */
struct run_override {
	const char *key;
	const char *value;
	bool append;
};

struct run_opts {
	const char *config_path;           /* NULL: default path if it exists */
	struct run_override overrides[RUN_MAX_OVERRIDES];
	size_t n_overrides;
	const char *tls_libs[TLS_MAX_LIBS];
	size_t n_tls_libs;
	bool no_tls;
	bool dump;
	bool verbose;
	bool help;
};

/* Everything a run holds; released in reverse order by run_teardown(). */
struct run_state {
	struct rw_config cfg;
	const char *cfg_path;              /* file read, NULL for defaults */
	struct loader ld;
	bool ld_open;
	struct capture cap;
	bool cap_open;
	struct rw_log *log;
	struct enforcer *enf;
	struct pipeline *pipe;
	struct tls_probes *tls;
	bool started;                      /* set up and running: a summary is due */
	uint64_t kernel[RW_CNT_MAX];
	uint64_t last_counter_read_ns;
};

/* Set from the signal handler; the only state it may touch. */
static volatile sig_atomic_t run_stop;
static volatile sig_atomic_t run_reload;

static void run_usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    rcptwall run - watch outbound SMTP in the kernel, flag and block lookalike recipients\n"
		"\n"
		"SYNOPSIS\n"
		"    rcptwall run [--config FILE] [--monitor | --enforce] [--iface IF]...\n"
		"                 [--protect FILE] [--allow FILE] [--block FILE] [--log FILE|-]\n"
		"                 [--tls-lib PATH]... [--no-tls] [--dump] [-v]\n"
		"\n"
		"DESCRIPTION\n"
		"    Attaches rcptwall's BPF classifier to the egress (tc clsact) of the\n"
		"    given interfaces, and uprobes to the TLS libraries (libssl.so.3,\n"
		"    libgnutls.so.30) so that STARTTLS and port-465 conversations are read\n"
		"    as plaintext. Every RCPT TO of every outbound SMTP conversation (ports\n"
		"    25 and 587; 465 through TLS) is checked against the policy. A recipient\n"
		"    whose domain is a lookalike of a protected domain is logged (monitor\n"
		"    mode) or, in enforce mode, its connection is blocked before the\n"
		"    message body leaves: the kernel drops the flow, table inet rcptwall\n"
		"    rejects it, and the socket is destroyed, so the MTA keeps the message\n"
		"    queued as deferred.\n"
		"\n"
		"    Runs until SIGINT or SIGTERM. SIGHUP re-reads the configuration file\n"
		"    and the lists; a broken one is refused and the old policy stays.\n"
		"\n"
		"OPTIONS\n"
		"    -c, --config FILE   INI configuration (default " CONFIG_DEFAULT_PATH "\n"
		"                        if it exists, else built-in defaults and the embedded\n"
		"                        policy). Options below override the file.\n"
		"    -m, --monitor       log verdicts only (the default)\n"
		"    -e, --enforce       block connections with flagged recipients\n"
		"    -i, --iface IF      attach to IF; repeatable. Default: every interface\n"
		"                        that is up, not loopback and Ethernet-like\n"
		"        --protect FILE  protected domains and suffixes, one per line\n"
		"        --allow FILE    never flagged\n"
		"        --block FILE    always flagged\n"
		"    -l, --log FILE      JSON Lines events to FILE, or - for stdout\n"
		"        --tls-lib PATH  attach the TLS uprobes to PATH (repeatable) instead\n"
		"                        of the libraries found with ldconfig -p\n"
		"        --no-tls        no TLS uprobes: STARTTLS flows stay opaque\n"
		"    -d, --dump          print each flow's client bytes (escaped) instead of\n"
		"                        judging them\n"
		"    -v, --verbose       libbpf debug output; with --dump, record headers\n"
		"    -h, --help          this text\n"
		"\n"
		"EXIT STATUS\n"
		"    0 clean stop on a signal, 1 runtime failure (load, attach, ring,\n"
		"    nftables), 2 bad command line or configuration.\n"
		"\n"
		"FILES\n"
		"    " CONFIG_DEFAULT_PATH "   configuration (see README.md, etc/rcptwall.conf)\n"
		"\n"
		"REQUIREMENTS\n"
		"    root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for uprobes), a kernel\n"
		"    with BTF (/sys/kernel/btf/vmlinux).\n");
}

static int add_override(struct run_opts *o, const char *key, const char *value, bool append)
{
	if (o->n_overrides >= RUN_MAX_OVERRIDES) {
		fprintf(stderr, "rcptwall run: too many options\n");
		return -EINVAL;
	}
	o->overrides[o->n_overrides++] = (struct run_override){ key, value, append };
	return 0;
}

enum { OPT_PROTECT = 256, OPT_ALLOW, OPT_BLOCK, OPT_TLS_LIB, OPT_NO_TLS };

/* Returns 0, or -EINVAL after printing what is wrong. */
static int run_parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "monitor", no_argument, NULL, 'm' },
		{ "enforce", no_argument, NULL, 'e' },
		{ "iface", required_argument, NULL, 'i' },
		{ "protect", required_argument, NULL, OPT_PROTECT },
		{ "allow", required_argument, NULL, OPT_ALLOW },
		{ "block", required_argument, NULL, OPT_BLOCK },
		{ "log", required_argument, NULL, 'l' },
		{ "tls-lib", required_argument, NULL, OPT_TLS_LIB },
		{ "no-tls", no_argument, NULL, OPT_NO_TLS },
		{ "dump", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 1;
	bool iface_seen = false;
	int c, err = 0;
	while (!err && (c = getopt_long(argc, argv, "c:mei:l:dvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config_path = optarg; break;
		case 'm': err = add_override(o, "general.mode", "monitor", false); break;
		case 'e': err = add_override(o, "general.mode", "enforce", false); break;
		case 'i':
			/* The first --iface replaces the file's list; later ones add. */
			if (!iface_seen)
				err = add_override(o, "capture.interfaces", "", false);
			iface_seen = true;
			if (!err)
				err = add_override(o, "capture.interfaces", optarg, true);
			break;
		case OPT_PROTECT: err = add_override(o, "policy.protect", optarg, false); break;
		case OPT_ALLOW: err = add_override(o, "policy.allow", optarg, false); break;
		case OPT_BLOCK: err = add_override(o, "policy.block", optarg, false); break;
		case 'l': err = add_override(o, "log.file", optarg, false); break;
		case OPT_TLS_LIB:
			if (o->n_tls_libs >= TLS_MAX_LIBS) {
				fprintf(stderr, "rcptwall run: at most %d --tls-lib\n", TLS_MAX_LIBS);
				return -EINVAL;
			}
			o->tls_libs[o->n_tls_libs++] = optarg;
			break;
		case OPT_NO_TLS: o->no_tls = true; break;
		case 'd': o->dump = true; break;
		case 'v': o->verbose = true; break;
		case 'h': o->help = true; break;
		default: return -EINVAL; /* getopt printed the reason */
		}
	}
	if (err)
		return err;
	if (optind < argc) {
		fprintf(stderr, "rcptwall run: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* File (or defaults) plus command-line overrides, into a fresh struct. */
static int run_load_config(const struct run_opts *o, struct rw_config *cfg,
			   const char **used_path, char *err, size_t errlen)
{
	int rc = config_load_startup(o->config_path, cfg, used_path, err, errlen);
	for (size_t i = 0; !rc && i < o->n_overrides; i++) {
		const struct run_override *ov = &o->overrides[i];
		rc = ov->append ? config_append(cfg, ov->key, ov->value, err, errlen)
				: config_set(cfg, ov->key, ov->value, err, errlen);
	}
	return rc;
}

static struct matcher *run_new_matcher(const struct rw_config *cfg, char *err, size_t errlen)
{
	struct match_policy_files files = {
		.protect = cfg->protect[0] ? cfg->protect : NULL,
		.allow = cfg->allow[0] ? cfg->allow : NULL,
		.block = cfg->block[0] ? cfg->block : NULL,
	};
	return matcher_new(&files, err, errlen);
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		run_reload = 1;
	else
		run_stop = 1;
}

/* No SA_RESTART: the ring poll must return at once on a signal. */
static int install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGHUP, &sa, NULL))
		return -errno;
	/* A closed pipe on stdout must end in a clean detach, not death. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int print_record(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	(void)ctx;
	dump_record(stdout, hdr, data);
	return ferror(stdout) ? -EPIPE : 0;
}

static int print_record_verbose(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	(void)ctx;
	dump_record_verbose(stdout, hdr, data);
	return ferror(stdout) ? -EPIPE : 0;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void print_attached(const struct run_state *s)
{
	fprintf(stderr, "rcptwall run: watching");
	for (size_t i = 0; i < s->ld.n_ifaces; i++)
		fprintf(stderr, " %s", s->ld.ifaces[i].name);
	if (s->ld.stale_removed)
		fprintf(stderr, " (removed %u stale filter%s of an earlier run)", s->ld.stale_removed,
			s->ld.stale_removed == 1 ? "" : "s");
	fprintf(stderr, "\n");
}

static void announce_mode(const struct run_state *s)
{
	if (s->cfg.mode == RW_MODE_ENFORCE)
		fprintf(stderr, "rcptwall run: ENFORCE mode: connections to lookalike domains "
				"will be blocked\n");
	else
		fprintf(stderr, "rcptwall run: MONITOR mode: lookalikes are only logged, nothing "
				"is blocked (use --enforce to block)\n");
}

/* TLS uprobes are a bonus: without them STARTTLS flows stay opaque, so a
 * failure is a warning, not a reason to stop watching plain SMTP. */
static void run_setup_tls(struct run_state *s, const struct run_opts *o,
			  const struct loader_maps *maps)
{
	if (o->no_tls)
		return;
	struct tls_probe_opts to = {
		.ring_fd = maps->ring,
		.flows_fd = maps->flows,
		.counters_fd = maps->counters,
		.lib_paths = o->n_tls_libs ? o->tls_libs : NULL,
		.n_lib_paths = o->n_tls_libs,
	};
	int rc = tls_probes_open(&to, &s->tls);
	if (!rc)
		rc = tls_probes_attach(s->tls);
	if (rc < 0) {
		fprintf(stderr, "rcptwall run: warning: TLS uprobes not attached (%s): STARTTLS "
				"and port 465 conversations stay unreadable\n", strerror(-rc));
		tls_probes_close(s->tls);
		s->tls = NULL;
		return;
	}
	for (size_t i = 0; i < tls_probes_lib_count(s->tls); i++) {
		const struct tls_lib *l = tls_probes_lib(s->tls, i);
		if (l->n_probes)
			fprintf(stderr, "rcptwall run: TLS plaintext from %s\n", l->path);
	}
}

static int run_setup_pipeline(struct run_state *s, const struct loader_maps *maps, char *err,
			      size_t errlen)
{
	struct matcher *m = run_new_matcher(&s->cfg, err, errlen);
	if (!m)
		return -EINVAL;
	struct rw_log_opts lo = { .path = s->cfg.log_file, .syslog = s->cfg.syslog, .batched = true };
	int rc = log_open(&lo, &s->log, err, errlen);
	if (!rc) {
		struct enforcer_opts eo = {
			.mode = s->cfg.mode,
			.blocked_map_fd = maps->blocked,
			.set_timeout_s = s->cfg.set_timeout_s,
			.keep_rules_on_exit = s->cfg.keep_rules_on_exit,
			.flush_interval_ms = s->cfg.flush_interval_ms,
			.batch_size = s->cfg.batch_size,
			.worker_thread = s->cfg.worker_thread,
		};
		rc = enforcer_new(&eo, &s->enf, err, errlen);
	}
	if (!rc) {
		struct smtp_limits lim = {
			.max_flows = s->cfg.max_flows,
			.max_bytes_total = s->cfg.max_memory,
			.max_ooo_bytes = s->cfg.max_reorder_bytes,
		};
		/* Monitor mode never delays traffic: no gate there. */
		struct pipeline_gate gate = {
			.judged_fd = maps->judged,
			.consumer_fd = maps->consumer,
			.hold_ns = (uint64_t)s->cfg.hold_ms * 1000000ull,
		};
		bool use_gate = s->cfg.mode == RW_MODE_ENFORCE && s->cfg.hold_ms > 0;
		struct pipeline_opts po = {
			.limits = &lim,
			.matcher = m,
			.enforcer = s->enf,
			.log = s->log,
			.flows_fd = maps->flows,
			.log_recipients = true,
			.gate = use_gate ? &gate : NULL,
		};
		rc = pipeline_new(&po, &s->pipe, err, errlen);
		if (!rc)
			return 0;
	}
	matcher_free(m);
	return rc;
}

/*
 * Real-time priority for this thread only (the enforcer's worker already
 * runs and keeps its ordinary priority): the race against the message
 * body is lost if the loop waits behind busy processes for a CPU.
 */
static void run_set_realtime(const struct run_state *s)
{
	if (!s->cfg.realtime || !s->pipe)
		return;
	struct sched_param sp = { .sched_priority = 10 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		fprintf(stderr, "rcptwall run: warning: real-time priority refused (%s); "
				"blocks may land late on a busy host\n", strerror(errno));
}

/* Builds everything in dependency order. 0, or an exit code after reporting. */
static int run_setup(struct run_state *s, const struct run_opts *o)
{
	char err[512];
	struct loader_opts lopts = {
		.verbose = o->verbose,
		.ring_size = s->cfg.ring_size,
		.smtp_ports = s->cfg.smtp_ports,
		.n_smtp_ports = s->cfg.n_smtp_ports,
		.tls_ports = s->cfg.tls_ports,
		.n_tls_ports = s->cfg.n_tls_ports,
	};
	if (loader_open_load(&s->ld, &lopts, err, sizeof(err))) {
		fprintf(stderr, "rcptwall run: %s\n", err);
		return RW_EXIT_FAILURE;
	}
	s->ld_open = true;
	struct loader_maps maps;
	loader_map_fds(&s->ld, &maps);

	capture_record_fn fn = o->verbose ? print_record_verbose : print_record;
	void *ctx = NULL;
	if (!o->dump) {
		int rc = run_setup_pipeline(s, &maps, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "rcptwall run: %s\n", err);
			return rc == -EINVAL ? RW_EXIT_USAGE : RW_EXIT_FAILURE;
		}
		fn = pipeline_on_record;
		ctx = s->pipe;
	}
	int rc = capture_open(&s->cap, maps.ring, fn, ctx);
	if (rc) {
		fprintf(stderr, "rcptwall run: open ring buffer: %s\n", strerror(-rc));
		return RW_EXIT_FAILURE;
	}
	s->cap_open = true;
	run_setup_tls(s, o, &maps);

	const char *ifaces[CONFIG_MAX_IFACES];
	for (size_t i = 0; i < s->cfg.n_interfaces; i++)
		ifaces[i] = s->cfg.interfaces[i];
	if (loader_attach(&s->ld, ifaces, s->cfg.n_interfaces, err, sizeof(err))) {
		fprintf(stderr, "rcptwall run: %s\n", err);
		return RW_EXIT_FAILURE;
	}
	print_attached(s);
	run_set_realtime(s);
	return 0;
}

/* SIGHUP: new file and lists, or the old ones with a log line saying why. */
static void run_do_reload(struct run_state *s, const struct run_opts *o)
{
	char err[512];
	struct rw_config fresh;
	const char *path = NULL;
	struct matcher *m = NULL;
	if (!run_load_config(o, &fresh, &path, err, sizeof(err)))
		m = run_new_matcher(&fresh, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "rcptwall run: reload refused, old policy stays: %s\n", err);
		log_lifecycle(s->log, LOG_RELOAD, s->cfg.mode, false, err, NULL, 0);
		return;
	}
	matcher_free(pipeline_swap_matcher(s->pipe, m));
	/* Lists take effect now; capture, mode and log settings need a restart. */
	memcpy(s->cfg.protect, fresh.protect, sizeof(s->cfg.protect));
	memcpy(s->cfg.allow, fresh.allow, sizeof(s->cfg.allow));
	memcpy(s->cfg.block, fresh.block, sizeof(s->cfg.block));
	int rc = log_reopen(s->log, err, sizeof(err));
	if (rc)
		fprintf(stderr, "rcptwall run: reopen log: %s\n", err);
	struct matcher_info mi;
	matcher_info(m, &mi);
	snprintf(err, sizeof(err), "config %s; %zu protected, %zu allowed, %zu blocked entries",
		 path ? path : "(defaults)", mi.protected_entries, mi.allow_entries,
		 mi.block_entries);
	fprintf(stderr, "rcptwall run: reloaded: %s\n", err);
	log_lifecycle(s->log, LOG_RELOAD, s->cfg.mode, true, err, NULL, 0);
}

/* Kernel loss counters are read about once a second: a map read per CPU. */
static void run_tick(struct run_state *s)
{
	if (!s->pipe)
		return;
	uint64_t now = monotonic_ns();
	const uint64_t *kc = NULL;
	if (now - s->last_counter_read_ns >= 1000000000ull &&
	    !loader_read_counters(&s->ld, s->kernel)) {
		s->last_counter_read_ns = now;
		kc = s->kernel;
	}
	pipeline_tick(s->pipe, kc);
}

/* Polls until a signal or an error. 0 on a clean stop. */
static int run_loop(struct run_state *s, const struct run_opts *o)
{
	while (!run_stop) {
		if (run_reload && s->pipe) {
			run_reload = 0;
			run_do_reload(s, o);
		}
		int timeout = s->pipe ? pipeline_poll_timeout_ms(s->pipe, RUN_POLL_IDLE_MS)
				      : RUN_POLL_IDLE_MS;
		int rc = capture_poll(&s->cap, timeout);
		if (rc < 0) {
			fprintf(stderr, "rcptwall run: ring buffer: %s\n", strerror(-rc));
			return rc;
		}
		run_tick(s);
	}
	/* Drain what arrived before the signal. */
	int rc = capture_consume(&s->cap);
	return rc < 0 ? rc : 0;
}

static void print_summary(struct run_state *s)
{
	if (loader_read_counters(&s->ld, s->kernel))
		memset(s->kernel, 0, sizeof(s->kernel));
	if (!s->pipe) {
		fprintf(stderr, "rcptwall run: counters:");
		for (int i = 0; i < RW_CNT_MAX; i++)
			fprintf(stderr, " %s=%llu", loader_counter_name(i),
				(unsigned long long)s->kernel[i]);
		fprintf(stderr, " invalid_records=%llu\n",
			(unsigned long long)s->cap.stats.invalid);
		return;
	}
	pipeline_tick(s->pipe, s->kernel); /* last loss report */
	struct pipeline_stats ps;
	pipeline_stats(s->pipe, &ps);
	unsigned long long losses = ps.losses + s->cap.stats.invalid;
	struct log_count counts[] = {
		{ "flows", ps.parser.flows_seen },     { "recipients", ps.recipients },
		{ "flagged", ps.flagged },             { "blocked", ps.blocked },
		{ "would_block", ps.would_block },     { "losses", losses },
		{ "records", ps.records },             { "ring_reserve_fail", s->kernel[RW_CNT_RESERVE_FAIL] },
		{ "gate_held", s->kernel[RW_CNT_GATE_HELD] },
		{ "gate_expired", s->kernel[RW_CNT_GATE_EXPIRED] },
	};
	fprintf(stderr,
		"rcptwall run: summary: flows=%llu recipients=%llu flagged=%llu blocked=%llu "
		"would_block=%llu losses=%llu (records=%llu ring_reserve_fail=%llu "
		"truncated_bytes=%llu parser_gaps=%llu flows_evicted=%llu gate_held=%llu "
		"gate_expired=%llu)\n",
		(unsigned long long)ps.parser.flows_seen, (unsigned long long)ps.recipients,
		(unsigned long long)ps.flagged, (unsigned long long)ps.blocked,
		(unsigned long long)ps.would_block, losses, (unsigned long long)ps.records,
		(unsigned long long)s->kernel[RW_CNT_RESERVE_FAIL],
		(unsigned long long)(s->kernel[RW_CNT_TRUNC_BYTES] + s->kernel[RW_CNT_TLS_TRUNC_BYTES]),
		(unsigned long long)ps.parser.gaps, (unsigned long long)ps.parser.flows_evicted,
		(unsigned long long)s->kernel[RW_CNT_GATE_HELD],
		(unsigned long long)s->kernel[RW_CNT_GATE_EXPIRED]);
	log_lifecycle(s->log, LOG_STOP, s->cfg.mode, true, NULL, counts,
		      sizeof(counts) / sizeof(counts[0]));
}

static void run_teardown(struct run_state *s)
{
	if (s->pipe)
		pipeline_gate_open(s->pipe); /* no more acknowledgements from here on */
	tls_probes_close(s->tls);
	if (s->ld_open)
		loader_detach_all(&s->ld);
	if (s->started)
		print_summary(s);
	if (s->cap_open)
		capture_close(&s->cap);
	pipeline_free(s->pipe);
	enforcer_free(s->enf); /* after detach: queued blocks are completed first */
	log_close(s->log);
	if (s->ld_open)
		loader_close(&s->ld);
}

int cmd_run(int argc, char **argv)
{
	static struct run_opts opts; /* large; not on the stack */
	if (run_parse_args(argc, argv, &opts)) {
		fprintf(stderr, "Try: rcptwall run --help\n");
		return RW_EXIT_USAGE;
	}
	if (opts.help) {
		run_usage(stdout);
		return RW_EXIT_OK;
	}
	static struct run_state s;
	memset(&s, 0, sizeof(s));
	char err[512];
	if (run_load_config(&opts, &s.cfg, &s.cfg_path, err, sizeof(err))) {
		fprintf(stderr, "rcptwall run: %s\n", err);
		return RW_EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	run_stop = run_reload = 0;
	if (install_signals()) {
		fprintf(stderr, "rcptwall run: install signal handlers: %s\n", strerror(errno));
		return RW_EXIT_FAILURE;
	}
	if (!opts.dump) {
		fprintf(stderr, "rcptwall run: configuration: %s\n",
			s.cfg_path ? s.cfg_path : "built-in defaults");
		announce_mode(&s);
	}
	int rc = run_setup(&s, &opts);
	s.started = rc == 0;
	if (!rc) {
		if (s.log)
			log_lifecycle(s.log, LOG_START, s.cfg.mode, true,
				      s.cfg_path ? s.cfg_path : "built-in defaults", NULL, 0);
		rc = run_loop(&s, &opts) ? RW_EXIT_FAILURE : RW_EXIT_OK;
	}
	run_teardown(&s);
	return rc;
}
