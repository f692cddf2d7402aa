/*
 * rcptwall run: load and attach the capture path, consume the ring until
 * SIGINT/SIGTERM, then detach everything and print the counters.
 *
 * Built in layers so the full pipeline can slot in: run_parse_args() fills
 * struct run_opts, run_pick_consumer() chooses what handles each record
 * (today: --dump / --verbose printers, or nothing), run_loop() polls.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "cli.h"
#include "dump.h"
#include "loader.h"

struct run_opts {
	const char *ifaces[LOADER_MAX_IFACES];
	size_t n_ifaces;
	bool dump;
	bool verbose;
	bool help;
};

/* What consumes the records; ctx is handed back to fn. */
struct run_consumer {
	capture_record_fn fn;
	void *ctx;
};

/* Set from the signal handler; the only state it may touch. */
static volatile sig_atomic_t run_stop;

static void run_usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    rcptwall run - watch outbound SMTP in the kernel\n"
		"\n"
		"SYNOPSIS\n"
		"    rcptwall run [--iface IF]... [--dump] [-v]\n"
		"\n"
		"DESCRIPTION\n"
		"    Attaches rcptwall's BPF classifier to the egress (tc clsact) of the\n"
		"    given interfaces and reads every byte local SMTP clients send to ports\n"
		"    25 and 587 (465, implicit TLS, is tracked but unreadable). Runs until\n"
		"    SIGINT or SIGTERM, then removes its tc filters and prints counters of\n"
		"    what it saw and anything it lost.\n"
		"\n"
		"    Filters left behind by a killed rcptwall (kill -9) keep running in the\n"
		"    kernel; the next start finds and replaces them.\n"
		"\n"
		"OPTIONS\n"
		"    -i, --iface IF\n"
		"        Attach to IF; repeat for several. Default: every interface that is\n"
		"        up, not loopback and Ethernet-like.\n"
		"    -d, --dump\n"
		"        Print the client bytes of each flow, one line per ring record,\n"
		"        escaped (\\r \\n \\xHH):\n"
		"        198.51.100.1:40000 -> 198.51.100.2:25 C: RCPT TO:<a@b>\\r\\n\n"
		"    -v, --verbose\n"
		"        libbpf debug output (verifier log on load failures) and every\n"
		"        record with its header fields.\n"
		"    -h, --help\n"
		"        This text.\n"
		"\n"
		"EXIT STATUS\n"
		"    0 clean stop on a signal, 1 runtime failure (load, attach, ring),\n"
		"    2 bad command line.\n"
		"\n"
		"REQUIREMENTS\n"
		"    root (CAP_BPF, CAP_NET_ADMIN), a kernel with BTF\n"
		"    (/sys/kernel/btf/vmlinux).\n");
}

/* Returns 0, or -EINVAL after printing what is wrong. */
static int run_parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "dump", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 1;
	int c;
	while ((c = getopt_long(argc, argv, "i:dvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (o->n_ifaces >= LOADER_MAX_IFACES) {
				fprintf(stderr, "rcptwall run: at most %d --iface\n", LOADER_MAX_IFACES);
				return -EINVAL;
			}
			if (strlen(optarg) >= IF_NAMESIZE || !optarg[0]) {
				fprintf(stderr, "rcptwall run: bad interface name '%s'\n", optarg);
				return -EINVAL;
			}
			o->ifaces[o->n_ifaces++] = optarg;
			break;
		case 'd':
			o->dump = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			o->help = true;
			break;
		default:
			return -EINVAL; /* getopt printed the reason */
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rcptwall run: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
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

static struct run_consumer run_pick_consumer(const struct run_opts *o)
{
	struct run_consumer c = { NULL, NULL };
	if (o->verbose)
		c.fn = print_record_verbose;
	else if (o->dump)
		c.fn = print_record;
	return c;
}

/* Polls until a signal or an error. 0 on a clean stop. */
static int run_loop(struct capture *cap)
{
	while (!run_stop) {
		int rc = capture_poll(cap, 100);
		if (rc < 0) {
			fprintf(stderr, "rcptwall run: ring buffer: %s\n", strerror(-rc));
			return rc;
		}
	}
	/* Drain what arrived before the signal. */
	int rc = capture_consume(cap);
	return rc < 0 ? rc : 0;
}

static void print_summary(const struct loader *ld, const struct capture *cap)
{
	uint64_t cnt[RW_CNT_MAX];
	int rc = loader_read_counters(ld, cnt);
	if (rc) {
		fprintf(stderr, "rcptwall run: read counters: %s\n", strerror(-rc));
		return;
	}
	fprintf(stderr, "rcptwall run: counters:");
	for (int i = 0; i < RW_CNT_MAX; i++)
		fprintf(stderr, " %s=%llu", loader_counter_name(i), (unsigned long long)cnt[i]);
	fprintf(stderr, " invalid_records=%llu\n", (unsigned long long)cap->stats.invalid);
}

static void print_attached(const struct loader *ld)
{
	fprintf(stderr, "rcptwall run: watching");
	for (size_t i = 0; i < ld->n_ifaces; i++)
		fprintf(stderr, " %s", ld->ifaces[i].name);
	if (ld->stale_removed)
		fprintf(stderr, " (removed %u stale filter%s of an earlier run)", ld->stale_removed,
			ld->stale_removed == 1 ? "" : "s");
	fprintf(stderr, "\n");
}

int cmd_run(int argc, char **argv)
{
	struct run_opts opts;
	if (run_parse_args(argc, argv, &opts)) {
		fprintf(stderr, "Try: rcptwall run --help\n");
		return RW_EXIT_USAGE;
	}
	if (opts.help) {
		run_usage(stdout);
		return RW_EXIT_OK;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	run_stop = 0;
	if (install_signals()) {
		fprintf(stderr, "rcptwall run: install signal handlers: %s\n", strerror(errno));
		return RW_EXIT_FAILURE;
	}

	char err[256];
	struct loader ld;
	struct loader_opts lopts = { .verbose = opts.verbose };
	if (loader_open_load(&ld, &lopts, err, sizeof(err))) {
		fprintf(stderr, "rcptwall run: %s\n", err);
		return RW_EXIT_FAILURE;
	}
	struct loader_maps maps;
	loader_map_fds(&ld, &maps);
	struct run_consumer consumer = run_pick_consumer(&opts);
	struct capture cap;
	int rc = capture_open(&cap, maps.ring, consumer.fn, consumer.ctx);
	if (rc) {
		fprintf(stderr, "rcptwall run: open ring buffer: %s\n", strerror(-rc));
		loader_close(&ld);
		return RW_EXIT_FAILURE;
	}
	if (loader_attach(&ld, opts.ifaces, opts.n_ifaces, err, sizeof(err))) {
		fprintf(stderr, "rcptwall run: %s\n", err);
		capture_close(&cap);
		loader_close(&ld);
		return RW_EXIT_FAILURE;
	}
	print_attached(&ld);

	rc = run_loop(&cap);
	loader_detach_all(&ld);
	print_summary(&ld, &cap);
	capture_close(&cap);
	loader_close(&ld);
	return rc ? RW_EXIT_FAILURE : RW_EXIT_OK;
}
