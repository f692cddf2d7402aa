/*
 * What a uprobe costs per call on this machine: the floor under the TLS
 * capture's overhead (bench/tls_overhead.sh, bpf/tls_uprobe.bpf.c).
 *
 * One process, one run, side by side (ns per call, median of ROUNDS rounds
 * of CALLS calls each, every configuration attached, measured, detached in
 * turn):
 *
 *   A. empty programs (r0 = 0; exit) on small assembly functions of this
 *      binary, chosen by their first instruction, because x86 uprobes
 *      either emulate the probed instruction (push, call, jmp, jcc, nop)
 *      or single-step it out of line, which is a second trap (#DB):
 *        sub  $8,%rsp  first   - as libssl's SSL_write / SSL_write_ex and
 *                                GnuTLS's gnutls_record_send on Debian 12
 *        push %rbx     first   - emulated
 *        endbr64       first   - is it emulated on this kernel? (probe at
 *                                +0, and at +4, the push after it)
 *        nop5          first   - what USDT probes and -fpatchable-function-
 *                                entry leave; kernels from 6.18 turn a uprobe
 *                                there into a call and a syscall (no trap)
 *      entry only, return only (uretprobe), entry and return;
 *   B. the raw_tp/sys_enter hook: a 1-byte write(2) to /dev/null with no
 *      hook, an empty raw_tp program, and rcptwall's tls_sys_enter (which
 *      every syscall of every process on the host pays while it runs);
 *   C. rcptwall's own programs (tls_ssl_write_ex + its return probe, then
 *      with tls_sys_enter, as user/tls.c attaches them) on a stub with
 *      SSL_write_ex's arguments and a push first: without a syscall, next
 *      to empty programs on the same stub (what the programs themselves
 *      cost); then writing one byte to a loopback TCP socket inside the
 *      call: flow not watched (one hash miss, counted unattributed), and
 *      watched in DATA phase (one 1 KiB tail record per call through the
 *      ring, consumed by a thread as `rcptwall run` does);
 *   D. the real thing: SSL_write_ex of 16 KiB on a TLS 1.3 connection
 *      (system libssl.so.3, AES-GCM) whose ciphertext goes to a loopback
 *      TCP socket, without probes and with user/tls.c's attach on that
 *      libssl (every probe rcptwall sets), unwatched and watched.
 *
 * Then the throughput ratio each extra cost implies for a sender whose
 * write takes BASE_US microseconds without probes (tls_overhead.sh passes
 * the time per write it measured; default 40 us, its 16 KiB figure on the
 * project VM): ratio = BASE / (BASE + extra).
 *
 * x86-64 only (the assembly targets); needs root.
 *
 *   bench_uprobe [-b BASE_US] [-n CALLS] [-r ROUNDS]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "rcptwall/rcptwall.h"
#include "tls.h"
#include "tls_uprobe.skel.h"

#if defined(__x86_64__)

/* ---- probe targets ------------------------------------------------------- */

/* Each returns its third argument; the first instruction is the point. */
int rwb_sub(void *a, const void *b, size_t n);
int rwb_push(void *a, const void *b, size_t n);
int rwb_endbr(void *a, const void *b, size_t n);
int rwb_nop5(void *a, const void *b, size_t n);
/* int rwb_write_ex(void *ssl, const void *buf, size_t num, size_t *written):
 * SSL_write_ex's arguments and result: *written = num, write(rwb_sink_fd,
 * buf, 1) if the fd is >= 0, return 1. Its first instruction is a push (as
 * the write core's, where rcptwall probes libssl here), so its figures
 * compare with A's "push first" rows. */
int rwb_write_ex(void *ssl, const void *buf, size_t num, size_t *written);
int rwb_sink_fd = -1;

__asm__(".text\n"
	".globl rwb_sub\n.type rwb_sub,@function\n"
	"rwb_sub:\n"
	"	sub $8,%rsp\n"
	"	mov %rdx,%rax\n"
	"	add $8,%rsp\n"
	"	ret\n"
	".size rwb_sub,.-rwb_sub\n"
	".globl rwb_push\n.type rwb_push,@function\n"
	"rwb_push:\n"
	"	push %rbx\n"
	"	mov %rdx,%rax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size rwb_push,.-rwb_push\n"
	".globl rwb_endbr\n.type rwb_endbr,@function\n"
	"rwb_endbr:\n"
	"	.byte 0xf3,0x0f,0x1e,0xfa\n" /* endbr64, whatever -fcf-protection says */
	"	push %rbx\n"
	"	mov %rdx,%rax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size rwb_endbr,.-rwb_endbr\n"
	".globl rwb_nop5\n.type rwb_nop5,@function\n"
	"rwb_nop5:\n"
	"	.byte 0x0f,0x1f,0x44,0x00,0x00\n" /* nopl 0(%rax,%rax,1), as USDT probes */
	"	push %rbx\n"
	"	mov %rdx,%rax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size rwb_nop5,.-rwb_nop5\n"
	".globl rwb_write_ex\n.type rwb_write_ex,@function\n"
	"rwb_write_ex:\n"
	"	push %rbx\n"
	"	mov %rdx,(%rcx)\n"
	"	mov rwb_sink_fd(%rip),%edi\n"
	"	test %edi,%edi\n"
	"	js 1f\n"
	"	mov $1,%eax\n" /* write(fd, buf, 1); buf is still in %rsi */
	"	mov $1,%edx\n"
	"	syscall\n"
	"1:	mov $1,%eax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size rwb_write_ex,.-rwb_write_ex\n");

/* ---- timing ------------------------------------------------------------------ */

static unsigned g_calls = 20000, g_rounds = 7;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef void (*loop_fn)(unsigned calls, void *arg);

/* Median over the rounds of the ns per call; one warm-up round first. */
static double measure(loop_fn fn, void *arg, unsigned calls)
{
	double per[64];
	unsigned rounds = g_rounds < 64 ? g_rounds : 64;

	fn(calls / 10 + 1, arg);
	for (unsigned r = 0; r < rounds; r++) {
		double t0 = now_ns();

		fn(calls, arg);
		per[r] = (now_ns() - t0) / calls;
	}
	return median(per, rounds);
}

typedef int (*target_fn)(void *, const void *, size_t);

static void loop_target(unsigned calls, void *arg)
{
	target_fn f = (target_fn)arg;
	volatile int sink = 0;

	for (unsigned i = 0; i < calls; i++)
		sink += f(NULL, NULL, i);
	(void)sink;
}

static void loop_write_ex(unsigned calls, void *arg)
{
	static char buf[16384];
	size_t written;

	(void)arg;
	for (unsigned i = 0; i < calls; i++)
		if (rwb_write_ex(NULL, buf, sizeof(buf), &written) != 1)
			abort();
}

static void loop_devnull(unsigned calls, void *arg)
{
	int fd = *(int *)arg;
	char c = 0;

	for (unsigned i = 0; i < calls; i++)
		if (write(fd, &c, 1) != 1)
			abort();
}

/* ---- attaching without libbpf objects ---------------------------------------- */

/* File and file offset of an address of this process (a function of this
 * binary or of a library it mapped): what a uprobe is set on. */
static int addr_to_file(const void *addr, char *path, size_t path_len, uint64_t *off)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[PATH_MAX + 128];
	uintptr_t a = (uintptr_t)addr;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t start, end;
		unsigned long long pgoff;
		int name_at = 0;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %llx %*s %*s %n", &start, &end,
			   &pgoff, &name_at) < 3 || name_at == 0)
			continue;
		if (a < start || a >= end)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (line[name_at] != '/' || strlen(line + name_at) >= path_len)
			break;
		strcpy(path, line + name_at);
		*off = a - start + pgoff;
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/* The first line of a small sysfs file. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	return ok ? 0 : -EINVAL;
}

/* "r0 = 0; exit" of the given type. */
static int load_empty_prog(enum bpf_prog_type type)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	return bpf_prog_load(type, "rwb_empty", "GPL", insns, 2, NULL);
}

/* A uprobe (or uretprobe) for every process on path:off running prog_fd,
 * through the uprobe PMU as libbpf does. Returns the perf event fd. */
static int attach_raw_uprobe(int prog_fd, const char *path, uint64_t off, bool ret)
{
	static int type = -1, ret_bit = -1;
	struct perf_event_attr a;
	int pfd;

	char line[64];

	if (type < 0) {
		if (read_line("/sys/bus/event_source/devices/uprobe/type", line, sizeof(line)) ||
		    sscanf(line, "%d", &type) != 1)
			return -ENOSYS;
		if (read_line("/sys/bus/event_source/devices/uprobe/format/retprobe", line,
			      sizeof(line)) ||
		    sscanf(line, "config:%d", &ret_bit) != 1 || ret_bit < 0 || ret_bit > 63)
			return -ENOSYS;
	}
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = (uint32_t)type;
	a.config = ret ? 1ULL << ret_bit : 0;
	a.config1 = (uint64_t)(uintptr_t)path; /* uprobe_path */
	a.config2 = off;                      /* probe_offset */
	pfd = (int)syscall(__NR_perf_event_open, &a, -1 /* every process */, 0, -1,
			   PERF_FLAG_FD_CLOEXEC);
	if (pfd < 0)
		return -errno;
	if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog_fd) || ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0)) {
		int err = -errno;

		close(pfd);
		return err;
	}
	return pfd;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_uprobe: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- report ------------------------------------------------------------------ */

static double g_base_us = 40.0;

static void row(const char *name, double ns, double base_ns)
{
	double extra = ns - base_ns;

	printf("  %-52s %9.0f ns  %+9.0f ns", name, ns, extra);
	if (extra > 0)
		printf("   ratio at %.1f us/write: %.3f", g_base_us,
		       g_base_us * 1000 / (g_base_us * 1000 + extra));
	printf("\n");
}

/* ---- A: empty probes ------------------------------------------------------- */

struct probe_point {
	const void *addr;
	unsigned delta; /* bytes past addr */
	bool ret;
};

static double with_empty_probes(int prog_fd, const struct probe_point *pts, size_t n,
				target_fn f)
{
	int pfds[4];
	double ns;

	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		uint64_t off;
		int err = addr_to_file(pts[i].addr, path, sizeof(path), &off);

		if (err)
			die("address to file", err);
		pfds[i] = attach_raw_uprobe(prog_fd, path, off + pts[i].delta, pts[i].ret);
		if (pfds[i] < 0)
			die("attach uprobe", pfds[i]);
	}
	ns = measure(loop_target, (void *)f, g_calls);
	for (size_t i = 0; i < n; i++)
		close(pfds[i]);
	return ns;
}

static double g_floor_entry_ret, g_floor_entry; /* extra ns, libssl-shaped entry */
static double g_floor_emulated;                  /* extra ns, entry + return, push first */
static double g_real_unwatched, g_real_watched;  /* extra ns, D as rcptwall attaches */

static void bench_empty(void)
{
	int prog = load_empty_prog(BPF_PROG_TYPE_KPROBE);
	double none, ns;

	if (prog < 0)
		die("load empty uprobe program", prog);
	printf("A. empty BPF program (r0 = 0) per call of a 4-instruction function\n");
	none = measure(loop_target, (void *)rwb_sub, g_calls);
	row("no probe", none, none);

	struct probe_point sub0[] = { { rwb_sub, 0, false } };
	ns = with_empty_probes(prog, sub0, 1, rwb_sub);
	g_floor_entry = ns - none;
	row("uprobe at entry, first insn sub (stepped; libssl)", ns, none);
	struct probe_point push0[] = { { rwb_push, 0, false } };
	row("uprobe at entry, first insn push (emulated)", with_empty_probes(prog, push0, 1, rwb_push),
	    none);
	struct probe_point endbr0[] = { { rwb_endbr, 0, false } };
	row("uprobe at entry, first insn endbr64", with_empty_probes(prog, endbr0, 1, rwb_endbr),
	    none);
	struct probe_point endbr4[] = { { rwb_endbr, 4, false } };
	row("uprobe after endbr64 (+4, a push)", with_empty_probes(prog, endbr4, 1, rwb_endbr),
	    none);
	struct probe_point nop0[] = { { rwb_nop5, 0, false } };
	row("uprobe at entry, first insn nop5", with_empty_probes(prog, nop0, 1, rwb_nop5), none);
	struct probe_point sub_ret[] = { { rwb_sub, 0, true } };
	row("uretprobe only (sub first)", with_empty_probes(prog, sub_ret, 1, rwb_sub), none);
	struct probe_point sub_both[] = { { rwb_sub, 0, false }, { rwb_sub, 0, true } };
	ns = with_empty_probes(prog, sub_both, 2, rwb_sub);
	g_floor_entry_ret = ns - none;
	row("uprobe + uretprobe (sub first; as SSL_write_ex)", ns, none);
	struct probe_point push_both[] = { { rwb_push, 0, false }, { rwb_push, 0, true } };
	ns = with_empty_probes(prog, push_both, 2, rwb_push);
	g_floor_emulated = ns - none;
	row("uprobe + uretprobe (push first)", ns, none);
	struct probe_point endbr4_both[] = { { rwb_endbr, 4, false }, { rwb_endbr, 4, true } };
	row("uprobe + uretprobe after endbr64 (+4)",
	    with_empty_probes(prog, endbr4_both, 2, rwb_endbr), none);
	close(prog);
}

/* ---- B: sys_enter ------------------------------------------------------------ */

static double g_sys_enter_extra;

static void bench_sys_enter(struct tls_uprobe *skel)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int prog = load_empty_prog(BPF_PROG_TYPE_RAW_TRACEPOINT);
	struct bpf_link *link;
	double none, ns;
	int tp;

	if (fd < 0 || prog < 0)
		die("sys_enter setup", fd < 0 ? errno : prog);
	printf("B. raw_tp/sys_enter, per write(2) of 1 byte to /dev/null (every process pays it)\n");
	none = measure(loop_devnull, &fd, g_calls * 5);
	row("no hook", none, none);
	tp = bpf_raw_tracepoint_open("sys_enter", prog);
	if (tp < 0)
		die("raw_tp sys_enter", tp);
	row("empty raw_tp program", measure(loop_devnull, &fd, g_calls * 5), none);
	close(tp);
	link = bpf_program__attach(skel->progs.tls_sys_enter);
	if (!link)
		die("attach tls_sys_enter", errno);
	ns = measure(loop_devnull, &fd, g_calls * 5);
	g_sys_enter_extra = ns - none;
	row("tls_sys_enter (not inside a TLS call)", ns, none);
	bpf_link__destroy(link);
	close(prog);
	close(fd);
}

/* ---- shared: maps, loopback TCP, ring consumer -------------------------------- */

struct maps {
	int ring, flows, counters;
};

static void make_maps(struct maps *m)
{
	m->ring = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "rw_ring", 0, 0, 4u << 20, NULL);
	m->flows = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "rw_flows", sizeof(struct rw_flow_key),
				  sizeof(struct rw_flow_state), 1024, NULL);
	m->counters = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "rw_counters", 4, 8, RW_CNT_MAX,
				     NULL);
	if (m->ring < 0 || m->flows < 0 || m->counters < 0)
		die("create maps", errno);
}

static uint64_t counter(const struct maps *m, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[512], sum = 0;

	if (ncpu <= 0 || ncpu > 512 || bpf_map_lookup_elem(m->counters, &idx, vals))
		return 0;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

/* A loopback TCP connection; a thread reads and drops what arrives. */
struct tcp_sink {
	int cfd, sfd;
	pthread_t th;
	struct rw_flow_key key; /* the client side, as the probes key it */
};

static void *drain(void *arg)
{
	struct tcp_sink *s = arg;
	static char buf[1 << 16];

	while (read(s->sfd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static void tcp_sink_open(struct tcp_sink *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in ca, sa;
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		die("listen", errno);
	s->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->cfd < 0 || connect(s->cfd, (struct sockaddr *)&a, sizeof(a)))
		die("connect", errno);
	s->sfd = accept(l, NULL, NULL);
	if (s->sfd < 0)
		die("accept", errno);
	close(l);
	len = sizeof(ca);
	if (getsockname(s->cfd, (struct sockaddr *)&ca, &len))
		die("getsockname", errno);
	len = sizeof(sa);
	if (getpeername(s->cfd, (struct sockaddr *)&sa, &len))
		die("getpeername", errno);
	memset(&s->key, 0, sizeof(s->key));
	s->key.family = RW_AF_INET;
	s->key.sport = ntohs(ca.sin_port);
	s->key.dport = ntohs(sa.sin_port);
	memcpy(s->key.saddr, &ca.sin_addr, 4);
	memcpy(s->key.daddr, &sa.sin_addr, 4);
	if (pthread_create(&s->th, NULL, drain, s))
		die("drain thread", EAGAIN);
}

static void tcp_sink_close(struct tcp_sink *s)
{
	shutdown(s->cfd, SHUT_WR);
	pthread_join(s->th, NULL);
	close(s->cfd);
	close(s->sfd);
}

/* Watches the flow in DATA phase (as the pipeline does after DATA). */
static void watch(const struct maps *m, const struct rw_flow_key *k)
{
	struct rw_flow_state st = { .phase = RW_PHASE_OPAQUE, .tls_phase = RW_PHASE_DATA,
				    .created_ns = 1 };

	if (bpf_map_update_elem(m->flows, k, &st, BPF_ANY))
		die("watch flow", errno);
}

static void unwatch(const struct maps *m, const struct rw_flow_key *k)
{
	bpf_map_delete_elem(m->flows, k);
}

struct consumer {
	struct ring_buffer *rb;
	pthread_t th;
	atomic_bool stop;
	atomic_ullong records;
};

static int on_record(void *ctx, void *data, size_t len)
{
	struct consumer *c = ctx;

	(void)data;
	(void)len;
	atomic_fetch_add_explicit(&c->records, 1, memory_order_relaxed);
	return 0;
}

static void *consume(void *arg)
{
	struct consumer *c = arg;

	while (!atomic_load(&c->stop))
		ring_buffer__poll(c->rb, 50);
	ring_buffer__consume(c->rb);
	return NULL;
}

static void consumer_start(struct consumer *c, const struct maps *m)
{
	memset(c, 0, sizeof(*c));
	c->rb = ring_buffer__new(m->ring, on_record, c, NULL);
	if (!c->rb || pthread_create(&c->th, NULL, consume, c))
		die("ring consumer", errno);
}

static void consumer_stop(struct consumer *c)
{
	atomic_store(&c->stop, true);
	pthread_join(c->th, NULL);
	ring_buffer__free(c->rb);
}

/* ---- C: rcptwall's programs on a stub ------------------------------------------ */

static void bench_programs(struct tls_uprobe *skel, const struct maps *m)
{
	struct bpf_link *links[3];
	struct tcp_sink sink;
	struct consumer cons;
	char path[PATH_MAX];
	uint64_t off, unattr0, rec0;
	double none, ns;
	int err;

	printf("C. rcptwall's programs on a stub with SSL_write_ex's arguments (push first),\n"
	       "   then with a 1-byte loopback TCP write inside the call (its segment and the\n"
	       "   reading thread's wakeups weigh in; D is the real case)\n");
	err = addr_to_file((const void *)rwb_write_ex, path, sizeof(path), &off);
	if (err)
		die("address to file", err);
	/* First without the syscall: what the programs cost over empty ones. */
	{
		int empty = load_empty_prog(BPF_PROG_TYPE_KPROBE), pfd[2];

		if (empty < 0)
			die("load empty uprobe program", empty);
		none = measure(loop_write_ex, NULL, g_calls);
		row("no syscall in the call: no probes", none, none);
		pfd[0] = attach_raw_uprobe(empty, path, off, true);
		pfd[1] = attach_raw_uprobe(empty, path, off, false);
		if (pfd[0] < 0 || pfd[1] < 0)
			die("attach empty probes", pfd[0] < 0 ? pfd[0] : pfd[1]);
		row("  empty entry + return programs", measure(loop_write_ex, NULL, g_calls), none);
		close(pfd[1]);
		close(pfd[0]);
		close(empty);
	}
	/* Returns first, as user/tls.c does. */
	links[1] = bpf_program__attach_uprobe(skel->progs.tls_ssl_write_ex_ret, true, -1, path, off);
	links[2] = bpf_program__attach_uprobe(skel->progs.tls_ssl_write_ex, false, -1, path, off);
	if (!links[1] || !links[2])
		die("attach rcptwall programs", errno);
	row("  rcptwall's entry + return programs (flow unknown)",
	    measure(loop_write_ex, NULL, g_calls), none);
	for (int i = 2; i >= 1; i--)
		bpf_link__destroy(links[i]);
	tcp_sink_open(&sink);
	rwb_sink_fd = sink.cfd;
	none = measure(loop_write_ex, NULL, g_calls);
	row("with the 1-byte TCP write: no probes", none, none);
	links[1] = bpf_program__attach_uprobe(skel->progs.tls_ssl_write_ex_ret, true, -1, path, off);
	links[2] = bpf_program__attach_uprobe(skel->progs.tls_ssl_write_ex, false, -1, path, off);
	if (!links[1] || !links[2])
		die("attach rcptwall programs", errno);
	links[0] = bpf_program__attach(skel->progs.tls_sys_enter);
	if (!links[0])
		die("attach tls_sys_enter", errno);
	unattr0 = counter(m, RW_CNT_TLS_UNATTRIBUTED);
	ns = measure(loop_write_ex, NULL, g_calls);
	row("  entry + return + sys_enter, flow not watched", ns, none);
	if (counter(m, RW_CNT_TLS_UNATTRIBUTED) - unattr0 < g_calls)
		die("the probes did not run (unattributed count)", EPROTO);
	consumer_start(&cons, m);
	watch(m, &sink.key);
	rec0 = counter(m, RW_CNT_TLS_RECORDS);
	ns = measure(loop_write_ex, NULL, g_calls);
	unwatch(m, &sink.key);
	consumer_stop(&cons);
	row("  same, flow watched in DATA phase (1 KiB record/call)", ns, none);
	if (counter(m, RW_CNT_TLS_RECORDS) - rec0 < g_calls)
		die("the probes sent no records for the watched flow", EPROTO);
	for (int i = 2; i >= 0; i--)
		bpf_link__destroy(links[i]);
	rwb_sink_fd = -1;
	tcp_sink_close(&sink);
}

/* ---- D: real libssl -------------------------------------------------------------- */

static SSL_CTX *server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	if (!ctx || !pkey || !x)
		die("server context", ENOMEM);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, pkey, EVP_sha256()) <= 0 || SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1)
		die("self-signed certificate", EINVAL);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
}

/* Handshake over memory BIOs, in this thread; then the client writes its
 * records to the TCP socket (nobody decrypts them: only the write counts). */
static SSL *tls_client(SSL_CTX *cctx, SSL_CTX *sctx, SSL **server_out, int fd)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	char buf[16384];

	if (!c || !s || !c_in || !c_out || !s_in || !s_out)
		die("TLS objects", ENOMEM);
	SSL_set_bio(c, c_in, c_out);
	SSL_set_bio(s, s_in, s_out);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < 20 && !(SSL_is_init_finished(c) && SSL_is_init_finished(s)); i++) {
		int n;

		SSL_do_handshake(c);
		while ((n = BIO_read(c_out, buf, sizeof(buf))) > 0)
			BIO_write(s_in, buf, n);
		SSL_do_handshake(s);
		while ((n = BIO_read(s_out, buf, sizeof(buf))) > 0)
			BIO_write(c_in, buf, n);
	}
	if (!SSL_is_init_finished(c) || !SSL_is_init_finished(s))
		die("TLS handshake in memory", EPROTO);
	BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);

	if (!sock)
		die("socket BIO", ENOMEM);
	SSL_set0_wbio(c, sock); /* frees c_out */
	*server_out = s;
	return c;
}

static void loop_ssl(unsigned calls, void *arg)
{
	static char buf[16384];
	size_t written;

	for (unsigned i = 0; i < calls; i++)
		if (SSL_write_ex((SSL *)arg, buf, sizeof(buf), &written) != 1 ||
		    written != sizeof(buf))
			die("SSL_write_ex", EIO);
}

static void bench_libssl(void)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method()), *sctx = server_ctx();
	struct tcp_sink sink;
	struct consumer cons;
	struct maps m;
	SSL *c, *s;
	char path[PATH_MAX];
	uint64_t off, rec0;
	double none, ns;
	struct tls_probes *tp;
	int err;

	if (!cctx)
		die("client context", ENOMEM);
	printf("D. SSL_write_ex of 16 KiB, system libssl (TLS 1.3, AES-GCM) to loopback TCP\n");
	tcp_sink_open(&sink);
	c = tls_client(cctx, sctx, &s, sink.cfd);
	unsigned calls = g_calls / 4 ? g_calls / 4 : 1;

	none = measure(loop_ssl, c, calls);
	row("no probes", none, none);
	err = addr_to_file((const void *)SSL_write_ex, path, sizeof(path), &off);
	if (err)
		die("libssl path", err);
	make_maps(&m);
	const char *libs[] = { path };

	/* The write probes on OpenSSL's internal write function (what rcptwall
	 * does where user/tls.c recognises it), then on the wrappers. */
	for (int wrappers = 0; wrappers <= 1; wrappers++) {
		struct tls_probe_opts o = { .ring_fd = m.ring, .flows_fd = m.flows,
					    .counters_fd = m.counters, .lib_paths = libs,
					    .n_lib_paths = 1, .wrappers_only = wrappers };
		char name[96];
		bool core;

		err = tls_probes_open(&o, &tp);
		if (err)
			die("tls_probes_open", err);
		err = tls_probes_attach(tp);
		if (err < 0)
			die("tls_probes_attach", err);
		core = tls_probes_lib(tp, 0)->write_core & TLS_LIB_OPENSSL;
		if (!wrappers && !core)
			printf("  (this libssl's internal write function was not recognised: "
			       "probes on SSL_write_ex)\n");
		ns = measure(loop_ssl, c, calls);
		snprintf(name, sizeof(name), "rcptwall's probes on %s, not watched",
			 core ? "the write core" : "SSL_write_ex");
		row(name, ns, none);
		if (!wrappers)
			g_real_unwatched = ns - none;
		consumer_start(&cons, &m);
		watch(&m, &sink.key);
		rec0 = counter(&m, RW_CNT_TLS_RECORDS);
		ns = measure(loop_ssl, c, calls);
		unwatch(&m, &sink.key);
		consumer_stop(&cons);
		snprintf(name, sizeof(name), "rcptwall's probes on %s, watched (DATA)",
			 core ? "the write core" : "SSL_write_ex");
		row(name, ns, none);
		if (!wrappers)
			g_real_watched = ns - none;
		if (counter(&m, RW_CNT_TLS_RECORDS) - rec0 < calls)
			die("the probes sent no records for the watched libssl flow", EPROTO);
		tls_probes_close(tp);
	}
	close(m.ring);
	close(m.flows);
	close(m.counters);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	tcp_sink_close(&sink);
}

int main(int argc, char **argv)
{
	struct tls_uprobe *skel;
	struct maps m;
	int opt, err;

	while ((opt = getopt(argc, argv, "b:n:r:")) != -1) {
		switch (opt) {
		case 'b': g_base_us = strtod(optarg, NULL); break;
		case 'n': g_calls = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': g_rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench_uprobe [-b BASE_US] [-n CALLS] [-r ROUNDS]\n");
			return 2;
		}
	}
	if (!(g_base_us > 0) || g_calls == 0 || g_rounds == 0 || g_rounds > 64) {
		fprintf(stderr, "bench_uprobe: BASE_US > 0, CALLS > 0, 1 <= ROUNDS <= 64\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("uprobe cost per call, median of %u rounds of %u calls; ratio = %.1f us / "
	       "(%.1f us + extra)\n",
	       g_rounds, g_calls, g_base_us, g_base_us);
	make_maps(&m);
	skel = tls_uprobe__open();
	if (!skel)
		die("open tls_uprobe", errno);
	if ((err = bpf_map__reuse_fd(skel->maps.rw_ring, m.ring)) ||
	    (err = bpf_map__reuse_fd(skel->maps.rw_flows, m.flows)) ||
	    (err = bpf_map__reuse_fd(skel->maps.rw_counters, m.counters)) ||
	    (err = tls_uprobe__load(skel)))
		die("load tls_uprobe", err);
	bench_empty();
	bench_sys_enter(skel);
	bench_programs(skel, &m);
	tls_uprobe__destroy(skel);
	bench_libssl();
	double b = g_base_us * 1000;

	printf("summary at %.1f us per write without probes (implied throughput ratio):\n", g_base_us);
	printf("  floor, empty entry+return probe + sys_enter, first insn stepped (SSL_write_ex): "
	       "%+6.0f ns  %.3f\n",
	       g_floor_entry_ret + g_sys_enter_extra,
	       b / (b + g_floor_entry_ret + g_sys_enter_extra));
	printf("  floor, empty entry+return probe + sys_enter, first insn emulated (write core): "
	       "%+6.0f ns  %.3f\n",
	       g_floor_emulated + g_sys_enter_extra, b / (b + g_floor_emulated + g_sys_enter_extra));
	printf("  rcptwall on libssl, not watched: %+6.0f ns  %.3f;  watched (DATA): %+6.0f ns  %.3f\n",
	       g_real_unwatched, b / (b + g_real_unwatched), g_real_watched,
	       b / (b + g_real_watched));
	printf("  target 0.95 allows at most %+.0f ns per write\n", b / 0.95 - b);
	return 0;
}

#else /* !__x86_64__ */

int main(void)
{
	printf("bench_uprobe: x86-64 only (its probe targets are x86 assembly)\n");
	return 0;
}

#endif
