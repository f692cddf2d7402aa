/*
 * Test helper for the SMTP parser tests: records events as one text line
 * each, so a test states the exact expected sequence as a string.
 *
 *   MAIL a@b (a|b) [SIZE=10] +nb +sr +lit +u8 +null
 *   RCPT x@y (x|y) from=a@b          (from=- when no MAIL FROM)
 *   DATA | END | OPAQUE | FLOWEND
 *   AN <anomaly name>
 *   PHASE data | command | opaque | bdat +N   (N: end seq - stream base)
 *
 * A "PHASE command" that closes a BDAT phase prints as "PHASE command/bdat":
 * whether a chunk outlives its segment depends on segmentation, so the
 * split-mode comparisons drop those two kinds of lines (normalise()).
 * TLS-source events get a "tls " prefix.
 */
#ifndef TESTS_SMTP_RECORDER_H
#define TESTS_SMTP_RECORDER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

#define REC_MAX 65536

struct recorder {
	char text[REC_MAX];
	size_t len;
	uint32_t base[3];        /* stream base per source, for PHASE bdat */
	bool bdat_open[3];
	size_t count;
	uint64_t last_ts, ts_of_rcpt[16];
	uint32_t seq_of_rcpt[16];
	size_t nrcpt;
	struct smtp_event last_anomaly;
	/* optional hook, e.g. to call back into the parser */
	void (*hook)(const struct smtp_event *ev, struct recorder *r);
	void *hook_ctx;
};

static void rec_put(struct recorder *r, const char *s)
{
	size_t n = strlen(s);
	if (r->len + n + 1 < sizeof(r->text)) {
		memcpy(r->text + r->len, s, n + 1);
		r->len += n;
	}
}

static void rec_putf_escaped(struct recorder *r, const char *s)
{
	char tmp[8];
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 0x20 && ch < 0x7f) {
			tmp[0] = (char)ch;
			tmp[1] = 0;
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		}
		rec_put(r, tmp);
	}
}

static void rec_mailbox(struct recorder *r, const struct smtp_mailbox *m)
{
	rec_putf_escaped(r, m->mailbox);
	rec_put(r, " (");
	rec_putf_escaped(r, m->local);
	rec_put(r, "|");
	rec_putf_escaped(r, m->domain);
	rec_put(r, ")");
	if (m->params[0]) {
		rec_put(r, " [");
		rec_putf_escaped(r, m->params);
		rec_put(r, "]");
	}
	if (m->no_brackets)
		rec_put(r, " +nb");
	if (m->had_source_route)
		rec_put(r, " +sr");
	if (m->is_literal)
		rec_put(r, " +lit");
	if (m->utf8)
		rec_put(r, " +u8");
	if (m->is_null)
		rec_put(r, " +null");
}

static const char *phase_name(uint8_t ph)
{
	switch (ph) {
	case RW_PHASE_COMMAND: return "command";
	case RW_PHASE_DATA: return "data";
	case RW_PHASE_BDAT: return "bdat";
	case RW_PHASE_OPAQUE: return "opaque";
	}
	return "?";
}

static void rec_event(const struct smtp_event *ev, void *ctx)
{
	struct recorder *r = ctx;
	char buf[64];
	r->count++;
	r->last_ts = ev->ts_ns;
	if (ev->source == RW_SRC_TLS)
		rec_put(r, "tls ");
	switch (ev->kind) {
	case SMTP_EV_MAIL:
		rec_put(r, "MAIL ");
		rec_mailbox(r, &ev->u.mailbox);
		break;
	case SMTP_EV_RCPT:
		rec_put(r, "RCPT ");
		rec_mailbox(r, &ev->u.mailbox);
		rec_put(r, " from=");
		if (ev->mail_from)
			rec_putf_escaped(r, ev->mail_from->mailbox);
		else
			rec_put(r, "-");
		if (r->nrcpt < 16) {
			r->ts_of_rcpt[r->nrcpt] = ev->ts_ns;
			r->seq_of_rcpt[r->nrcpt++] = ev->seq;
		}
		break;
	case SMTP_EV_DATA_START: rec_put(r, "DATA"); break;
	case SMTP_EV_MESSAGE_END: rec_put(r, "END"); break;
	case SMTP_EV_OPAQUE: rec_put(r, "OPAQUE"); break;
	case SMTP_EV_FLOW_END: rec_put(r, "FLOWEND"); break;
	case SMTP_EV_ANOMALY:
		rec_put(r, "AN ");
		rec_put(r, smtp_anomaly_name(ev->u.anomaly.code));
		r->last_anomaly = *ev;
		break;
	case SMTP_EV_PHASE:
		if (ev->u.phase.phase == RW_PHASE_BDAT) {
			snprintf(buf, sizeof(buf), "PHASE bdat +%u",
				 ev->u.phase.bdat_end_seq - r->base[ev->source]);
			r->bdat_open[ev->source] = true;
			rec_put(r, buf);
		} else if (ev->u.phase.phase == RW_PHASE_COMMAND && r->bdat_open[ev->source]) {
			r->bdat_open[ev->source] = false;
			rec_put(r, "PHASE command/bdat");
		} else {
			rec_put(r, "PHASE ");
			rec_put(r, phase_name(ev->u.phase.phase));
		}
		break;
	}
	rec_put(r, "\n");
	if (r->hook)
		r->hook(ev, r);
}

/* Drops the segmentation-dependent BDAT phase lines. Returns a malloc'd copy. */
static char *normalise(const char *text)
{
	char *out = malloc(strlen(text) + 1);
	size_t o = 0;
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) + 1 : strlen(text);
		if (strncmp(text, "PHASE bdat", 10) && strncmp(text, "PHASE command/bdat", 18) &&
		    strncmp(text, "tls PHASE bdat", 14) &&
		    strncmp(text, "tls PHASE command/bdat", 22)) {
			memcpy(out + o, text, n);
			o += n;
		}
		text += n;
	}
	out[o] = '\0';
	return out;
}

static void test_key(struct rw_flow_key *k, uint16_t sport)
{
	memset(k, 0, sizeof(*k));
	k->family = RW_AF_INET;
	k->saddr[0] = 198, k->saddr[1] = 51, k->saddr[2] = 100, k->saddr[3] = 1;
	k->daddr[0] = 198, k->daddr[1] = 51, k->daddr[2] = 100, k->daddr[3] = 2;
	k->sport = sport;
	k->dport = 25;
}

static int feed_bytes(struct smtp_parser *p, const struct rw_flow_key *k, uint8_t source,
		      uint32_t seq, const void *data, size_t len, uint32_t skipped, uint64_t ts)
{
	struct smtp_segment seg = {
		.flow = k, .source = source, .seq = seq, .skipped = skipped,
		.data = data, .len = (uint32_t)len, .ts_ns = ts,
	};
	return smtp_parser_feed(p, &seg);
}

#endif
