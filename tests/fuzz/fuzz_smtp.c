/*
 * libFuzzer target for the SMTP parser.
 *
 * Input: 8 bytes of PRNG seed, then client bytes. "\xff\xfe" splits the
 * bytes into up to 6 streams: streams 0-2 are the TC bytes of three flows,
 * 3-5 the TLS plaintext of the same flows. The PRNG then cuts every stream
 * into segments and interleaves them with the tricks the kernel and the
 * network play: reordering, duplicates, overlapping retransmissions, body
 * tails (skipped bytes), sequence numbers near the 2^32 wrap, flow ends in
 * the middle, and limits small enough that eviction and the hold cap run.
 * The callback checks every event's invariants.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

#define NSTREAMS 6
#define MAX_STEPS 4096

struct stream_src {
	const uint8_t *data;
	size_t len, sent;   /* bytes delivered in order so far */
	uint32_t base;      /* sequence number of data[0] */
};

struct fuzz_state {
	uint64_t rng;
	struct rw_flow_key keys[3];
	struct stream_src st[NSTREAMS];
	uint64_t events;
};

static uint32_t rnd(struct fuzz_state *f, uint32_t n)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return n ? (uint32_t)(f->rng % n) : 0;
}

static void check_str(const char *s, size_t cap)
{
	assert(memchr(s, '\0', cap) != NULL);
}

static void on_event(const struct smtp_event *ev, void *ctx)
{
	struct fuzz_state *f = ctx;
	f->events++;
	assert(ev->flow != NULL);
	assert(ev->source == RW_SRC_TC || ev->source == RW_SRC_TLS);
	assert(strcmp(smtp_event_name(ev->kind), "unknown") != 0);
	switch (ev->kind) {
	case SMTP_EV_MAIL:
	case SMTP_EV_RCPT:
		check_str(ev->u.mailbox.mailbox, SMTP_ADDR_MAX);
		check_str(ev->u.mailbox.local, SMTP_ADDR_MAX);
		check_str(ev->u.mailbox.domain, SMTP_ADDR_MAX);
		check_str(ev->u.mailbox.params, SMTP_ADDR_MAX);
		if (ev->mail_from)
			check_str(ev->mail_from->mailbox, SMTP_ADDR_MAX);
		break;
	case SMTP_EV_ANOMALY:
		assert(ev->u.anomaly.code > SMTP_AN_NONE && ev->u.anomaly.code < SMTP_AN_MAX);
		check_str(ev->u.anomaly.detail, sizeof(ev->u.anomaly.detail));
		for (const char *c = ev->u.anomaly.detail; *c; c++)
			assert(*c >= 0x20 && *c < 0x7f); /* escaped, printable */
		break;
	case SMTP_EV_PHASE:
		assert(ev->u.phase.phase <= RW_PHASE_OPAQUE);
		break;
	default:
		break;
	}
}

static size_t split_streams(struct fuzz_state *f, const uint8_t *d, size_t len)
{
	size_t n = 0, start = 0;
	for (size_t i = 0; i + 1 < len && n < NSTREAMS - 1; i++) {
		if (d[i] == 0xff && d[i + 1] == 0xfe) {
			f->st[n].data = d + start;
			f->st[n++].len = i - start;
			start = i + 2;
			i++;
		}
	}
	f->st[n].data = d + start;
	f->st[n++].len = len - start;
	return n;
}

static void send_range(struct smtp_parser *p, struct fuzz_state *f, int si, size_t off,
		       size_t len, uint32_t skipped)
{
	struct stream_src *s = &f->st[si];
	struct smtp_segment seg = {
		.flow = &f->keys[si % 3],
		.source = si < 3 ? RW_SRC_TC : RW_SRC_TLS,
		.seq = s->base + (uint32_t)off,
		.skipped = skipped,
		.data = s->data + off,
		.len = (uint32_t)len,
		.ts_ns = f->events,
	};
	smtp_parser_feed(p, &seg);
}

/* One step on stream si: a fresh segment, maybe with a trick. */
static void step(struct smtp_parser *p, struct fuzz_state *f, int si)
{
	struct stream_src *s = &f->st[si];
	size_t left = s->len - s->sent;
	size_t n = 1 + rnd(f, rnd(f, 4) ? 64 : 3000);
	if (n > left)
		n = left;
	switch (rnd(f, 10)) {
	case 0: { /* out of order: the next segment first, then this one */
		size_t m = left - n ? 1 + rnd(f, (uint32_t)(left - n)) : 0;
		if (m > 512)
			m = 512;
		if (m)
			send_range(p, f, si, s->sent + n, m, 0);
		send_range(p, f, si, s->sent, n, 0);
		s->sent += n + m;
		return;
	}
	case 1: /* overlapping retransmission */
		if (s->sent) {
			size_t back = 1 + rnd(f, (uint32_t)(s->sent < 100 ? s->sent : 100));
			send_range(p, f, si, s->sent - back, back + n, 0);
			s->sent += n;
			return;
		}
		break;
	case 2: { /* body tail: only the end of the segment is carried */
		uint32_t skip = rnd(f, (uint32_t)n);
		send_range(p, f, si, s->sent + skip, n - skip, skip);
		s->sent += n;
		return;
	}
	case 3: /* lost segment */
		if (rnd(f, 4) == 0) {
			s->sent += n;
			return;
		}
		break;
	default:
		break;
	}
	send_range(p, f, si, s->sent, n, 0);
	if (rnd(f, 16) == 0) /* plain duplicate */
		send_range(p, f, si, s->sent, n, 0);
	s->sent += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state f;
	memset(&f, 0, sizeof(f));
	uint8_t seed[8] = { 0 };
	memcpy(seed, data, size < 8 ? size : 8);
	memcpy(&f.rng, seed, 8);
	f.rng |= 1;
	size_t off = size < 8 ? size : 8;
	size_t ns = split_streams(&f, data + off, size - off);

	struct smtp_limits lim = {
		.max_flows = 1 + rnd(&f, 4),
		.max_bytes_total = rnd(&f, 2) ? (1u << 20) : 4096 + rnd(&f, 8192),
		.max_ooo_bytes = 64 + rnd(&f, 2048),
	};
	struct smtp_parser *p = smtp_parser_new(&lim, on_event, &f);
	if (!p)
		return 0;
	for (int i = 0; i < 3; i++) {
		f.keys[i].family = RW_AF_INET;
		f.keys[i].sport = (uint16_t)(40000 + i);
		f.keys[i].dport = 25;
		f.keys[i].saddr[0] = 198;
		f.keys[i].daddr[0] = 198;
	}
	for (size_t i = 0; i < ns; i++) {
		/* half the streams start near the wrap */
		f.st[i].base = rnd(&f, 2) ? 0xffffffffu - rnd(&f, 4096) : rnd(&f, 1u << 31);
		if (i < 3 && rnd(&f, 2))
			smtp_parser_flow_start(p, &f.keys[i], RW_SRC_TC, f.st[i].base - 1, 0);
	}
	for (int steps = 0; steps < MAX_STEPS; steps++) {
		int live[NSTREAMS], nl = 0;
		for (size_t i = 0; i < ns; i++)
			if (f.st[i].sent < f.st[i].len)
				live[nl++] = (int)i;
		if (!nl)
			break;
		int si = live[rnd(&f, (uint32_t)nl)];
		step(p, &f, si);
		if (rnd(&f, 200) == 0)
			smtp_parser_flow_end(p, &f.keys[si % 3], 0);
	}
	struct smtp_stats st;
	smtp_parser_stats(p, &st);
	assert(st.flows_active <= lim.max_flows);
	for (int i = 0; i < 3; i++)
		smtp_parser_flow_end(p, &f.keys[i], 0);
	smtp_parser_stats(p, &st);
	assert(st.flows_active == 0);
	smtp_parser_free(p);
	return 0;
}
