// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * TLS plaintext capture: uprobes on the TLS libraries' write functions.
 *
 * After STARTTLS (ports 25/587) or from the first byte (465) the tc program
 * sees only ciphertext. These programs read the SMTP client stream where it
 * is still plaintext: at SSL_write / SSL_write_ex (OpenSSL) and
 * gnutls_record_send (GnuTLS), and send it through the same ring buffer, the
 * same flows map and the same counters as the tc program, marked
 * RW_SRC_TLS, with seq = plaintext offset within the flow.
 *
 * Tying a write to its TCP flow, without kprobes or fentry (refused by some
 * kernels rcptwall runs on):
 *   1. uprobe at the write function's entry: remember (thread -> session,
 *      buffer, length) in tls_pending.
 *   2. raw_tp/sys_enter: while that thread is inside the write function,
 *      its first write/writev/sendto/sendmsg/sendmmsg on a TCP socket names
 *      the connection: fd -> file -> socket -> sock gives the 5-tuple as
 *      the tc program keys it. Every other syscall costs one compare.
 *   3. uretprobe: the library says how many plaintext bytes it took; those
 *      bytes (the caller's buffer is intact until the function returns) are
 *      sent once, at the flow's offset (rw_tls_offsets), advanced atomically. Emitting at
 *      return, and only for accepted bytes, means a call that fails with
 *      WANT_WRITE / GNUTLS_E_AGAIN and is retried is counted once.
 * Where the probes sit (user/tls.c): at the functions' entries, just past a
 * leading endbr64, and for OpenSSL 3.0 on the internal function that
 * SSL_write, SSL_write_ex and the SSL BIO all call, when the code has the
 * expected shape: its first instruction is one the kernel emulates, where
 * SSL_write_ex's must be single-stepped, a second trap per call.
 *
 * A write that reaches no socket while in the library (GnuTLS corked
 * records, a buffering BIO) takes the flow last seen for the same session
 * in the same process (tls_sessions, forgotten at SSL_free / gnutls_deinit);
 * without one it is counted in RW_CNT_TLS_UNATTRIBUTED. So is every write
 * whose flow is not in the flows map (HTTPS and other TLS traffic): one hash
 * lookup, nothing copied.
 *
 * GnuTLS details: gnutls_record_uncork() re-sends the corked records through
 * gnutls_record_send(); calls from inside it are ignored (their bytes went
 * out when the corked calls took them). A send repeated as
 * gnutls_record_send(session, NULL, 0) after GNUTLS_E_AGAIN reads the first
 * call's buffer (tls_retry).
 *
 * Per-thread pending state keeps concurrent connections apart: a thread is
 * inside one write call at a time, and a TLS session is written by one
 * thread at a time (neither library allows concurrent writes on a session).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "rcptwall/rcptwall.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT   00170000
#define S_IFSOCK 0140000
#define RW_IPPROTO_TCP 6
#define RW_SOCK_STREAM 1

/* Syscalls a TLS library sends ciphertext with. */
#if defined(__TARGET_ARCH_x86)
#define NR_write    1
#define NR_writev   20
#define NR_sendto   44
#define NR_sendmsg  46
#define NR_sendmmsg 307
#elif defined(__TARGET_ARCH_arm64)
#define NR_write    64
#define NR_writev   66
#define NR_sendto   206
#define NR_sendmsg  211
#define NR_sendmmsg 269
#else
#error "tls_uprobe: syscall numbers for this architecture are missing"
#endif

/* Maps shared with the tc program (user space reuses its fds). */
#include "shared_maps.bpf.h"

/* Plaintext offsets, apart from the flows map: see struct rw_tls_offset. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rw_flow_key);
	__type(value, struct rw_tls_offset);
} rw_tls_offsets SEC(".maps");

/* ---- this program's own state ------------------------------------------ */

enum tls_api {
	TLS_API_SSL_WRITE = 1,    /* int SSL_write(SSL *, const void *, int) */
	TLS_API_SSL_WRITE_EX = 2, /* int SSL_write_ex(SSL *, const void *, size_t, size_t *) */
	TLS_API_GNUTLS_SEND = 3,  /* ssize_t gnutls_record_send(session, const void *, size_t) */
};

/* A thread inside a TLS write call. */
struct tls_call {
	__u64 session;     /* SSL * or gnutls_session_t */
	__u64 buf;         /* plaintext, caller's memory */
	__u64 written_ptr; /* SSL_write_ex: size_t *written */
	__u64 len;
	__u8 api;          /* enum tls_api */
	__u8 resolved;     /* flow is set */
	__u8 pad[6];
	struct rw_flow_key flow;
};

/* LRU: a thread killed inside a write call leaves its entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid: one pending call per thread */
	__type(value, struct tls_call);
} tls_pending SEC(".maps");

struct tls_session_key {
	__u64 session;
	__u32 tgid;    /* session pointers are per address space */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_session_key);
	__type(value, struct rw_flow_key);
} tls_sessions SEC(".maps");

/*
 * Threads inside gnutls_record_uncork(): it flushes the corked records by
 * calling gnutls_record_send() on them, and those bytes were already sent
 * when the corked calls took them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, __u8);
} tls_uncorking SEC(".maps");

/*
 * GnuTLS lets a caller repeat a send that failed with GNUTLS_E_AGAIN or
 * GNUTLS_E_INTERRUPTED as gnutls_record_send(session, NULL, 0); the bytes
 * then come from the first call's buffer, remembered here per session.
 */
struct tls_retry_buf {
	__u64 buf;
	__u64 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tls_session_key);
	__type(value, struct tls_retry_buf);
} tls_retry SEC(".maps");

/* A record is assembled here, then copied into the ring with its real size. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_record);
} tls_scratch SEC(".maps");


/* ---- entry: remember the call ------------------------------------------ */

static __always_inline int call_enter(__u8 api, void *session, const void *buf,
				      __u64 len, void *written_ptr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call call = {
		.session = (__u64)session,
		.buf = (__u64)buf,
		.written_ptr = (__u64)written_ptr,
		.len = len,
		.api = api,
	};

	bpf_map_update_elem(&tls_pending, &id, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_write, void *ssl, const void *buf, int num)
{
	if (num <= 0)
		return 0;
	return call_enter(TLS_API_SSL_WRITE, ssl, buf, (__u64)num, NULL);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_write_ex, void *ssl, const void *buf, __u64 num, void *written)
{
	return call_enter(TLS_API_SSL_WRITE_EX, ssl, buf, num, written);
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_send, void *session, const void *data, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_session_key skey = { .session = (__u64)session, .tgid = id >> 32 };
	struct tls_retry_buf *retry;

	if (bpf_map_lookup_elem(&tls_uncorking, &id))
		return 0; /* the flush of bytes already sent */
	if (!data && !size) {
		retry = bpf_map_lookup_elem(&tls_retry, &skey);
		if (retry)
			return call_enter(TLS_API_GNUTLS_SEND, session, (const void *)retry->buf,
					  retry->len, NULL);
	}
	return call_enter(TLS_API_GNUTLS_SEND, session, data, size, NULL);
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_uncork)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 one = 1;

	bpf_map_update_elem(&tls_uncorking, &id, &one, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(tls_gnutls_uncork_ret)
{
	__u64 id = bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&tls_uncorking, &id);
	return 0;
}

/* ---- syscall: find the connection -------------------------------------- */

/* 5-tuple of a TCP socket fd of the current task, keyed like the tc program. */
static __always_inline int fd_flow_key(__s64 fd, struct rw_flow_key *key)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return -1;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return -1;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return -1;
	sock = BPF_CORE_READ(file, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != RW_IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != RW_SOCK_STREAM)
		return -1;

	__builtin_memset(key, 0, sizeof(*key));
	key->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	key->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == RW_AF_INET) {
		key->family = RW_AF_INET;
		bpf_core_read(key->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(key->daddr, 4, &sk->__sk_common.skc_daddr);
		return 0;
	}
	if (family != RW_AF_INET6)
		return -1;
	bpf_core_read(key->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	bpf_core_read(key->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	/* An AF_INET6 socket talking to ::ffff:a.b.c.d sends IPv4 packets: key it
	 * as the tc program sees them. */
	if (!(*(__u64 *)key->daddr) && *(__u32 *)(key->daddr + 8) == bpf_htonl(0xffff)) {
		key->family = RW_AF_INET;
		__builtin_memmove(key->saddr, key->saddr + 12, 4);
		__builtin_memmove(key->daddr, key->daddr + 12, 4);
		__builtin_memset(key->saddr + 4, 0, 12);
		__builtin_memset(key->daddr + 4, 0, 12);
	} else {
		key->family = RW_AF_INET6;
	}
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(tls_sys_enter, struct pt_regs *regs, long nr)
{
	__u64 id;
	struct tls_call *call;

	if (nr != NR_write && nr != NR_writev && nr != NR_sendto && nr != NR_sendmsg &&
	    nr != NR_sendmmsg)
		return 0;
	id = bpf_get_current_pid_tgid();
	call = bpf_map_lookup_elem(&tls_pending, &id);
	if (!call || call->resolved)
		return 0;
	/* Only the first TCP socket the call writes to counts: a log write to a
	 * file or a UDP socket in between is not the connection. */
	if (fd_flow_key((__s64)(int)PT_REGS_PARM1_CORE(regs), &call->flow) == 0)
		call->resolved = 1;
	return 0;
}

/* ---- return: send the accepted plaintext ------------------------------- */

static __always_inline __u32 skipped_by_phase(const struct rw_flow_state *st, __u32 base,
					      __u32 n, __u8 phase)
{
	__s32 before_end;

	switch (phase) {
	case RW_PHASE_DATA:
		return n > RW_BODY_TAIL ? n - RW_BODY_TAIL : 0;
	case RW_PHASE_BDAT:
		/* Signed distance: plaintext offsets wrap at 4 GiB. */
		before_end = (__s32)(st->tls_bdat_end_seq - base);
		if (before_end <= 0)
			return 0;
		return (__u32)before_end >= n ? n : (__u32)before_end;
	default:
		/* COMMAND, and OPAQUE (never set for the plaintext stream; if it
		 * is, sending is the safe side). */
		return 0;
	}
}

/* State of one write's records, passed through bpf_loop (one verification
 * of the chunk body instead of RW_MAX_CHUNKS unrolled paths). */
struct chunk_ctx {
	struct rw_flow_key flow;
	__u64 buf;  /* caller's plaintext */
	__u32 base; /* stream offset of buf[0] */
	__u32 n;    /* bytes of this write */
	__u32 off;  /* next byte of buf to send */
	__u32 skip; /* leading bytes not sent (body) */
	__u8 phase;
};

static long send_chunk(__u32 i, void *arg)
{
	struct chunk_ctx *c = arg;
	__u32 zero = 0, len;
	__u64 wakeup;
	struct rw_record *rec = bpf_map_lookup_elem(&tls_scratch, &zero);

	if (!rec || c->off >= c->n)
		return 1;
	len = c->n - c->off;
	if (len > RW_MAX_PAYLOAD)
		len = RW_MAX_PAYLOAD;
	rec->hdr.kind = RW_REC_DATA;
	rec->hdr.source = RW_SRC_TLS;
	rec->hdr.phase = c->phase;
	rec->hdr.flags = c->skip ? RW_RF_BODY_TAIL : 0;
	if (i == RW_MAX_CHUNKS - 1 && c->off + len < c->n)
		rec->hdr.flags |= RW_RF_TRUNCATED;
	rec->hdr.seq = c->base + c->off;
	rec->hdr.len = len;
	rec->hdr.skipped = i == 0 ? c->skip : 0;
	rec->hdr.ts_ns = bpf_ktime_get_ns();
	rec->hdr.pid = bpf_get_current_pid_tgid() >> 32;
	rec->hdr.pad = 0;
	rec->hdr.flow = c->flow;
	if (bpf_probe_read_user(rec->data, len, (const void *)(c->buf + c->off)))
		return 1; /* the rest is counted as truncated */
	/* One wakeup per write, with its last record: user space needs the
	 * whole write anyway, and a wakeup per chunk costs an IPI each. */
	wakeup = BPF_RB_NO_WAKEUP;
	if (c->off + len >= c->n || i == RW_MAX_CHUNKS - 1)
		wakeup = last_record_wakeup(c->phase, rec->data[(len - 1) & (RW_MAX_PAYLOAD - 1)]);
	if (bpf_ringbuf_output(&rw_ring, rec, sizeof(rec->hdr) + len, wakeup)) {
		count(RW_CNT_RESERVE_FAIL, 1);
	} else {
		count(RW_CNT_RECORDS, 1);
		count(RW_CNT_TLS_RECORDS, 1);
	}
	c->off += len;
	return 0;
}

/*
 * accepted: bytes the library took; readable: how many of them buf holds
 * (fewer only when the caller passed no buffer, see tls_retry).
 */
/* The flow's offset entry, started over when the connection is new (the tc
 * program re-creates the flow state, with a new created_ns, on a SYN). */
static __always_inline struct rw_tls_offset *tls_offset(const struct rw_flow_key *flow,
							 __u64 created_ns)
{
	struct rw_tls_offset *o = bpf_map_lookup_elem(&rw_tls_offsets, flow);

	if (o && o->flow_created_ns == created_ns)
		return o;
	struct rw_tls_offset fresh = { .flow_created_ns = created_ns };

	if (bpf_map_update_elem(&rw_tls_offsets, flow, &fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&rw_tls_offsets, flow);
}

static __noinline void send_plaintext(const struct rw_flow_key *flow, __u64 buf,
					   __u64 accepted, __u64 readable)
{
	struct rw_flow_state *st = bpf_map_lookup_elem(&rw_flows, flow);
	/* One TLS write of 2 GiB or more does not happen; bound it anyway. */
	__u32 n = accepted > 0x7fffffff ? 0x7fffffff : (__u32)accepted;
	struct chunk_ctx c;

	if (!st) {
		count(RW_CNT_TLS_UNATTRIBUTED, 1);
		return;
	}
	struct rw_tls_offset *off = tls_offset(flow, st->created_ns);

	if (!off) {
		count(RW_CNT_TLS_TRUNC_BYTES, n);
		return;
	}
	/* Reserve [base, base + n) of the plaintext stream, even for bytes not
	 * sent, so offsets stay those of the stream and a loss shows as a gap. */
	c.base = __sync_fetch_and_add(&off->next_seq, n);
	c.phase = st->tls_phase;
	c.skip = skipped_by_phase(st, c.base, n, c.phase);
	if (c.skip)
		count(RW_CNT_BODY_SKIPPED_BYTES, c.skip);
	c.flow = *flow;
	c.buf = buf;
	c.n = readable < n ? (__u32)readable : n;
	c.off = c.skip;
	if (c.off < c.n)
		bpf_loop(RW_MAX_CHUNKS, send_chunk, &c, 0);
	if (c.off < n)
		count(RW_CNT_TLS_TRUNC_BYTES, n - c.off);
}

/* Remembers the buffer of a GnuTLS send that must be repeated; forgets it
 * once a repeat took the bytes. */
static __always_inline void gnutls_note_retry(const struct tls_session_key *skey,
					      const struct tls_call *call, __u64 accepted)
{
	struct tls_retry_buf rb = { .buf = call->buf, .len = call->len };

	if (accepted)
		bpf_map_delete_elem(&tls_retry, skey);
	else if (call->buf && call->len)
		bpf_map_update_elem(&tls_retry, skey, &rb, BPF_ANY);
}

/* accepted: plaintext bytes the library took in this call (0: none). */
static __always_inline int call_return(__u64 accepted)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_map_lookup_elem(&tls_pending, &id);
	struct tls_session_key skey = {};
	const struct rw_flow_key *flow = NULL;

	if (!call)
		return 0; /* attached while the call was running */
	skey.session = call->session;
	skey.tgid = id >> 32;
	if (call->resolved) {
		bpf_map_update_elem(&tls_sessions, &skey, &call->flow, BPF_ANY);
		flow = &call->flow;
	} else if (accepted) {
		flow = bpf_map_lookup_elem(&tls_sessions, &skey);
	}
	if (accepted && flow)
		send_plaintext(flow, call->buf, accepted, call->len);
	else if (accepted)
		count(RW_CNT_TLS_UNATTRIBUTED, 1);
	if (call->api == TLS_API_GNUTLS_SEND)
		gnutls_note_retry(&skey, call, accepted);
	bpf_map_delete_elem(&tls_pending, &id);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(tls_ssl_write_ret, int ret)
{
	return call_return(ret > 0 ? (__u64)ret : 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls_ssl_write_ex_ret, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_map_lookup_elem(&tls_pending, &id);
	__u64 written = 0;

	/* SSL_write_ex returns 1 and stores the byte count through written;
	 * OpenSSL's internal write function, probed instead when user/tls.c
	 * finds it (same arguments), returns > 0 with the count there too. */
	if (call && ret > 0 && call->written_ptr)
		bpf_probe_read_user(&written, sizeof(written), (const void *)call->written_ptr);
	return call_return(written);
}

SEC("uretprobe")
int BPF_KRETPROBE(tls_gnutls_send_ret, long ret)
{
	/* Negative: not taken (GNUTLS_E_AGAIN etc.), the caller repeats the call. */
	return call_return(ret > 0 ? (__u64)ret : 0);
}

/* ---- session teardown: a freed pointer may name the next connection ---- */

static __always_inline int forget_session(void *session)
{
	struct tls_session_key skey = {
		.session = (__u64)session,
		.tgid = bpf_get_current_pid_tgid() >> 32,
	};

	bpf_map_delete_elem(&tls_sessions, &skey);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_free, void *ssl)
{
	return forget_session(ssl);
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_deinit, void *session)
{
	return forget_session(session);
}
