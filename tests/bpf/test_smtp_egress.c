/*
 * BPF_PROG_TEST_RUN tests of bpf/smtp_egress.bpf.c: crafted Ethernet/IPv4/
 * IPv6/TCP packets go through the real program, and the test checks the
 * verdict, the ring records (consumed here with the capture module) and the
 * counters. Needs root (loading BPF).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <sys/epoll.h>
#include <time.h>

#include "capture.h"
#include "flow.h"
#include "loader.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define MAX_RECS 64
#define PKT_MAX 4096

struct rec {
	struct rw_record_hdr hdr;
	uint8_t data[RW_MAX_PAYLOAD];
};

struct env {
	struct loader ld;
	struct loader_maps maps;
	struct capture cap;
	struct rec recs[MAX_RECS];
	size_t n_recs;
	uint64_t cnt_before[RW_CNT_MAX];
};

/* What a test packet looks like; the builder turns it into bytes. */
struct pkt_spec {
	int family;            /* 4 or 6 */
	int l4proto;           /* 6 TCP, 17 UDP */
	uint16_t sport, dport;
	uint32_t seq;
	uint8_t tcp_flags;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *ext;    /* IPv6: extension header bytes, chain starting with ext_first */
	size_t ext_len;
	uint8_t ext_first;
	bool vlan;
};

static const char *const SRC4 = "198.51.100.1", *const DST4 = "198.51.100.2";
static const char *const SRC6 = "2001:db8:25::1", *const DST6 = "2001:db8:25::2";

static int collect(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	struct env *e = ctx;
	if (e->n_recs >= MAX_RECS)
		return -E2BIG;
	struct rec *r = &e->recs[e->n_recs++];
	r->hdr = *hdr;
	memcpy(r->data, data, hdr->len);
	return 0;
}

static int env_setup_chunks(void **state, uint32_t max_chunks)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[256];
	struct loader_opts o = { .max_chunks = max_chunks, .ring_size = 1u << 20 };
	if (!e)
		return -1;
	if (loader_open_load(&e->ld, &o, err, sizeof(err))) {
		fprintf(stderr, "load: %s\n", err);
		free(e);
		return -1;
	}
	loader_map_fds(&e->ld, &e->maps);
	if (capture_open(&e->cap, e->maps.ring, collect, e)) {
		loader_close(&e->ld);
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int env_setup(void **state)
{
	return env_setup_chunks(state, 0);
}

static int env_setup_one_chunk(void **state)
{
	return env_setup_chunks(state, 1);
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	capture_close(&e->cap);
	loader_close(&e->ld);
	free(e);
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* Builds Ethernet [+802.1Q] + IP + TCP/UDP + payload. Returns the length. */
static size_t build(const struct pkt_spec *s, uint8_t *buf)
{
	memset(buf, 0, PKT_MAX);
	size_t off = 12;
	if (s->vlan) {
		put16(buf + off, 0x8100);
		put16(buf + off + 2, 7);
		off += 4;
	}
	put16(buf + off, s->family == 4 ? 0x0800 : 0x86dd);
	off += 2;
	size_t l4len = (s->l4proto == 6 ? 20 : 8) + s->payload_len;
	uint8_t *ip = buf + off;
	if (s->family == 4) {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(20 + l4len));
		ip[8] = 64;
		ip[9] = (uint8_t)s->l4proto;
		inet_pton(AF_INET, SRC4, ip + 12);
		inet_pton(AF_INET, DST4, ip + 16);
		off += 20;
	} else {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)(s->ext_len + l4len));
		ip[6] = s->ext_len ? s->ext_first : (uint8_t)s->l4proto;
		ip[7] = 64;
		inet_pton(AF_INET6, SRC6, ip + 8);
		inet_pton(AF_INET6, DST6, ip + 24);
		off += 40;
		if (s->ext_len)
			memcpy(buf + off, s->ext, s->ext_len);
		off += s->ext_len;
	}
	uint8_t *l4 = buf + off;
	put16(l4, s->sport);
	put16(l4 + 2, s->dport);
	if (s->l4proto == 6) {
		put32(l4 + 4, s->seq);
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags;
		put16(l4 + 14, 65535);
		off += 20;
	} else {
		put16(l4 + 4, (uint16_t)l4len);
		off += 8;
	}
	if (s->payload_len)
		memcpy(buf + off, s->payload, s->payload_len);
	return off + s->payload_len;
}

/* Runs the program on raw bytes; returns its verdict and consumes the ring. */
static int run_raw(struct env *e, const uint8_t *data, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = data, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	e->n_recs = 0;
	int rc = bpf_prog_test_run_opts(loader_prog_fd(&e->ld), &t);
	assert_int_equal(rc, 0);
	assert_true(capture_consume(&e->cap) >= 0);
	return (int)t.retval;
}

static int run_pkt(struct env *e, const struct pkt_spec *s)
{
	uint8_t buf[PKT_MAX];
	size_t len = build(s, buf);
	return run_raw(e, buf, len);
}

static struct pkt_spec tcp4(uint16_t dport, uint32_t seq, uint8_t flags, const char *payload)
{
	struct pkt_spec s = { .family = 4, .l4proto = 6, .sport = 40000, .dport = dport,
			      .seq = seq, .tcp_flags = flags, .payload = (const uint8_t *)payload,
			      .payload_len = payload ? strlen(payload) : 0 };
	return s;
}

static struct rw_flow_key key4(uint16_t dport)
{
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, SRC4, 40000, DST4, dport), 0);
	return k;
}

static struct rw_flow_key key6(uint16_t dport)
{
	struct rw_flow_key k;
	assert_int_equal(flow_key_from_strings(&k, SRC6, 40000, DST6, dport), 0);
	return k;
}

static void counters_mark(struct env *e)
{
	assert_int_equal(loader_read_counters(&e->ld, e->cnt_before), 0);
}

static uint64_t counter_delta(struct env *e, enum rw_counter c)
{
	uint64_t now[RW_CNT_MAX];
	assert_int_equal(loader_read_counters(&e->ld, now), 0);
	return now[c] - e->cnt_before[c];
}

static void set_phase(struct env *e, const struct rw_flow_key *k, uint8_t phase, uint32_t bdat_end)
{
	struct rw_flow_state st;
	assert_int_equal(bpf_map_lookup_elem(e->maps.flows, k, &st), 0);
	st.phase = phase;
	st.bdat_end_seq = bdat_end;
	assert_int_equal(bpf_map_update_elem(e->maps.flows, k, &st, BPF_EXIST), 0);
}

static bool flow_tracked(struct env *e, const struct rw_flow_key *k)
{
	struct rw_flow_state st;
	return bpf_map_lookup_elem(e->maps.flows, k, &st) == 0;
}

static void assert_data(const struct rec *r, uint32_t seq, const char *text)
{
	assert_int_equal(r->hdr.kind, RW_REC_DATA);
	assert_int_equal(r->hdr.source, RW_SRC_TC);
	assert_int_equal(r->hdr.seq, seq);
	assert_int_equal(r->hdr.len, strlen(text));
	assert_memory_equal(r->data, text, strlen(text));
}

/* SYN -> flow start with the ISN; then a command -> one record at ISN+1. */
static void test_smtp25_start_and_command(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	counters_mark(e);

	struct pkt_spec s = tcp4(25, 1000, TH_SYN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_START);
	assert_int_equal(e->recs[0].hdr.seq, 1000);
	assert_int_equal(e->recs[0].hdr.flags & RW_RF_MIDSTREAM, 0);
	assert_true(flow_key_equal(&e->recs[0].hdr.flow, &k));
	assert_int_equal(e->recs[0].hdr.phase, RW_PHASE_COMMAND);

	s = tcp4(25, 1001, TH_ACK | TH_PSH, "RCPT TO:<a@army.ml>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 1001, "RCPT TO:<a@army.ml>\r\n");
	assert_int_equal(e->recs[0].hdr.flags, 0);
	assert_true(e->recs[0].hdr.ts_ns > 0);
	/* Under BPF_PROG_TEST_RUN the current task is this process. */
	if (e->ld.have_pid_helper)
		assert_int_equal(e->recs[0].hdr.pid, (uint32_t)getpid());
	else
		assert_int_equal(e->recs[0].hdr.pid, 0);
	assert_true(flow_key_equal(&e->recs[0].hdr.flow, &k));
	assert_int_equal(counter_delta(e, RW_CNT_RECORDS), 2);
	assert_int_equal(counter_delta(e, RW_CNT_FLOWS_NEW), 1);
	assert_int_equal(counter_delta(e, RW_CNT_FLOWS_MIDSTREAM), 0);
}

static void test_submission587_ipv6(void **state)
{
	struct env *e = *state;
	const char *cmd = "EHLO client.example\r\n";
	struct pkt_spec s = { .family = 6, .l4proto = 6, .sport = 40000, .dport = 587, .seq = 5,
			      .tcp_flags = TH_SYN };
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_START);

	s.tcp_flags = TH_ACK;
	s.seq = 6;
	s.payload = (const uint8_t *)cmd;
	s.payload_len = strlen(cmd);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 6, cmd);
	struct rw_flow_key k = key6(587);
	assert_true(flow_key_equal(&e->recs[0].hdr.flow, &k));
	assert_int_equal(e->recs[0].hdr.flow.family, RW_AF_INET6);
}

static void test_vlan_tagged_captured(void **state)
{
	struct env *e = *state;
	struct pkt_spec s = tcp4(25, 77, TH_ACK, "NOOP\r\n");
	s.vlan = true;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 77, "NOOP\r\n");
}

static void test_other_port_and_udp_ignored(void **state)
{
	struct env *e = *state;
	counters_mark(e);
	struct pkt_spec s = tcp4(80, 1, TH_SYN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	s = tcp4(80, 2, TH_ACK, "GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	struct rw_flow_key k = key4(80);
	assert_false(flow_tracked(e, &k));

	s = tcp4(25, 0, 0, "RCPT TO:<x@y>\r\n");
	s.l4proto = 17;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_RECORDS), 0);
	assert_int_equal(counter_delta(e, RW_CNT_UNPARSABLE), 0);
}

/* A pure ACK of an unknown flow (after our FIN removed it) creates nothing. */
static void test_pure_ack_creates_nothing(void **state)
{
	struct env *e = *state;
	counters_mark(e);
	struct pkt_spec s = tcp4(25, 9, TH_ACK, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	struct rw_flow_key k = key4(25);
	assert_false(flow_tracked(e, &k));
	assert_int_equal(counter_delta(e, RW_CNT_FLOWS_NEW), 0);
}

static void test_blocked_flow_dropped(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	struct rw_block b = { .blocked_ns = 1, .drops = 0 };
	assert_int_equal(bpf_map_update_elem(e->maps.blocked, &k, &b, BPF_ANY), 0);
	counters_mark(e);

	struct pkt_spec s = tcp4(25, 500, TH_ACK, "DATA\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_BLOCKED_DROPS), 2);
	assert_int_equal(bpf_map_lookup_elem(e->maps.blocked, &k, &b), 0);
	assert_int_equal(b.drops, 2);

	/* A FIN with payload still carries content: dropped. */
	s = tcp4(25, 506, TH_ACK | TH_FIN, "QUIT\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	/* The socket destroy's reset carries nothing and must reach the server. */
	s = tcp4(25, 506, TH_RST | TH_ACK, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(bpf_map_lookup_elem(e->maps.blocked, &k, &b), 0);

	/* Another flow to the same server is not affected. */
	s = tcp4(25, 500, TH_ACK, "DATA\r\n");
	s.sport = 40001;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);

	/* A SYN on the blocked tuple opens a new connection: judged afresh. */
	s = tcp4(25, 9000, TH_SYN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_START);
	assert_true(bpf_map_lookup_elem(e->maps.blocked, &k, &b) < 0);
	s = tcp4(25, 9001, TH_ACK, "EHLO x\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 9001, "EHLO x\r\n");
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)('A' + (i * 7) % 26);
	return p;
}

/* 3000 bytes: two records, 2048 + 952, with consecutive seqs, nothing lost. */
static void test_large_segment_split(void **state)
{
	struct env *e = *state;
	const size_t n = 3000;
	uint8_t *pl = pattern(n);
	counters_mark(e);
	struct pkt_spec s = tcp4(25, 0xfffffe00u, TH_ACK, NULL);
	s.payload = pl;
	s.payload_len = n;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 2);
	assert_int_equal(e->recs[0].hdr.seq, 0xfffffe00u);
	assert_int_equal(e->recs[0].hdr.len, RW_MAX_PAYLOAD);
	assert_memory_equal(e->recs[0].data, pl, RW_MAX_PAYLOAD);
	assert_int_equal(e->recs[1].hdr.seq, (uint32_t)(0xfffffe00u + RW_MAX_PAYLOAD));
	assert_int_equal(e->recs[1].hdr.len, n - RW_MAX_PAYLOAD);
	assert_memory_equal(e->recs[1].data, pl + RW_MAX_PAYLOAD, n - RW_MAX_PAYLOAD);
	assert_int_equal(e->recs[1].hdr.flags & RW_RF_TRUNCATED, 0);
	assert_int_equal(counter_delta(e, RW_CNT_TRUNC_BYTES), 0);
	free(pl);
}

/* With one record per segment allowed, the rest is flagged and counted. */
static void test_over_max_chunks_truncated(void **state)
{
	struct env *e = *state;
	const size_t n = 3000;
	uint8_t *pl = pattern(n);
	counters_mark(e);
	struct pkt_spec s = tcp4(25, 100, TH_ACK, NULL);
	s.payload = pl;
	s.payload_len = n;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.len, RW_MAX_PAYLOAD);
	assert_true(e->recs[0].hdr.flags & RW_RF_TRUNCATED);
	assert_int_equal(counter_delta(e, RW_CNT_TRUNC_BYTES), n - RW_MAX_PAYLOAD);
	free(pl);
}

static void test_short_and_malformed_headers(void **state)
{
	struct env *e = *state;
	uint8_t buf[PKT_MAX];
	counters_mark(e);

	/* BPF_PROG_TEST_RUN refuses IPv4 frames shorter than Ethernet + 20, so
	 * "short" means: headers that claim more than the frame holds. */
	struct pkt_spec s = tcp4(25, 1, TH_ACK, "QUIT\r\n");
	build(&s, buf);
	/* IHL 15 (60-byte header) in a 20-byte IPv4 packet. */
	buf[14] = 0x4f;
	put16(buf + 16, 20);
	assert_int_equal(run_raw(e, buf, 14 + 20), TC_ACT_OK);
	build(&s, buf);
	/* Full IPv4 header, TCP header cut after 8 bytes (tot_len says more). */
	assert_int_equal(run_raw(e, buf, 14 + 20 + 8), TC_ACT_OK);
	/* IHL 3. */
	size_t len = build(&s, buf);
	buf[14] = 0x43;
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);
	/* tot_len smaller than the header. */
	len = build(&s, buf);
	put16(buf + 16, 12);
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);
	/* TCP data offset 3. */
	len = build(&s, buf);
	buf[14 + 20 + 12] = 3 << 4;
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);
	/* Non-first IPv4 fragment. */
	len = build(&s, buf);
	put16(buf + 14 + 6, 100);
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);
	/* IPv6 payload length beyond the frame. */
	struct pkt_spec s6 = { .family = 6, .l4proto = 6, .sport = 1, .dport = 25 };
	len = build(&s6, buf);
	put16(buf + 14 + 4, 200);
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);
	/* IPv6 hop-by-hop header running past the end of the frame. */
	uint8_t hbh[8] = { 6, 200 };
	s6.ext = hbh;
	s6.ext_len = sizeof(hbh);
	s6.ext_first = 0;
	len = build(&s6, buf);
	assert_int_equal(run_raw(e, buf, len), TC_ACT_OK);

	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_UNPARSABLE), 8);
	assert_int_equal(counter_delta(e, RW_CNT_RECORDS), 0);
}

/* Hop-by-hop -> destination options -> fragment (offset 0) -> TCP. */
static void test_ipv6_known_ext_headers_captured(void **state)
{
	struct env *e = *state;
	uint8_t ext[8 + 16 + 8];
	memset(ext, 0, sizeof(ext));
	ext[0] = 60;          /* hop-by-hop, next: destination options */
	ext[1] = 0;           /* 8 bytes */
	ext[2] = 1;           /* PadN */
	ext[3] = 4;
	ext[8] = 44;          /* destination options, next: fragment */
	ext[9] = 1;           /* 16 bytes */
	ext[10] = 1;
	ext[11] = 12;
	ext[24] = 6;          /* fragment, next: TCP; offset 0, M=0 */
	const char *cmd = "MAIL FROM:<a@b.example>\r\n";
	struct pkt_spec s = { .family = 6, .l4proto = 6, .sport = 40000, .dport = 25, .seq = 42,
			      .tcp_flags = TH_ACK, .payload = (const uint8_t *)cmd,
			      .payload_len = strlen(cmd), .ext = ext, .ext_len = sizeof(ext),
			      .ext_first = 0 };
	counters_mark(e);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 42, cmd);
	assert_int_equal(counter_delta(e, RW_CNT_IPV6_EXT_UNKNOWN), 0);
	assert_int_equal(counter_delta(e, RW_CNT_UNPARSABLE), 0);
}

static void test_ipv6_unknown_ext_counted(void **state)
{
	struct env *e = *state;
	uint8_t ext[8] = { 6, 0 }; /* experimental header 253, next: TCP */
	const char *cmd = "RCPT TO:<a@b>\r\n";
	struct pkt_spec s = { .family = 6, .l4proto = 6, .sport = 40000, .dport = 25, .seq = 1,
			      .tcp_flags = TH_ACK, .payload = (const uint8_t *)cmd,
			      .payload_len = strlen(cmd), .ext = ext, .ext_len = sizeof(ext),
			      .ext_first = 253 };
	counters_mark(e);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_IPV6_EXT_UNKNOWN), 1);

	/* Non-first IPv6 fragment: ports unknown, counted as unparsable. */
	uint8_t frag[8] = { 6, 0, 0x01, 0x00 };
	s.ext = frag;
	s.ext_first = 44;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_UNPARSABLE), 1);
}

/* Port 465: opaque from the first byte; only start and end reach the ring. */
static void test_implicit_tls_opaque(void **state)
{
	struct env *e = *state;
	counters_mark(e);
	struct pkt_spec s = tcp4(465, 10, TH_SYN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_START);
	assert_int_equal(e->recs[0].hdr.phase, RW_PHASE_OPAQUE);
	s = tcp4(465, 11, TH_ACK, "\x16\x03\x01 client hello");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_OPAQUE_PACKETS), 1);
	s = tcp4(465, 30, TH_ACK | TH_FIN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_END);
}

/* STARTTLS: user space sets OPAQUE on a port-25 flow; bytes stop. */
static void test_starttls_opaque_phase(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	struct pkt_spec s = tcp4(25, 1, TH_SYN, NULL);
	run_pkt(e, &s);
	s = tcp4(25, 2, TH_ACK, "STARTTLS\r\n");
	run_pkt(e, &s);
	assert_int_equal(e->n_recs, 1);
	set_phase(e, &k, RW_PHASE_OPAQUE, 0);
	s = tcp4(25, 12, TH_ACK, "\x16\x03\x01 hello");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
}

/* DATA phase: only the last RW_BODY_TAIL bytes, flagged, skipped counted. */
static void test_data_phase_tail_only(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	struct pkt_spec s = tcp4(25, 1, TH_SYN, NULL);
	run_pkt(e, &s);
	set_phase(e, &k, RW_PHASE_DATA, 0);
	counters_mark(e);

	const size_t n = 3000;
	uint8_t *pl = pattern(n);
	s = tcp4(25, 2, TH_ACK, NULL);
	s.payload = pl;
	s.payload_len = n;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	const struct rec *r = &e->recs[0];
	assert_int_equal(r->hdr.len, RW_BODY_TAIL);
	assert_int_equal(r->hdr.skipped, n - RW_BODY_TAIL);
	assert_int_equal(r->hdr.seq, 2 + n - RW_BODY_TAIL);
	assert_true(r->hdr.flags & RW_RF_BODY_TAIL);
	assert_int_equal(r->hdr.phase, RW_PHASE_DATA);
	assert_memory_equal(r->data, pl + n - RW_BODY_TAIL, RW_BODY_TAIL);
	assert_int_equal(counter_delta(e, RW_CNT_BODY_SKIPPED_BYTES), n - RW_BODY_TAIL);

	/* A short last segment comes whole, still flagged as tail. */
	s = tcp4(25, (uint32_t)(2 + n), TH_ACK, "end\r\n.\r\nMAIL FROM:<c@d>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], (uint32_t)(2 + n), "end\r\n.\r\nMAIL FROM:<c@d>\r\n");
	assert_true(e->recs[0].hdr.flags & RW_RF_BODY_TAIL);
	assert_int_equal(e->recs[0].hdr.skipped, 0);
	free(pl);
}

/* BDAT phase across the 2^32 wrap: nothing before bdat_end_seq, all after. */
static void test_bdat_phase_wraparound(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	const uint32_t isn = 0xfffff000u;
	struct pkt_spec s = tcp4(25, isn, TH_SYN, NULL);
	run_pkt(e, &s);
	/* Chunk ends 0x1100 bytes after data start: at seq 0x00000101. */
	const uint32_t end = isn + 1 + 0x1100;
	assert_true(end < isn); /* wrapped */
	set_phase(e, &k, RW_PHASE_BDAT, end);
	counters_mark(e);

	uint8_t *pl = pattern(3000);
	/* Wholly inside the chunk. */
	s = tcp4(25, isn + 1, TH_ACK, NULL);
	s.payload = pl;
	s.payload_len = 3000;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_BODY_SKIPPED_BYTES), 3000);

	/* Straddles the end (and the wrap): 0x1100 - 3000 = 1352 skipped. */
	s.seq = isn + 1 + 3000;
	s.payload_len = 2000;
	const uint32_t ahead = 0x1100 - 3000;
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.seq, end);
	assert_int_equal(e->recs[0].hdr.skipped, ahead);
	assert_int_equal(e->recs[0].hdr.len, 2000 - ahead);
	assert_memory_equal(e->recs[0].data, pl + ahead, 2000 - ahead);
	assert_int_equal(e->recs[0].hdr.flags & RW_RF_BODY_TAIL, 0);
	assert_int_equal(counter_delta(e, RW_CNT_BODY_SKIPPED_BYTES), 3000 + ahead);

	/* After the end: sent whole. */
	s = tcp4(25, end + 2000 - ahead, TH_ACK, "BDAT 10 LAST\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], end + 2000 - ahead, "BDAT 10 LAST\r\n");
	free(pl);
}

static void test_fin_and_rst_end_flow(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	struct pkt_spec s = tcp4(25, 1, TH_SYN, NULL);
	run_pkt(e, &s);
	s = tcp4(25, 2, TH_ACK | TH_FIN, "QUIT\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 2);
	assert_data(&e->recs[0], 2, "QUIT\r\n");
	assert_int_equal(e->recs[1].hdr.kind, RW_REC_FLOW_END);
	assert_int_equal(e->recs[1].hdr.flags, RW_RF_FIN);
	assert_int_equal(e->recs[1].hdr.seq, 8);
	assert_false(flow_tracked(e, &k));

	s = tcp4(25, 100, TH_SYN, NULL);
	run_pkt(e, &s);
	assert_true(flow_tracked(e, &k));
	s = tcp4(25, 101, TH_RST, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.kind, RW_REC_FLOW_END);
	assert_int_equal(e->recs[0].hdr.flags, RW_RF_RST);
	assert_false(flow_tracked(e, &k));
}

/* First seen without SYN (attached late, or LRU eviction): flagged once. */
static void test_midstream_flow_flagged(void **state)
{
	struct env *e = *state;
	counters_mark(e);
	struct pkt_spec s = tcp4(587, 7000, TH_ACK, "RCPT TO:<a@b>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_true(e->recs[0].hdr.flags & RW_RF_MIDSTREAM);
	s = tcp4(587, 7015, TH_ACK, "DATA\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(e->recs[0].hdr.flags & RW_RF_MIDSTREAM, 0);
	assert_int_equal(counter_delta(e, RW_CNT_FLOWS_MIDSTREAM), 1);
	assert_int_equal(counter_delta(e, RW_CNT_FLOWS_NEW), 1);
}

/* Runs a packet and reports whether the ring woke its epoll waiter,
 * without consuming first (run_pkt drains the ring right away). */
static bool woke_consumer(struct env *e, const struct pkt_spec *s)
{
	uint8_t buf[PKT_MAX];
	size_t len = build(s, buf);
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = buf, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	struct epoll_event ev;
	int efd = ring_buffer__epoll_fd(e->cap.rb);
	/* The ring is drained: this wait takes it off epoll's ready list
	 * (level-triggered), so only a new wakeup can put it back. */
	assert_int_equal(epoll_wait(efd, &ev, 1, 0), 0);
	assert_int_equal(bpf_prog_test_run_opts(loader_prog_fd(&e->ld), &t), 0);
	assert_int_equal((int)t.retval, TC_ACT_OK);
	int n = epoll_wait(efd, &ev, 1, 0);
	e->n_recs = 0;
	assert_true(capture_consume(&e->cap) >= 0);
	assert_int_equal(e->n_recs, 1); /* the record is there either way */
	return n > 0;
}

/*
 * Body tails wake user space only when they can end a line (the end of the
 * message, or a command after it); the others wait for the next wakeup.
 * Command phase wakes it for every segment.
 */
static void test_body_tail_wakeup(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	struct pkt_spec s = tcp4(25, 1, TH_SYN, NULL);
	run_pkt(e, &s);
	s = tcp4(25, 2, TH_ACK, "DATA\r\n");
	assert_true(woke_consumer(e, &s));
	set_phase(e, &k, RW_PHASE_DATA, 0);
	s = tcp4(25, 8, TH_ACK, "Subject: a body line cut in the midd");
	assert_false(woke_consumer(e, &s));
	s = tcp4(25, 44, TH_ACK, "le\r\n.");
	assert_true(woke_consumer(e, &s));
	s = tcp4(25, 49, TH_ACK, "\r");
	assert_true(woke_consumer(e, &s));
	s = tcp4(25, 50, TH_ACK, "\nQUIT\r\n");
	assert_true(woke_consumer(e, &s));
}

/* ---- the judgement gate ------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_consumer(struct env *e, uint64_t alive_until_ns, uint64_t hold_ns)
{
	uint32_t zero = 0;
	struct rw_consumer c = { .alive_until_ns = alive_until_ns, .hold_ns = hold_ns };
	assert_int_equal(bpf_map_update_elem(e->maps.consumer, &zero, &c, BPF_ANY), 0);
}

static void set_judged(struct env *e, const struct rw_flow_key *k, uint32_t next)
{
	assert_int_equal(bpf_map_update_elem(e->maps.judged, k, &next, BPF_ANY), 0);
}

/*
 * A new segment waits until every byte before it is judged; a
 * retransmission of bytes already let through does not; the body phase is
 * not gated.
 */
static void test_gate_holds_until_judged(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	set_consumer(e, now_ns() + 60ull * 1000000000, 60ull * 1000000000);
	struct pkt_spec s = tcp4(25, 100, TH_SYN, NULL);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	counters_mark(e);

	s = tcp4(25, 101, TH_ACK, "EHLO x\r\n"); /* first payload: nothing to wait for */
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);

	struct pkt_spec mail = tcp4(25, 109, TH_ACK, "MAIL FROM:<a@b>\r\n");
	assert_int_equal(run_pkt(e, &mail), TC_ACT_SHOT);
	assert_int_equal(e->n_recs, 0); /* recorded when TCP sends it again */
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 1);

	assert_int_equal(run_pkt(e, &s), TC_ACT_OK); /* retransmitted EHLO */
	assert_int_equal(e->n_recs, 1);

	set_judged(e, &k, 105); /* half of EHLO judged: still held */
	assert_int_equal(run_pkt(e, &mail), TC_ACT_SHOT);
	set_judged(e, &k, 109);
	assert_int_equal(run_pkt(e, &mail), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_data(&e->recs[0], 109, "MAIL FROM:<a@b>\r\n");

	s = tcp4(25, 126, TH_ACK, "RCPT TO:<c@d>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	set_judged(e, &k, 126);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 3);

	/* Body phase: tails stream through, nothing waits. */
	set_phase(e, &k, RW_PHASE_DATA, 0);
	s = tcp4(25, 142, TH_ACK, "body line\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 3);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_EXPIRED), 0);

	/* The flow's end forgets what user space acknowledged. */
	s = tcp4(25, 153, TH_ACK | TH_FIN, NULL);
	run_pkt(e, &s);
	uint32_t judged;
	assert_true(bpf_map_lookup_elem(e->maps.judged, &k, &judged) < 0);
}

/*
 * The next message on a connection follows the body's end at once, while
 * the kernel still has the flow in DATA phase: the segment after a
 * "\n.\r\n" waits until user space has read that end (and so has switched
 * the flow back to command phase); the body itself never waits.
 */
static void test_gate_after_data_end(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	set_consumer(e, now_ns() + 60ull * 1000000000, 60ull * 1000000000);
	struct pkt_spec s = tcp4(25, 100, TH_SYN, NULL);
	run_pkt(e, &s);
	s = tcp4(25, 101, TH_ACK, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"); /* 40 bytes */
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	set_phase(e, &k, RW_PHASE_DATA, 0);
	counters_mark(e);

	s = tcp4(25, 141, TH_ACK, "Subject: x\r\n\r\n"); /* 16: unjudged, streams */
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	struct pkt_spec end = tcp4(25, 157, TH_ACK, "body\r\n.\r\n"); /* 11 */
	assert_int_equal(run_pkt(e, &end), TC_ACT_OK);
	struct pkt_spec next = tcp4(25, 168, TH_ACK, "MAIL FROM:<e@f>\r\n");
	assert_int_equal(run_pkt(e, &next), TC_ACT_SHOT);
	assert_int_equal(e->n_recs, 0);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 1);
	assert_int_equal(run_pkt(e, &end), TC_ACT_OK); /* retransmitted end */
	assert_int_equal(run_pkt(e, &next), TC_ACT_SHOT);

	/* User space reads the end: command phase, acknowledged. */
	set_phase(e, &k, RW_PHASE_COMMAND, 0);
	set_judged(e, &k, 168);
	assert_int_equal(run_pkt(e, &next), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	s = tcp4(25, 185, TH_ACK, "RCPT TO:<g@h>\r\n"); /* the MAIL is not judged yet */
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 3);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_EXPIRED), 0);
}

/* The end written by itself: ".\r\n" alone in its segment. */
static void test_gate_after_lone_dot(void **state)
{
	struct env *e = *state;
	struct rw_flow_key k = key4(25);
	set_consumer(e, now_ns() + 60ull * 1000000000, 60ull * 1000000000);
	struct pkt_spec s = tcp4(25, 100, TH_SYN, NULL);
	run_pkt(e, &s);
	s = tcp4(25, 101, TH_ACK, "DATA\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	set_phase(e, &k, RW_PHASE_DATA, 0);
	s = tcp4(25, 107, TH_ACK, "x\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	s = tcp4(25, 110, TH_ACK, ".\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	s = tcp4(25, 113, TH_ACK, "QUIT\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_SHOT);
	set_judged(e, &k, 113);
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
}

/* No heartbeat (rcptwall stopped or gone) or hold 0: the gate is open. */
static void test_gate_open_without_consumer(void **state)
{
	struct env *e = *state;
	struct pkt_spec s = tcp4(25, 100, TH_SYN, NULL);
	run_pkt(e, &s);
	counters_mark(e);
	set_consumer(e, now_ns() - 1, 60ull * 1000000000); /* heartbeat is over */
	s = tcp4(25, 101, TH_ACK, "EHLO x\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	s = tcp4(25, 109, TH_ACK, "MAIL FROM:<a@b>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	set_consumer(e, now_ns() + 60ull * 1000000000, 0); /* gate switched off */
	s = tcp4(25, 126, TH_ACK, "RCPT TO:<c@d>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 0);
}

/* A segment never waits longer than hold_ns: then it leaves, counted. */
static void test_gate_hold_expires(void **state)
{
	struct env *e = *state;
	set_consumer(e, now_ns() + 60ull * 1000000000, 1); /* 1 ns: always expired */
	struct pkt_spec s = tcp4(25, 100, TH_SYN, NULL);
	run_pkt(e, &s);
	counters_mark(e);
	s = tcp4(25, 101, TH_ACK, "EHLO x\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	s = tcp4(25, 109, TH_ACK, "MAIL FROM:<a@b>\r\n");
	assert_int_equal(run_pkt(e, &s), TC_ACT_OK);
	assert_int_equal(e->n_recs, 1);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_HELD), 0);
	assert_int_equal(counter_delta(e, RW_CNT_GATE_EXPIRED), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_smtp25_start_and_command, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_submission587_ipv6, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_vlan_tagged_captured, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_other_port_and_udp_ignored, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_pure_ack_creates_nothing, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_blocked_flow_dropped, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_large_segment_split, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_over_max_chunks_truncated, env_setup_one_chunk, env_teardown),
		cmocka_unit_test_setup_teardown(test_short_and_malformed_headers, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_known_ext_headers_captured, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_unknown_ext_counted, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_implicit_tls_opaque, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_starttls_opaque_phase, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_data_phase_tail_only, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_bdat_phase_wraparound, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_fin_and_rst_end_flow, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_midstream_flow_flagged, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_body_tail_wakeup, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_gate_holds_until_judged, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_gate_after_data_end, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_gate_after_lone_dot, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_gate_open_without_consumer, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_gate_hold_expires, env_setup, env_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
