/*
 * SMTP client-stream parser: flows, reassembly glue and the RFC 5321 client
 * state machine (RFC 2920 pipelining, RFC 3030 BDAT, RFC 3207 STARTTLS,
 * RFC 6531 SMTPUTF8). Path parsing is in smtp_path.c, sequence-number
 * reassembly in reasm.c, the flow table in smtp_table.c.
 *
 * Client-only view. The parser never sees the server's replies, which forces
 * these assumptions:
 *  - Every command is taken as accepted. A refused MAIL still starts a
 *    transaction here and a refused RCPT is still reported: the cost is a
 *    recipient reported that the server would not deliver to, never one
 *    missed.
 *  - DATA is taken as answered with 354. If the server refused it (503/554),
 *    the client's next line is a command, not content. The first line after
 *    DATA decides: an RFC 5322 header line has a field name without spaces
 *    before its colon, so "MAIL FROM:", "RCPT TO:" can't be headers, and
 *    "RSET", "QUIT", "NOOP", "EHLO x" have no colon at all. Such a line ->
 *    SMTP_AN_DATA_REFUSED and the line is parsed as a command. A message
 *    without headers whose first line is a bare SMTP verb is misread as a
 *    refusal; that only adds recipients, it can't hide one.
 *  - A BDAT chunk is always consumed: RFC 3030 has the client send the
 *    chunk whatever the server answers, so even a refused BDAT is followed
 *    by exactly N bytes of content. Only a BDAT whose size can't be read
 *    (SMTP_AN_BAD_BDAT) has no chunk, as the server can't know one either.
 *  - STARTTLS is taken as accepted (220): the TCP stream becomes opaque.
 *    If it was refused the client would continue in plain text unseen; the
 *    capture side still has the flow, and a TLS-less continuation is
 *    exactly what RW_PHASE_OPAQUE stops us from reading, so this is the one
 *    blind acceptance. Pipelining STARTTLS with more commands is forbidden
 *    (RFC 3207 4.2), so the bytes after it are TLS.
 *  - After AUTH, the client's SASL responses are base64 lines: those are
 *    skipped; the first line that is not pure base64 is a command again.
 *
 * Kernel body phases. The parser asks the capture side (SMTP_EV_PHASE) to
 * stop streaming a body: in RW_PHASE_DATA the kernel sends only the last
 * RW_BODY_TAIL bytes of each segment (seg->skipped counts the rest), in
 * RW_PHASE_BDAT nothing before the chunk's end. The switch lands a round
 * trip later, so every state here works on full segments as well as tails.
 * Residual blind spot: a DATA terminator followed, in the same segment, by
 * more than RW_BODY_TAIL - 5 bytes of pipelined commands is in a skipped
 * part; the parser then stays in content and misses those commands. It
 * reports SMTP_AN_MISSED_END when a later segment of the "body" arrives
 * whole, at a line start, and reads as a command line (what a client sends
 * after the replies to such a group), so the miss is never silent.
 *
 * Bodies are skipped with memchr: a DATA body is only searched for '.'
 * (then the bytes around each dot are checked for "\r\n.\r\n"), a BDAT chunk
 * is counted off. No per-byte state machine runs over content.
 */
#include "smtp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "flow.h"
#include "reasm.h"
#include "smtp_path.h"
#include "smtp_table.h"

const struct smtp_limits smtp_default_limits = {
	.max_flows = 65536,
	.max_bytes_total = 256u << 20,
	.max_ooo_bytes = 64u << 10,
};

enum stream_state {
	ST_COMMAND,    /* command lines */
	ST_RESYNC,     /* after a gap: discard up to the next line start */
	ST_DATA_FIRST, /* right after DATA: is the next line content or a command? */
	ST_DATA,       /* DATA content up to CRLF.CRLF */
	ST_BDAT,       /* inside a BDAT chunk */
	ST_OPAQUE,     /* after STARTTLS: TLS records on the wire */
};

/* Where a "\r\n." candidate in DATA content stands (it may span segments). */
enum dot_state {
	DOT_NONE,
	DOT_SEEN,    /* "<LF>." seen */
	DOT_CR_SEEN, /* "<LF>.\r" seen */
};

struct smtp_stream {
	struct reasm rs;
	uint8_t source;
	uint8_t state;          /* enum stream_state */
	bool have_mail;         /* a MAIL FROM opened the transaction */
	bool in_message;        /* DATA_START sent, MESSAGE_END not yet */
	bool auth_pending;      /* SASL response lines may follow */
	bool bdat_last;
	bool bdat_phase_sent;   /* RW_PHASE_BDAT asked for this chunk */
	bool saw_tail;          /* this message's content came as kernel tails */
	bool dot_lf_reported;
	bool missed_end_reported;
	bool resync_probe;      /* first line after a gap: may be a line start */
	bool have_isn;
	uint32_t isn;           /* from the SYN, to recognise a repeated one */
	uint8_t dot;            /* enum dot_state */
	bool dot_crlf;          /* the candidate's LF had a CR before it */
	uint8_t hist[2];        /* last two content bytes; 0 = unknown */
	uint8_t last_byte;      /* last byte of the partial line (kept when capped) */
	uint16_t line_stored;   /* bytes in line[] */
	uint32_t line_full;     /* bytes of the partial line seen (saturating) */
	uint64_t bdat_left;     /* chunk bytes still to come */
	uint8_t *line;          /* SMTP_LINE_MAX bytes while a line spans segments */
	char *mail_from;        /* the transaction's MAIL FROM argument, NUL-terminated */
	uint16_t mail_from_len;
	uint64_t txn;           /* parser-wide id of the current transaction */
};

struct smtp_parser {
	struct smtp_limits lim;
	smtp_event_cb cb;
	void *ctx;
	struct smtp_table table;
	struct smtp_flow *feeding;  /* flow being fed (not evictable, ends deferred) */
	struct smtp_stats st;
	size_t mem;
	struct smtp_event ev;       /* scratch for MAIL/RCPT: paths parse into it */
	struct smtp_event aev;      /* scratch for every other event */
	struct smtp_mailbox from;   /* the RCPT's transaction sender, parsed once */
	const struct smtp_stream *from_stream; /* whose transaction `from` holds */
	uint64_t from_txn;
	uint64_t next_txn;
};

/* What the bytes being processed belong to. */
struct feed_ctx {
	struct smtp_parser *p;
	struct smtp_flow *f;
	struct smtp_stream *s;
	uint64_t ts_ns;
	uint32_t piece_end;  /* seq after the last byte of the piece being processed */
};

/* One command line as assembled from one or more pieces. */
struct line {
	const uint8_t *p;
	size_t stored;  /* bytes available at p */
	size_t full;    /* bytes before the LF as sent */
	bool cr;        /* the LF had a CR before it */
};

enum verb {
	V_UNKNOWN, V_HELO, V_EHLO, V_LHLO, V_MAIL, V_RCPT, V_DATA, V_BDAT, V_RSET, V_QUIT,
	V_NOOP, V_VRFY, V_EXPN, V_HELP, V_STARTTLS, V_AUTH, V_ETRN, V_TURN, V_ATRN,
	V_XCLIENT, V_XFORWARD, V_BURL,
};

static const struct {
	const char *name;
	enum verb verb;
} verbs[] = {
	{ "HELO", V_HELO }, { "EHLO", V_EHLO }, { "LHLO", V_LHLO }, { "MAIL", V_MAIL },
	{ "RCPT", V_RCPT }, { "DATA", V_DATA }, { "BDAT", V_BDAT }, { "RSET", V_RSET },
	{ "QUIT", V_QUIT }, { "NOOP", V_NOOP }, { "VRFY", V_VRFY }, { "EXPN", V_EXPN },
	{ "HELP", V_HELP }, { "STARTTLS", V_STARTTLS }, { "AUTH", V_AUTH },
	{ "ETRN", V_ETRN }, { "TURN", V_TURN }, { "ATRN", V_ATRN },
	{ "XCLIENT", V_XCLIENT }, { "XFORWARD", V_XFORWARD }, { "BURL", V_BURL },
};

static void stream_input(struct feed_ctx *c, struct reasm_piece *pc);

/* ---- events --------------------------------------------------------------- */

static struct smtp_event *ev_begin(struct feed_ctx *c, enum smtp_event_kind kind, uint32_t seq)
{
	struct smtp_event *ev = kind == SMTP_EV_MAIL || kind == SMTP_EV_RCPT ? &c->p->ev : &c->p->aev;
	ev->kind = kind;
	ev->flow = &c->f->key;
	ev->source = c->s ? c->s->source : RW_SRC_TC;
	ev->ts_ns = c->ts_ns;
	ev->seq = seq;
	ev->mail_from = NULL;
	return ev;
}

static void ev_emit(struct feed_ctx *c, const struct smtp_event *ev)
{
	c->p->cb(ev, c->p->ctx);
}

static void emit_simple(struct feed_ctx *c, enum smtp_event_kind kind, uint32_t seq)
{
	ev_emit(c, ev_begin(c, kind, seq));
}

static void emit_anomaly(struct feed_ctx *c, enum smtp_anomaly code, uint32_t seq,
			 const char *prefix, const uint8_t *bytes, size_t len)
{
	struct smtp_event *ev = ev_begin(c, SMTP_EV_ANOMALY, seq);
	ev->u.anomaly.code = code;
	size_t n = (size_t)snprintf(ev->u.anomaly.detail, sizeof(ev->u.anomaly.detail), "%s",
				    prefix ? prefix : "");
	if (n >= sizeof(ev->u.anomaly.detail))
		n = sizeof(ev->u.anomaly.detail) - 1;
	if (bytes)
		smtp_escape(bytes, len, ev->u.anomaly.detail + n, sizeof(ev->u.anomaly.detail) - n);
	c->p->st.anomalies++;
	ev_emit(c, ev);
}

static void emit_phase(struct feed_ctx *c, enum rw_phase phase, uint32_t seq, uint32_t bdat_end)
{
	struct smtp_event *ev = ev_begin(c, SMTP_EV_PHASE, seq);
	ev->u.phase.phase = (uint8_t)phase;
	ev->u.phase.bdat_end_seq = bdat_end;
	ev_emit(c, ev);
}

/* ---- memory ----------------------------------------------------------------- */

static void *mem_alloc(struct smtp_parser *p, size_t n)
{
	void *m = malloc(n);
	if (m)
		p->mem += n;
	return m;
}

static void mem_free(struct smtp_parser *p, void *m, size_t n)
{
	if (!m)
		return;
	free(m);
	p->mem -= n;
}

static void line_reset(struct smtp_parser *p, struct smtp_stream *s)
{
	mem_free(p, s->line, SMTP_LINE_MAX);
	s->line = NULL;
	s->line_stored = 0;
	s->line_full = 0;
}

static void transaction_reset(struct smtp_parser *p, struct smtp_stream *s)
{
	mem_free(p, s->mail_from, (size_t)s->mail_from_len + 1);
	s->mail_from = NULL;
	s->mail_from_len = 0;
	s->have_mail = false;
	s->in_message = false;
}

/* ---- line assembly ---------------------------------------------------------- */

static void line_append(struct smtp_parser *p, struct smtp_stream *s, const uint8_t *d, size_t n)
{
	if (!n)
		return;
	if (s->line_full == 0)
		s->line = mem_alloc(p, SMTP_LINE_MAX); /* NULL: the line is lost, still counted */
	if (s->line && s->line_stored < SMTP_LINE_MAX) {
		size_t room = SMTP_LINE_MAX - s->line_stored;
		size_t k = n < room ? n : room;
		memcpy(s->line + s->line_stored, d, k);
		s->line_stored = (uint16_t)(s->line_stored + k);
	}
	s->line_full = s->line_full + n < s->line_full ? UINT32_MAX : s->line_full + (uint32_t)n;
	s->last_byte = d[n - 1];
}

/*
 * Takes bytes up to and including the next LF. Returns the bytes consumed;
 * *complete says whether ln holds a whole line. Complete lines that did not
 * span pieces are read in place, without a copy.
 */
static size_t line_take(struct feed_ctx *c, const uint8_t *d, size_t len, struct line *ln,
			bool *complete)
{
	struct smtp_stream *s = c->s;
	const uint8_t *lf = memchr(d, '\n', len);
	size_t n = lf ? (size_t)(lf - d) : len;

	*complete = lf != NULL;
	if (!lf) {
		line_append(c->p, s, d, n);
		return len;
	}
	if (s->line_full == 0) {
		ln->p = d;
		ln->stored = ln->full = n;
		ln->cr = n && d[n - 1] == '\r';
	} else {
		line_append(c->p, s, d, n);
		ln->p = s->line ? s->line : d;
		ln->stored = s->line ? s->line_stored : 0;
		ln->full = s->line_full;
		ln->cr = s->last_byte == '\r';
	}
	return n + 1;
}

/* Content of a line without its CR, capped to what a command line may hold. */
static size_t line_content_len(const struct line *ln)
{
	size_t n = ln->full - (ln->cr ? 1 : 0);
	if (n > ln->stored)
		n = ln->stored;
	if (n > SMTP_LINE_MAX - 1)
		n = SMTP_LINE_MAX - 1;
	return n;
}

/* ---- command words ------------------------------------------------------------ */

static bool is_wsp(uint8_t ch)
{
	return ch == ' ' || ch == '\t';
}

static size_t word_len(const uint8_t *l, size_t len)
{
	size_t i = 0;
	while (i < len && !is_wsp(l[i]) && l[i] != ':')
		i++;
	return i;
}

static enum verb verb_of(const uint8_t *l, size_t len)
{
	size_t n = word_len(l, len);
	char up[8];
	if (n < 4 || n > sizeof(up))
		return V_UNKNOWN; /* every verb has 4 to 8 letters */
	for (size_t i = 0; i < n; i++)
		up[i] = (char)(l[i] >= 'a' && l[i] <= 'z' ? l[i] - 32 : l[i]);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strnlen(verbs[i].name, sizeof(up) + 1) == n && !memcmp(up, verbs[i].name, n))
			return verbs[i].verb;
	return V_UNKNOWN;
}

/*
 * "MAIL FROM:" / "RCPT TO:": after the verb, spaces, the keyword (any case),
 * spaces, ':' (lenient servers allow the spaces). Returns the offset after
 * the colon, or 0 if the line does not have that shape.
 */
static size_t keyword_colon(const uint8_t *l, size_t len, const char *kw)
{
	size_t i = word_len(l, len), k = strlen(kw);
	while (i < len && is_wsp(l[i]))
		i++;
	if (len - i < k || strncasecmp((const char *)l + i, kw, k))
		return 0;
	i += k;
	while (i < len && is_wsp(l[i]))
		i++;
	return i < len && l[i] == ':' ? i + 1 : 0;
}

/* RFC 5322 2.2: field-name = 1*ftext, ftext = %d33-57 / %d59-126. */
static bool is_header_line(const uint8_t *l, size_t len)
{
	const uint8_t *colon = memchr(l, ':', len);
	if (!colon || colon == l)
		return false;
	for (const uint8_t *q = l; q < colon; q++)
		if (*q < 33 || *q > 126)
			return false;
	return true;
}

/* A line that a server would take as a command and could not be a header. */
static bool is_command_not_header(const uint8_t *l, size_t len)
{
	return len && verb_of(l, len) != V_UNKNOWN && !is_header_line(l, len);
}

/* SASL responses (RFC 4954): base64 text, or "*" to cancel. */
static bool is_sasl_response(const uint8_t *l, size_t len)
{
	if (len == 1 && l[0] == '*')
		return true;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = l[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '='))
			return false;
	}
	/* a bare verb such as "QUIT" is also valid base64: take it as the verb */
	return verb_of(l, len) == V_UNKNOWN;
}

/* ---- commands ---------------------------------------------------------------------- */

static bool path_anomalies(struct feed_ctx *c, const struct smtp_mailbox *b, uint32_t seq,
			   enum smtp_path_result r, const uint8_t *arg, size_t alen)
{
	if (r != SMTP_PATH_OK) {
		char why[48];
		snprintf(why, sizeof(why), "%s: ", smtp_path_result_str(r));
		emit_anomaly(c, SMTP_AN_BAD_PATH, seq, why, arg, alen);
		return false;
	}
	if (b->no_brackets)
		emit_anomaly(c, SMTP_AN_NO_BRACKETS, seq, NULL, arg, alen);
	if (b->had_source_route)
		emit_anomaly(c, SMTP_AN_SOURCE_ROUTE, seq, NULL, arg, alen);
	return true;
}

/* The path was parsed into ev.u.mailbox (anomalies use the other scratch event). */
static void emit_mailbox(struct feed_ctx *c, enum smtp_event_kind kind, uint32_t seq,
			 const struct smtp_mailbox *from)
{
	struct smtp_event *ev = ev_begin(c, kind, seq);
	ev->mail_from = from;
	ev_emit(c, ev);
}

/* The transaction's sender, parsed once per transaction, not once per RCPT. */
static const struct smtp_mailbox *transaction_sender(struct feed_ctx *c)
{
	struct smtp_parser *p = c->p;
	struct smtp_stream *s = c->s;
	if (!s->mail_from)
		return NULL;
	if (p->from_stream == s && p->from_txn == s->txn)
		return &p->from;
	p->from_stream = NULL;
	if (smtp_path_parse((const uint8_t *)s->mail_from, s->mail_from_len, true, &p->from) !=
	    SMTP_PATH_OK)
		return NULL;
	p->from_stream = s;
	p->from_txn = s->txn;
	return &p->from;
}

static void cmd_mail(struct feed_ctx *c, const uint8_t *l, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	size_t a = keyword_colon(l, len, "FROM");
	if (!a) {
		emit_anomaly(c, SMTP_AN_BAD_PATH, seq, "no FROM: ", l, len);
		return;
	}
	transaction_reset(c->p, s);
	struct smtp_mailbox *box = &c->p->ev.u.mailbox;
	enum smtp_path_result r = smtp_path_parse(l + a, len - a, true, box);
	if (!path_anomalies(c, box, seq, r, l + a, len - a))
		return;
	s->mail_from = mem_alloc(c->p, len - a + 1);
	if (s->mail_from) {
		memcpy(s->mail_from, l + a, len - a);
		s->mail_from[len - a] = '\0';
		s->mail_from_len = (uint16_t)(len - a);
	}
	s->have_mail = true;
	s->txn = ++c->p->next_txn;
	emit_mailbox(c, SMTP_EV_MAIL, seq, NULL);
}

static void cmd_rcpt(struct feed_ctx *c, const uint8_t *l, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	size_t a = keyword_colon(l, len, "TO");
	if (!a) {
		emit_anomaly(c, SMTP_AN_BAD_PATH, seq, "no TO: ", l, len);
		return;
	}
	struct smtp_mailbox *box = &c->p->ev.u.mailbox;
	enum smtp_path_result r = smtp_path_parse(l + a, len - a, false, box);
	if (!path_anomalies(c, box, seq, r, l + a, len - a))
		return;
	const struct smtp_mailbox *from = NULL;
	if (!s->have_mail)
		emit_anomaly(c, SMTP_AN_RCPT_WITHOUT_MAIL, seq, NULL, l, len);
	else
		from = transaction_sender(c);
	c->p->st.recipients++;
	emit_mailbox(c, SMTP_EV_RCPT, seq, from);
}

static void data_content_begin(struct smtp_stream *s)
{
	s->state = ST_DATA_FIRST;
	s->hist[0] = '\r'; /* the DATA line's CRLF: content starts at a line start */
	s->hist[1] = '\n';
	s->dot = DOT_NONE;
	s->dot_lf_reported = false;
	s->missed_end_reported = false;
	s->saw_tail = false;
}

static void cmd_data(struct feed_ctx *c, uint32_t seq)
{
	c->s->in_message = true;
	emit_simple(c, SMTP_EV_DATA_START, seq);
	emit_phase(c, RW_PHASE_DATA, seq, 0);
	data_content_begin(c->s);
}

static void message_end(struct feed_ctx *c, uint32_t seq)
{
	c->p->st.messages++;
	emit_simple(c, SMTP_EV_MESSAGE_END, seq);
	transaction_reset(c->p, c->s);
}

static void bdat_chunk_end(struct feed_ctx *c, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	s->state = ST_COMMAND;
	if (s->bdat_phase_sent) {
		s->bdat_phase_sent = false;
		emit_phase(c, RW_PHASE_COMMAND, seq, 0);
	}
	if (s->bdat_last)
		message_end(c, seq);
}

/* "BDAT" SP chunk-size [ SP "LAST" ] (RFC 3030 2). Returns false if no size. */
static bool parse_bdat(const uint8_t *l, size_t len, uint64_t *size, bool *last, bool *junk)
{
	size_t i = word_len(l, len), digits = 0;
	uint64_t n = 0;
	while (i < len && is_wsp(l[i]))
		i++;
	for (; i < len && l[i] >= '0' && l[i] <= '9'; i++, digits++)
		if (n <= (UINT32_MAX >> 1))
			n = n * 10 + (uint64_t)(l[i] - '0');
	if (!digits)
		return false;
	*size = n;
	*junk = n > (UINT32_MAX >> 1); /* larger than a sequence window */
	*last = false;
	while (i < len && is_wsp(l[i]))
		i++;
	if (len - i >= 4 && !strncasecmp((const char *)l + i, "LAST", 4)) {
		*last = true;
		i += 4;
	}
	while (i < len && is_wsp(l[i]))
		i++;
	*junk |= i != len;
	return true;
}

static void cmd_bdat(struct feed_ctx *c, const uint8_t *l, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	uint64_t size;
	bool last, junk;
	if (!parse_bdat(l, len, &size, &last, &junk)) {
		emit_anomaly(c, SMTP_AN_BAD_BDAT, seq, "no size: ", l, len);
		return;
	}
	if (junk)
		emit_anomaly(c, SMTP_AN_BAD_BDAT, seq, "bad arguments: ", l, len);
	if (!s->in_message) {
		s->in_message = true;
		emit_simple(c, SMTP_EV_DATA_START, seq);
	}
	s->bdat_last = last;
	s->bdat_left = size;
	s->state = ST_BDAT;
	s->bdat_phase_sent = false;
	if (size == 0) {
		bdat_chunk_end(c, seq);
		return;
	}
	uint32_t in_piece = c->piece_end - seq;
	if (size > in_piece) {
		s->bdat_phase_sent = true;
		emit_phase(c, RW_PHASE_BDAT, seq, seq + (uint32_t)size);
	}
}

static void cmd_starttls(struct feed_ctx *c, uint32_t seq)
{
	if (c->s->source != RW_SRC_TC)
		return; /* STARTTLS inside TLS: the server refuses it (503) */
	c->s->state = ST_OPAQUE;
	transaction_reset(c->p, c->s);
	emit_simple(c, SMTP_EV_OPAQUE, seq);
	emit_phase(c, RW_PHASE_OPAQUE, seq, 0);
}

static void run_command(struct feed_ctx *c, const uint8_t *l, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	if (len == 0)
		return; /* the server answers 500; nothing to track */
	if (s->auth_pending) {
		if (is_sasl_response(l, len))
			return;
		s->auth_pending = false;
	}
	switch (verb_of(l, len)) {
	case V_MAIL: cmd_mail(c, l, len, seq); break;
	case V_RCPT: cmd_rcpt(c, l, len, seq); break;
	case V_DATA: cmd_data(c, seq); break;
	case V_BDAT: cmd_bdat(c, l, len, seq); break;
	case V_STARTTLS: cmd_starttls(c, seq); break;
	case V_RSET: case V_HELO: case V_EHLO: case V_LHLO:
		transaction_reset(c->p, s); /* RFC 5321 4.1.1.1, 4.1.1.5 */
		break;
	case V_AUTH: s->auth_pending = true; break;
	case V_UNKNOWN:
		emit_anomaly(c, SMTP_AN_UNKNOWN_COMMAND, seq, NULL, l, len);
		break;
	default:
		break; /* QUIT, NOOP, VRFY, ...: no envelope effect */
	}
}

static bool has_control_byte(const uint8_t *l, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
			return true;
	return false;
}

/* Reports what a server would object to in the line, then runs it. */
static void command_line(struct feed_ctx *c, const struct line *ln, uint32_t seq)
{
	size_t n = line_content_len(ln);
	if (ln->full + 1 > SMTP_LINE_MAX) {
		char why[48];
		snprintf(why, sizeof(why), "%zu octets: ", ln->full + 1);
		emit_anomaly(c, SMTP_AN_LINE_TOO_LONG, seq, why, ln->p, n < 40 ? n : 40);
	}
	if (!ln->cr)
		emit_anomaly(c, SMTP_AN_BARE_LF, seq, NULL, ln->p, n);
	if (has_control_byte(ln->p, n))
		emit_anomaly(c, SMTP_AN_CONTROL_BYTE, seq, NULL, ln->p, n);
	run_command(c, ln->p, n, seq);
}

/* ---- states ------------------------------------------------------------------- */

static size_t consume_command(struct feed_ctx *c, const uint8_t *d, size_t len, uint32_t seq)
{
	struct line ln;
	bool complete;
	size_t n = line_take(c, d, len, &ln, &complete);
	if (complete) {
		command_line(c, &ln, seq + (uint32_t)n);
		line_reset(c->p, c->s);
	}
	return n;
}

static size_t consume_resync(struct feed_ctx *c, const uint8_t *d, size_t len)
{
	struct smtp_stream *s = c->s;
	const uint8_t *lf = memchr(d, '\n', len);
	if (s->resync_probe && lf) {
		/* Segments usually start at a line start: if the first bytes
		 * after the gap form a command line, take them as one. */
		size_t n = (size_t)(lf - d);
		if (n && d[n - 1] == '\r')
			n--;
		s->resync_probe = false;
		if (n < SMTP_LINE_MAX && is_command_not_header(d, n)) {
			s->state = ST_COMMAND;
			return 0;
		}
	}
	s->resync_probe = false;
	if (!lf)
		return len;
	c->s->state = ST_COMMAND;
	return (size_t)(lf - d) + 1;
}

static void content_end(struct feed_ctx *c, uint32_t seq)
{
	c->s->state = ST_COMMAND;
	emit_phase(c, RW_PHASE_COMMAND, seq, 0);
	message_end(c, seq);
}

static void report_dot_lf(struct feed_ctx *c, uint32_t seq)
{
	if (c->s->dot_lf_reported)
		return;
	c->s->dot_lf_reported = true;
	static const uint8_t what[] = "line \".\" with a bare LF";
	emit_anomaly(c, SMTP_AN_DOT_BARE_LF, seq, NULL, what, sizeof(what) - 1);
}

/*
 * One byte after a "<LF>." candidate. Returns true when the byte completes
 * the terminator CRLF "." CRLF. LF "." CRLF and "." LF are no terminator
 * for RFC 5321 but some servers take them as one (SMTP smuggling): reported,
 * and the content goes on, as an RFC server reads it.
 */
static bool dot_step(struct feed_ctx *c, uint8_t b, uint32_t seq_after)
{
	struct smtp_stream *s = c->s;
	if (s->dot == DOT_SEEN) {
		if (b == '\r') {
			s->dot = DOT_CR_SEEN;
			return false;
		}
		if (b == '\n')
			report_dot_lf(c, seq_after);
		s->dot = DOT_NONE;
		return false;
	}
	s->dot = DOT_NONE;
	if (b != '\n')
		return false;
	if (s->dot_crlf)
		return true;
	report_dot_lf(c, seq_after);
	return false;
}

static void hist_update(struct smtp_stream *s, const uint8_t *d, size_t n)
{
	if (n >= 2) {
		s->hist[0] = d[n - 2];
		s->hist[1] = d[n - 1];
	} else if (n == 1) {
		s->hist[0] = s->hist[1];
		s->hist[1] = d[0];
	}
}

/* Byte i-k of the content, looking back into hist for bytes of earlier pieces. */
static uint8_t back(const struct smtp_stream *s, const uint8_t *d, size_t i, size_t k)
{
	if (i >= k)
		return d[i - k];
	return s->hist[2 - (k - i)];
}

/*
 * Index k >= max(from, 1) of the first '.' right after a '\n' in d, or len.
 * This is the whole cost of skipping a DATA body: with SSE2, 64 bytes per
 * step as two bitmasks (LF positions shifted by one AND dot positions);
 * otherwise memchr for the dot. A dot at index 0 needs the previous piece
 * and is the caller's.
 */
#if defined(__SSE2__)
/* Bit i set where p[i] == ch, for 64 bytes (written out: no loop to unroll). */
static inline uint64_t mask64(const uint8_t *p, __m128i ch)
{
	const __m128i *v = (const __m128i *)(const void *)p;
	uint64_t m0 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 0), ch));
	uint64_t m1 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 1), ch));
	uint64_t m2 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 2), ch));
	uint64_t m3 = (uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(v + 3), ch));
	return m0 | m1 << 16 | m2 << 32 | m3 << 48;
}
#endif

static size_t find_line_dot(const uint8_t *d, size_t len, size_t from)
{
	size_t j = from ? from - 1 : 0; /* looking at pairs (j, j + 1) */
#if defined(__SSE2__)
	const __m128i lf = _mm_set1_epi8('\n'), dot = _mm_set1_epi8('.');
	uint64_t carry = 0; /* an LF in the last byte of the previous block */
	while (j + 64 <= len) {
		uint64_t l = mask64(d + j, lf), t = mask64(d + j, dot);
		/* a dot at j itself is no candidate in the first block (carry 0) */
		uint64_t hit = ((l << 1) | carry) & t;
		if (hit)
			return j + (size_t)__builtin_ctzll(hit);
		carry = l >> 63;
		j += 64;
	}
	if (carry && j < len && d[j] == '.')
		return j;
	for (; j + 1 < len; j++)
		if (d[j] == '\n' && d[j + 1] == '.')
			return j + 1;
	return len;
#else
	while (j + 1 < len) {
		const uint8_t *q = memchr(d + j + 1, '.', len - j - 1);
		if (!q)
			return len;
		size_t k = (size_t)(q - d);
		if (d[k - 1] == '\n')
			return k;
		j = k;
	}
	return len;
#endif
}

/* Resolves a pending "<LF>." candidate with the bytes from i on. */
static bool resolve_dot(struct feed_ctx *c, const uint8_t *d, size_t len, size_t *i,
			uint32_t seq)
{
	while (*i < len && c->s->dot != DOT_NONE) {
		size_t at = (*i)++;
		if (dot_step(c, d[at], seq + (uint32_t)(at + 1)))
			return true;
	}
	return false;
}

/*
 * DATA content: only "<LF>." positions are looked at, and then the bytes
 * around them. Returns bytes consumed: all of d, or up to the end of the
 * terminator.
 */
static size_t consume_content(struct feed_ctx *c, const uint8_t *d, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	size_t i = 0;

	if (s->dot == DOT_NONE && d[0] == '.' && s->hist[1] == '\n') {
		s->dot = DOT_SEEN;
		s->dot_crlf = s->hist[0] == '\r';
		i = 1;
	}
	for (;;) {
		if (resolve_dot(c, d, len, &i, seq)) {
			content_end(c, seq + (uint32_t)i);
			return i;
		}
		if (i >= len)
			break;
		size_t k = find_line_dot(d, len, i);
		if (k >= len)
			break;
		s->dot = DOT_SEEN;
		s->dot_crlf = back(s, d, k, 2) == '\r';
		i = k + 1;
	}
	hist_update(s, d, len);
	return len;
}

/* The first line after DATA decides between content and a refused DATA. */
static size_t consume_data_first(struct feed_ctx *c, const uint8_t *d, size_t len,
				 uint32_t seq)
{
	struct smtp_stream *s = c->s;
	struct line ln;
	bool complete;
	size_t n = line_take(c, d, len, &ln, &complete);
	if (!complete)
		return n;
	size_t cl = line_content_len(&ln);
	uint32_t end = seq + (uint32_t)n;
	if (ln.full + 1 <= SMTP_LINE_MAX && is_command_not_header(ln.p, cl)) {
		emit_anomaly(c, SMTP_AN_DATA_REFUSED, end, NULL, ln.p, cl);
		emit_phase(c, RW_PHASE_COMMAND, end, 0);
		s->state = ST_COMMAND;
		s->in_message = false;
		command_line(c, &ln, end);
	} else if (ln.full - (ln.cr ? 1 : 0) == 1 && ln.stored && ln.p[0] == '.' && ln.cr) {
		content_end(c, end); /* empty message: "DATA" CRLF "." CRLF */
	} else {
		if (ln.full == 1 && ln.stored && ln.p[0] == '.')
			report_dot_lf(c, end);
		s->state = ST_DATA;
		s->hist[0] = ln.cr ? '\r' : 'x';
		s->hist[1] = '\n';
	}
	line_reset(c->p, s);
	return n;
}

static size_t consume_chunk(struct feed_ctx *c, size_t len, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	size_t n = s->bdat_left < len ? (size_t)s->bdat_left : len;
	s->bdat_left -= n;
	if (s->bdat_left == 0)
		bdat_chunk_end(c, seq + (uint32_t)n);
	return n;
}

static void process_bytes(struct feed_ctx *c, const uint8_t *d, size_t len, uint32_t seq)
{
	while (len && !c->f->end_pending) {
		size_t n;
		switch (c->s->state) {
		case ST_COMMAND: n = consume_command(c, d, len, seq); break;
		case ST_RESYNC: n = consume_resync(c, d, len); break;
		case ST_DATA_FIRST: n = consume_data_first(c, d, len, seq); break;
		case ST_DATA: n = consume_content(c, d, len, seq); break;
		case ST_BDAT: n = consume_chunk(c, len, seq); break;
		default: return; /* ST_OPAQUE: TLS records */
		}
		d += n;
		len -= n;
		seq += (uint32_t)n;
	}
}

/* ---- gaps and skipped body bytes --------------------------------------------------- */

static void enter_unknown_content(struct smtp_stream *s)
{
	s->state = ST_DATA;
	s->hist[0] = s->hist[1] = 0; /* unknown: a dot right after is no line start */
	s->dot = DOT_NONE;
}

/* n bytes before seq are lost: report and resynchronise where we can. */
static void gap(struct feed_ctx *c, uint32_t n, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	char why[48];
	c->p->st.gaps++;
	c->p->st.gap_bytes += n;
	snprintf(why, sizeof(why), "%u bytes lost", n);
	emit_anomaly(c, SMTP_AN_GAP, seq, why, NULL, 0);
	switch (s->state) {
	case ST_COMMAND:
	case ST_RESYNC:
		line_reset(c->p, s);
		s->auth_pending = false;
		s->state = ST_RESYNC;
		s->resync_probe = true;
		break;
	case ST_DATA_FIRST:
	case ST_DATA:
		line_reset(c->p, s);
		enter_unknown_content(s);
		break;
	case ST_BDAT:
		if (n < s->bdat_left) {
			s->bdat_left -= n;
		} else {
			s->bdat_left = 0;
			bdat_chunk_end(c, seq);
			line_reset(c->p, s);
			s->state = ST_RESYNC;
			s->resync_probe = true;
		}
		break;
	default:
		break;
	}
}

/* n body bytes before seq were deliberately not carried (kernel body phase). */
static void skipped_body(struct feed_ctx *c, uint32_t n, uint32_t seq)
{
	struct smtp_stream *s = c->s;
	switch (s->state) {
	case ST_DATA_FIRST:
	case ST_DATA:
		c->p->st.bytes_skipped += n;
		line_reset(c->p, s);
		enter_unknown_content(s);
		s->saw_tail = true;
		return;
	case ST_BDAT:
		if (n <= s->bdat_left) {
			c->p->st.bytes_skipped += n;
			s->bdat_left -= n;
			if (s->bdat_left == 0)
				bdat_chunk_end(c, seq);
			return;
		}
		c->p->st.bytes_skipped += s->bdat_left;
		n -= (uint32_t)s->bdat_left;
		s->bdat_left = 0;
		bdat_chunk_end(c, seq - n);
		gap(c, n, seq);
		return;
	case ST_OPAQUE:
		return;
	default:
		gap(c, n, seq);
		return;
	}
}

/*
 * Blind-spot detector: body segments come as tails; a later segment that
 * arrives whole, at a line start, and opens with a command line is most
 * likely the client's next command after a terminator we could not see.
 */
static void check_missed_end(struct feed_ctx *c, const struct reasm_piece *pc)
{
	struct smtp_stream *s = c->s;
	if (s->state != ST_DATA || !s->saw_tail || pc->skipped || s->missed_end_reported ||
	    s->dot != DOT_NONE || s->hist[0] != '\r' || s->hist[1] != '\n')
		return;
	size_t scan = pc->len < SMTP_LINE_MAX ? pc->len : SMTP_LINE_MAX;
	const uint8_t *lf = memchr(pc->data, '\n', scan);
	if (!lf)
		return;
	size_t n = (size_t)(lf - pc->data);
	if (n && pc->data[n - 1] == '\r')
		n--;
	if (!is_command_not_header(pc->data, n))
		return;
	s->missed_end_reported = true;
	emit_anomaly(c, SMTP_AN_MISSED_END, pc->seq, NULL, pc->data, n);
}

/* A piece that starts exactly at rs.next. */
static void deliver(struct feed_ctx *c, const struct reasm_piece *pc)
{
	struct smtp_stream *s = c->s;
	c->ts_ns = pc->ts_ns;
	c->piece_end = pc->seq + pc->len;
	if (pc->skipped)
		skipped_body(c, pc->skipped, pc->seq);
	check_missed_end(c, pc);
	process_bytes(c, pc->data, pc->len, pc->seq);
	s->rs.next = pc->seq + pc->len;
}

/* ---- reassembly glue ------------------------------------------------------------- */

/*
 * In a BDAT chunk the kernel sends nothing before the chunk's end, so a
 * jump forward that stays inside the chunk is chunk content, not a loss.
 */
static bool is_chunk_hole(const struct smtp_stream *s, uint32_t hole)
{
	return s->state == ST_BDAT && hole <= s->bdat_left;
}

static void drain_held(struct feed_ctx *c)
{
	struct smtp_stream *s = c->s;
	uint32_t start;
	while (!c->f->end_pending && s->state != ST_OPAQUE && reasm_first_start(&s->rs, &start)) {
		int32_t ahead = reasm_diff(start, s->rs.next);
		if (ahead > 0 && !is_chunk_hole(s, (uint32_t)ahead))
			return;
		struct reasm_piece pc;
		struct reasm_held *h = reasm_pop(&s->rs, &pc);
		enum reasm_fit fit = reasm_fit(&s->rs, &pc);
		if (fit == REASM_AHEAD)
			pc.skipped += (uint32_t)reasm_diff(reasm_start(&pc), s->rs.next);
		if (fit != REASM_OLD)
			deliver(c, &pc);
		c->p->mem -= reasm_release(h);
	}
	if (s->state == ST_OPAQUE || c->f->end_pending)
		c->p->mem -= reasm_clear(&s->rs);
}

/* Delivers a piece that starts after rs.next, the bytes between being lost. */
static void deliver_after_gap(struct feed_ctx *c, struct reasm_piece *pc)
{
	uint32_t start = reasm_start(pc);
	c->ts_ns = pc->ts_ns;
	gap(c, start - c->s->rs.next, start);
	c->s->rs.next = start;
	deliver(c, pc);
}

/* Over the per-stream hold cap: give up waiting, oldest held piece first. */
static void force_progress(struct feed_ctx *c, struct reasm_piece *pc)
{
	struct smtp_stream *s = c->s;
	emit_anomaly(c, SMTP_AN_REORDER_OVERFLOW, s->rs.next, "hold cap reached", NULL, 0);
	while (!c->f->end_pending && s->rs.held &&
	       s->rs.held_bytes + pc->len > c->p->lim.max_ooo_bytes) {
		struct reasm_piece first;
		uint32_t start;
		reasm_first_start(&s->rs, &start);
		if (reasm_diff(start, reasm_start(pc)) > 0)
			break; /* the new piece comes first */
		struct reasm_held *h = reasm_pop(&s->rs, &first);
		enum reasm_fit fit = reasm_fit(&s->rs, &first);
		if (fit == REASM_AHEAD)
			deliver_after_gap(c, &first);
		else if (fit == REASM_NEXT)
			deliver(c, &first);
		c->p->mem -= reasm_release(h);
		drain_held(c);
	}
	if (c->f->end_pending || s->state == ST_OPAQUE)
		return;
	enum reasm_fit fit = reasm_fit(&s->rs, pc);
	if (fit == REASM_OLD)
		return;
	if (fit == REASM_NEXT)
		deliver(c, pc);
	else
		deliver_after_gap(c, pc);
	drain_held(c);
}

static void hold_ahead(struct feed_ctx *c, struct reasm_piece *pc)
{
	struct smtp_stream *s = c->s;
	c->p->st.segments_ooo++;
	if (s->rs.held_bytes + pc->len > c->p->lim.max_ooo_bytes) {
		force_progress(c, pc);
		return;
	}
	long cost = reasm_hold(&s->rs, pc);
	if (cost < 0) {
		force_progress(c, pc);
		return;
	}
	c->p->mem += (size_t)cost;
}

static void stream_input(struct feed_ctx *c, struct reasm_piece *pc)
{
	struct smtp_stream *s = c->s;
	enum reasm_fit fit = reasm_fit(&s->rs, pc);
	if (fit == REASM_OLD) {
		c->p->st.segments_dup++;
		return;
	}
	if (fit == REASM_AHEAD) {
		uint32_t hole = (uint32_t)reasm_diff(reasm_start(pc), s->rs.next);
		if (!is_chunk_hole(s, hole)) {
			hold_ahead(c, pc);
			return;
		}
		pc->skipped += hole;
	}
	deliver(c, pc);
	drain_held(c);
}

/* ---- flows --------------------------------------------------------------------- */

static int stream_index(uint8_t source)
{
	if (source == RW_SRC_TC)
		return 0;
	if (source == RW_SRC_TLS)
		return 1;
	return -1;
}

static void stream_free(struct smtp_parser *p, struct smtp_stream *s)
{
	if (!s)
		return;
	if (p->from_stream == s)
		p->from_stream = NULL;
	line_reset(p, s);
	transaction_reset(p, s);
	p->mem -= reasm_clear(&s->rs);
	mem_free(p, s, sizeof(*s));
}

static struct smtp_stream *stream_new(struct smtp_parser *p, uint8_t source)
{
	struct smtp_stream *s = mem_alloc(p, sizeof(*s));
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->source = source;
	s->state = ST_COMMAND;
	return s;
}

static void flow_free(struct smtp_parser *p, struct smtp_flow *f)
{
	smtp_table_remove(&p->table, f);
	stream_free(p, f->streams[0]);
	stream_free(p, f->streams[1]);
	mem_free(p, f, sizeof(*f));
	p->st.flows_active = p->table.count;
}

static void flow_finish(struct smtp_parser *p, struct smtp_flow *f, uint64_t ts_ns, bool evicted)
{
	struct feed_ctx c = { .p = p, .f = f, .s = NULL, .ts_ns = ts_ns };
	uint32_t seq = f->streams[0] ? f->streams[0]->rs.next : 0;
	if (evicted) {
		p->st.flows_evicted++;
		emit_anomaly(&c, SMTP_AN_EVICTED, seq, "memory cap", NULL, 0);
	}
	emit_simple(&c, SMTP_EV_FLOW_END, seq);
	flow_free(p, f);
}

static bool over_limits(const struct smtp_parser *p, size_t extra_flows)
{
	return p->table.count + extra_flows > p->lim.max_flows || p->mem > p->lim.max_bytes_total;
}

/* Evicts least recently fed flows (never the one being fed). */
static void enforce_limits(struct smtp_parser *p, size_t extra_flows, uint64_t ts_ns)
{
	while (over_limits(p, extra_flows)) {
		struct smtp_flow *victim = p->table.oldest;
		if (victim == p->feeding)
			victim = victim ? victim->newer : NULL;
		if (!victim)
			return;
		flow_finish(p, victim, ts_ns, true);
	}
}

static struct smtp_flow *flow_lookup(struct smtp_parser *p, const struct rw_flow_key *key,
				     bool create, uint64_t ts_ns)
{
	uint64_t h = flow_key_hash(key);
	struct smtp_flow *f = smtp_table_find(&p->table, key, h);
	if (f || !create)
		return f;
	enforce_limits(p, 1, ts_ns);
	if (p->table.count + 1 > p->lim.max_flows)
		return NULL;
	f = mem_alloc(p, sizeof(*f));
	if (!f)
		return NULL;
	memset(f, 0, sizeof(*f));
	f->key = *key;
	f->hash = h;
	size_t before = smtp_table_mem(&p->table);
	if (smtp_table_insert(&p->table, f)) {
		mem_free(p, f, sizeof(*f));
		return NULL;
	}
	p->mem += smtp_table_mem(&p->table) - before;
	p->st.flows_seen++;
	p->st.flows_active = p->table.count;
	return f;
}

static struct smtp_stream *flow_stream(struct smtp_parser *p, struct smtp_flow *f, int idx,
				       uint8_t source)
{
	if (!f->streams[idx])
		f->streams[idx] = stream_new(p, source);
	return f->streams[idx];
}

/* ---- API ----------------------------------------------------------------------- */

struct smtp_parser *smtp_parser_new(const struct smtp_limits *lim, smtp_event_cb cb, void *ctx)
{
	if (!cb)
		return NULL;
	struct smtp_parser *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->lim = lim ? *lim : smtp_default_limits;
	if (!p->lim.max_flows)
		p->lim.max_flows = 1;
	p->cb = cb;
	p->ctx = ctx;
	if (smtp_table_init(&p->table)) {
		free(p);
		return NULL;
	}
	p->mem = smtp_table_mem(&p->table);
	return p;
}

void smtp_parser_free(struct smtp_parser *p)
{
	if (!p)
		return;
	while (p->table.oldest)
		flow_free(p, p->table.oldest);
	smtp_table_destroy(&p->table);
	free(p);
}

void smtp_parser_flow_start(struct smtp_parser *p, const struct rw_flow_key *flow,
			    uint8_t source, uint32_t isn, uint64_t ts_ns)
{
	int idx = stream_index(source);
	if (idx < 0 || p->feeding)
		return;
	struct smtp_flow *f = flow_lookup(p, flow, true, ts_ns);
	if (!f)
		return;
	smtp_table_touch(&p->table, f);
	struct smtp_stream *s = f->streams[idx];
	if (s && s->have_isn && s->isn == isn)
		return; /* SYN retransmission */
	if (s) { /* a new connection on the same 4-tuple */
		stream_free(p, s);
		f->streams[idx] = NULL;
	}
	s = flow_stream(p, f, idx, source);
	if (s) {
		reasm_init(&s->rs, isn + 1);
		s->have_isn = true;
		s->isn = isn;
	}
}

int smtp_parser_feed(struct smtp_parser *p, const struct smtp_segment *seg)
{
	int idx = stream_index(seg->source);
	if (idx < 0 || (seg->len && !seg->data))
		return -EINVAL;
	if (p->feeding)
		return -EBUSY; /* called from inside an event callback */
	p->st.bytes_in += seg->len;
	struct smtp_flow *f = flow_lookup(p, seg->flow, true, seg->ts_ns);
	struct smtp_stream *s = f ? flow_stream(p, f, idx, seg->source) : NULL;
	if (!s)
		return -ENOMEM;
	smtp_table_touch(&p->table, f);
	if (!s->rs.started)
		reasm_init(&s->rs, seg->seq - seg->skipped);
	if (s->state != ST_OPAQUE) {
		struct feed_ctx c = { .p = p, .f = f, .s = s, .ts_ns = seg->ts_ns };
		struct reasm_piece pc = { .seq = seg->seq, .skipped = seg->skipped,
					  .data = seg->data, .len = seg->len,
					  .ts_ns = seg->ts_ns };
		p->feeding = f;
		stream_input(&c, &pc);
		p->feeding = NULL;
	}
	if (f->end_pending)
		flow_finish(p, f, seg->ts_ns, false);
	enforce_limits(p, 0, seg->ts_ns);
	return 0;
}

int smtp_parser_stream_next(const struct smtp_parser *p, const struct rw_flow_key *flow,
			    uint8_t source, uint32_t *next)
{
	int idx = stream_index(source);
	if (idx < 0)
		return -ENOENT;
	const struct smtp_flow *f = smtp_table_find(&p->table, flow, flow_key_hash(flow));
	const struct smtp_stream *s = f ? f->streams[idx] : NULL;
	if (!s || !s->rs.started)
		return -ENOENT;
	*next = s->rs.next;
	return 0;
}

void smtp_parser_flow_end(struct smtp_parser *p, const struct rw_flow_key *flow, uint64_t ts_ns)
{
	struct smtp_flow *f = flow_lookup(p, flow, false, ts_ns);
	if (!f)
		return;
	if (f == p->feeding) { /* from a callback: finish once the feed unwinds */
		f->end_pending = true;
		return;
	}
	if (p->feeding)
		return; /* ending another flow mid-callback would free under us */
	flow_finish(p, f, ts_ns, false);
}

void smtp_parser_stats(const struct smtp_parser *p, struct smtp_stats *out)
{
	*out = p->st;
	out->flows_active = p->table.count;
	out->mem_bytes = p->mem;
}

size_t smtp_parser_idle_flow_bytes(void)
{
	/* entry + one stream + its share of the bucket array at load 1 */
	return sizeof(struct smtp_flow) + sizeof(struct smtp_stream) + sizeof(void *);
}

const char *smtp_event_name(enum smtp_event_kind k)
{
	switch (k) {
	case SMTP_EV_MAIL: return "mail";
	case SMTP_EV_RCPT: return "rcpt";
	case SMTP_EV_DATA_START: return "data_start";
	case SMTP_EV_MESSAGE_END: return "message_end";
	case SMTP_EV_OPAQUE: return "opaque";
	case SMTP_EV_ANOMALY: return "anomaly";
	case SMTP_EV_PHASE: return "phase";
	case SMTP_EV_FLOW_END: return "flow_end";
	}
	return "unknown";
}

const char *smtp_anomaly_name(enum smtp_anomaly a)
{
	static const char *const names[SMTP_AN_MAX] = {
		[SMTP_AN_NONE] = "none",
		[SMTP_AN_LINE_TOO_LONG] = "line_too_long",
		[SMTP_AN_BARE_LF] = "bare_lf",
		[SMTP_AN_CONTROL_BYTE] = "control_byte",
		[SMTP_AN_BAD_PATH] = "bad_path",
		[SMTP_AN_NO_BRACKETS] = "no_brackets",
		[SMTP_AN_SOURCE_ROUTE] = "source_route",
		[SMTP_AN_GAP] = "gap",
		[SMTP_AN_REORDER_OVERFLOW] = "reorder_overflow",
		[SMTP_AN_DATA_REFUSED] = "data_refused",
		[SMTP_AN_BAD_BDAT] = "bad_bdat",
		[SMTP_AN_UNKNOWN_COMMAND] = "unknown_command",
		[SMTP_AN_RCPT_WITHOUT_MAIL] = "rcpt_without_mail",
		[SMTP_AN_EVICTED] = "evicted",
		[SMTP_AN_DOT_BARE_LF] = "dot_bare_lf",
		[SMTP_AN_MISSED_END] = "missed_end",
	};
	if ((unsigned)a < SMTP_AN_MAX && names[a])
		return names[a];
	return "unknown";
}
