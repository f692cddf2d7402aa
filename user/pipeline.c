/* The pipeline of `rcptwall run`: records -> parser -> matcher -> enforcer -> log. */
#include "pipeline.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"

/* Monitor mode: flows whose current transaction was reported as
 * would-block (direct-mapped by hash; a collision only repeats a report).
 * Power of two. */
#define WOULD_BLOCK_SLOTS 4096

/* The gate stays closable this long after the last heartbeat: a stopped or
 * killed rcptwall holds no mail for longer. */
#define GATE_ALIVE_NS (2000ull * 1000 * 1000)
#define GATE_REFRESH_NS (250ull * 1000 * 1000)

struct pipeline {
	struct smtp_parser *parser;
	struct matcher *matcher;
	struct enforcer *enforcer;
	struct rw_log *log;
	int flows_fd;
	bool log_recipients;
	bool have_gate;
	struct pipeline_gate gate;
	uint64_t gate_refreshed_ns;
	/* Monitor mode reports one would-block per transaction of a flow, as
	 * enforce mode blocks a flow once (and a later message comes on a new
	 * connection). */
	struct rw_flow_key would_blocked[WOULD_BLOCK_SLOTS];
	bool would_blocked_used[WOULD_BLOCK_SLOTS];
	/* CLOCK_MONOTONIC when the record being fed was read from the ring. */
	uint64_t record_read_ns;
	struct pipeline_stats stats;
	/* Last values seen, to report only growth as loss. */
	uint64_t seen_kernel[RW_CNT_MAX];
	uint64_t seen_gaps, seen_evicted;
	uint64_t seen_enforce_errors;
};

static void on_parser_event(const struct smtp_event *ev, void *ctx);

int pipeline_new(const struct pipeline_opts *opts, struct pipeline **out, char *err,
		 size_t errlen)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "pipeline: out of memory");
		return -ENOMEM;
	}
	p->parser = smtp_parser_new(opts->limits, on_parser_event, p);
	if (!p->parser) {
		snprintf(err, errlen, "SMTP parser: out of memory");
		free(p);
		return -ENOMEM;
	}
	p->matcher = opts->matcher;
	p->enforcer = opts->enforcer;
	p->log = opts->log;
	p->flows_fd = opts->flows_fd;
	p->log_recipients = opts->log_recipients;
	if (opts->gate) {
		p->have_gate = true;
		p->gate = *opts->gate;
	}
	*out = p;
	return 0;
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	pipeline_gate_open(p);
	smtp_parser_free(p->parser);
	matcher_free(p->matcher);
	free(p);
}

struct matcher *pipeline_swap_matcher(struct pipeline *p, struct matcher *m)
{
	struct matcher *old = p->matcher;
	p->matcher = m;
	return old;
}

static uint64_t monotonic_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Writes the gate's heartbeat; alive = false opens the gate at once. */
static void gate_heartbeat(struct pipeline *p, bool alive, uint64_t now)
{
	uint32_t zero = 0;
	struct rw_consumer c = {
		.alive_until_ns = alive ? now + GATE_ALIVE_NS : 0,
		.hold_ns = alive ? p->gate.hold_ns : 0,
	};
	if (bpf_map_update_elem(p->gate.consumer_fd, &zero, &c, BPF_ANY) == 0)
		p->gate_refreshed_ns = now;
}

void pipeline_gate_open(struct pipeline *p)
{
	if (p->have_gate)
		gate_heartbeat(p, false, 0);
	p->have_gate = false;
}

/*
 * Tells the kernel's gate how far the flow's command bytes are judged: the
 * parser has delivered every event (and the enforcer has blocked) for the
 * bytes before the stream's next expected byte. Regressing never happens,
 * since that position only moves forward, retransmissions or not.
 */
static void gate_ack(struct pipeline *p, const struct rw_record_hdr *hdr)
{
	uint32_t next;
	/* A flow the parser could not track (memory cap: reported as loss)
	 * will never be judged; holding its bytes would only delay the mail. */
	if (smtp_parser_stream_next(p->parser, &hdr->flow, hdr->source, &next))
		next = hdr->seq + hdr->len;
	/* A failed write only delays the flow's next segment until hold_ns,
	 * which is then counted as gate_expired and reported. */
	bpf_map_update_elem(p->gate.judged_fd, &hdr->flow, &next, BPF_ANY);
}

/*
 * Records the kernel's gate waits for: command-phase bytes, and in DATA
 * phase a tail that may end the body (the gate holds the segment after a
 * "\n.\r\n"; a tail that does not end a line cannot be one).
 */
static bool gate_wants_ack(const struct rw_record_hdr *hdr, const uint8_t *data)
{
	if (hdr->source != RW_SRC_TC)
		return false;
	if (hdr->phase == RW_PHASE_COMMAND)
		return true;
	return hdr->phase == RW_PHASE_DATA && hdr->len > 0 && data[hdr->len - 1] == '\n';
}

/* Monitor mode: true if the flow was reported already, else remembers it. */
static bool would_block_seen(struct pipeline *p, const struct rw_flow_key *k)
{
	size_t i = flow_key_hash(k) & (WOULD_BLOCK_SLOTS - 1);
	if (p->would_blocked_used[i] && flow_key_equal(&p->would_blocked[i], k))
		return true;
	p->would_blocked[i] = *k;
	p->would_blocked_used[i] = true;
	return false;
}

static void would_block_forget(struct pipeline *p, const struct rw_flow_key *k)
{
	size_t i = flow_key_hash(k) & (WOULD_BLOCK_SLOTS - 1);
	if (p->would_blocked_used[i] && flow_key_equal(&p->would_blocked[i], k))
		p->would_blocked_used[i] = false;
}

/*
 * Tells the kernel to stop (or resume) streaming a flow's bytes. The flow
 * entry may be gone (FIN, LRU eviction): then there is nothing to change,
 * and BPF_EXIST keeps us from re-creating it.
 */
static void set_kernel_phase(struct pipeline *p, const struct smtp_event *ev)
{
	if (p->flows_fd < 0)
		return;
	struct rw_flow_state st;
	if (bpf_map_lookup_elem(p->flows_fd, ev->flow, &st)) {
		p->stats.phase_misses++;
		return;
	}
	if (ev->source == RW_SRC_TLS) {
		st.tls_phase = ev->u.phase.phase;
		st.tls_bdat_end_seq = ev->u.phase.bdat_end_seq;
	} else {
		st.phase = ev->u.phase.phase;
		st.bdat_end_seq = ev->u.phase.bdat_end_seq;
	}
	if (bpf_map_update_elem(p->flows_fd, ev->flow, &st, BPF_EXIST))
		p->stats.phase_misses++;
	else
		p->stats.phase_updates++;
}

/*
 * The blocked-map insert comes first and the log lines after it: the body
 * may leave one round trip after the RCPT, and formatting JSON (or a slow
 * syslog) must not stand in the way.
 */
static void judge_recipient(struct pipeline *p, const struct smtp_event *ev)
{
	const struct smtp_mailbox *mb = &ev->u.mailbox;
	struct match_verdict v;
	struct enforce_result res;
	int block_err = 0;
	memset(&v, 0, sizeof(v));
	memset(&res, 0, sizeof(res));
	p->stats.recipients++;
	/* "RCPT TO:<postmaster>" names no domain: nothing to judge. */
	bool judged = mb->domain[0] != '\0';
	if (judged)
		matcher_check(p->matcher, mb->domain, &v);
	bool flagged = judged && v.result == MATCH_FLAG;
	if (flagged && enforcer_mode(p->enforcer) == RW_MODE_MONITOR &&
	    would_block_seen(p, ev->flow))
		res.already_blocked = true; /* reported for this transaction */
	else if (flagged)
		block_err = enforcer_block(p->enforcer, ev->flow, &res);

	if (judged && v.result == MATCH_ERROR)
		p->stats.judged_error++;
	struct log_recipient rec = {
		.flow = ev->flow,
		.mail_from = ev->mail_from ? ev->mail_from->mailbox : NULL,
		.rcpt = mb->mailbox,
		.verdict = judged ? &v : NULL,
	};
	if (p->log_recipients)
		log_rcpt(p->log, &rec);
	if (!flagged)
		return;
	p->stats.flagged++;
	log_flag(p->log, &rec, enforcer_mode(p->enforcer));
	if (res.already_blocked) /* an earlier recipient of the flow did it */
		return;
	char actions[160];
	struct log_block_info info = {
		.mode = enforcer_mode(p->enforcer),
		.would_block = res.would_block,
		.latency_us = res.blocked ? enforce_latency_us(ev->ts_ns, res.blocked_ns) : 0,
		.queue_us = res.blocked ? enforce_latency_us(ev->ts_ns, p->record_read_ns) : 0,
		.actions = enforcer_describe(ev->flow, actions, sizeof(actions)),
		.error = block_err,
	};
	if (res.blocked)
		p->stats.blocked++;
	if (res.would_block)
		p->stats.would_block++;
	log_block(p->log, &rec, &info);
}

static void on_parser_event(const struct smtp_event *ev, void *ctx)
{
	struct pipeline *p = ctx;
	switch (ev->kind) {
	case SMTP_EV_RCPT:
		judge_recipient(p, ev);
		break;
	case SMTP_EV_PHASE:
		set_kernel_phase(p, ev);
		break;
	case SMTP_EV_OPAQUE:
		log_flow_opaque(p->log, ev->flow, "STARTTLS");
		break;
	case SMTP_EV_ANOMALY:
		/* Gaps and evictions are reported as loss from the parser's
		 * counters in pipeline_tick(); each one is also an anomaly. */
		log_anomaly(p->log, ev->flow, smtp_anomaly_name(ev->u.anomaly.code),
			    ev->u.anomaly.detail);
		break;
	case SMTP_EV_MAIL:
		/* A new transaction: enforce mode would have cut the connection
		 * before it, so it would come on a connection of its own. */
		would_block_forget(p, ev->flow);
		break;
	case SMTP_EV_DATA_START:
	case SMTP_EV_MESSAGE_END:
	case SMTP_EV_FLOW_END:
		break;
	}
}

int pipeline_on_record(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	struct pipeline *p = ctx;
	p->stats.records++;
	p->record_read_ns = monotonic_now_ns();
	switch (hdr->kind) {
	case RW_REC_FLOW_START:
		smtp_parser_flow_start(p->parser, &hdr->flow, hdr->source, hdr->seq, hdr->ts_ns);
		would_block_forget(p, &hdr->flow); /* a new connection on the tuple */
		break;
	case RW_REC_DATA: {
		struct smtp_segment seg = {
			.flow = &hdr->flow,
			.source = hdr->source,
			.seq = hdr->seq,
			.skipped = hdr->skipped,
			.data = data,
			.len = hdr->len,
			.ts_ns = hdr->ts_ns,
		};
		/* -ENOMEM is counted by the parser and reported as loss. */
		smtp_parser_feed(p->parser, &seg);
		if (p->have_gate && gate_wants_ack(hdr, data))
			gate_ack(p, hdr);
		break;
	}
	case RW_REC_FLOW_END:
		smtp_parser_flow_end(p->parser, &hdr->flow, hdr->ts_ns);
		would_block_forget(p, &hdr->flow);
		/* Acknowledgements written after the kernel forgot the flow. */
		if (p->have_gate && hdr->source == RW_SRC_TC)
			bpf_map_delete_elem(p->gate.judged_fd, &hdr->flow);
		break;
	}
	return 0;
}

/* Adds the growth of a monotonically increasing counter to a loss source. */
static void report_growth(struct pipeline *p, enum log_loss_source src, uint64_t now,
			  uint64_t *seen)
{
	if (now > *seen) {
		log_loss_add(p->log, src, now - *seen);
		p->stats.losses += now - *seen;
	}
	*seen = now;
}

void pipeline_tick(struct pipeline *p, const uint64_t *kc)
{
	enforcer_flush(p->enforcer, false);
	if (p->have_gate) {
		uint64_t now = monotonic_now_ns();
		if (now - p->gate_refreshed_ns >= GATE_REFRESH_NS)
			gate_heartbeat(p, true, now);
	}

	struct smtp_stats ps;
	smtp_parser_stats(p->parser, &ps);
	report_growth(p, LOSS_PARSER_GAP, ps.gaps, &p->seen_gaps);
	report_growth(p, LOSS_PARSER_EVICT, ps.flows_evicted, &p->seen_evicted);

	struct enforce_stats es;
	enforcer_stats(p->enforcer, &es);
	report_growth(p, LOSS_ENFORCE,
		      es.map_errors + es.table_errors + es.destroy_errors + es.queue_errors,
		      &p->seen_enforce_errors);

	if (kc) {
		report_growth(p, LOSS_RING_RESERVE, kc[RW_CNT_RESERVE_FAIL],
			      &p->seen_kernel[RW_CNT_RESERVE_FAIL]);
		report_growth(p, LOSS_TRUNCATED, kc[RW_CNT_TRUNC_BYTES],
			      &p->seen_kernel[RW_CNT_TRUNC_BYTES]);
		report_growth(p, LOSS_TRUNCATED, kc[RW_CNT_TLS_TRUNC_BYTES],
			      &p->seen_kernel[RW_CNT_TLS_TRUNC_BYTES]);
		report_growth(p, LOSS_GATE_EXPIRED, kc[RW_CNT_GATE_EXPIRED],
			      &p->seen_kernel[RW_CNT_GATE_EXPIRED]);
	}
	log_loss_tick(p->log);
	log_flush(p->log);
}

int pipeline_poll_timeout_ms(const struct pipeline *p, int idle_ms)
{
	int t = enforcer_poll_timeout_ms(p->enforcer);
	return t >= 0 && t < idle_ms ? t : idle_ms;
}

void pipeline_stats(const struct pipeline *p, struct pipeline_stats *out)
{
	*out = p->stats;
	smtp_parser_stats(p->parser, &out->parser);
}
