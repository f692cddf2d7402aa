/*
 * JSON Lines event log with jansson, syslog for flags and blocks, and a
 * once-per-second accumulator for loss events. See log.h for the fields.
 */
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "flow.h"

struct rw_log {
	struct rw_log_opts opts;
	char *path;           /* NULL for stdout or opts.stream */
	FILE *out;
	bool own_out;         /* we opened it */
	char *batch;          /* batched: lines not yet written, LOG_BATCH_BYTES */
	size_t pending;       /* bytes in batch */
	uint64_t loss[LOSS_MAX];
	uint64_t last_loss_ns; /* monotonic time of the last loss event, 0: never */
	struct log_stats st;
};

static const char *const loss_names[LOSS_MAX] = {
	[LOSS_RING_RESERVE] = "ring_reserve",
	[LOSS_TRUNCATED] = "truncated_bytes",
	[LOSS_PARSER_GAP] = "parser_gap",
	[LOSS_PARSER_EVICT] = "parser_evicted",
	[LOSS_FLOW_EVICT] = "flow_evicted",
	[LOSS_ENFORCE] = "enforce_failed",
	[LOSS_GATE_EXPIRED] = "gate_expired",
};

#define NS_PER_SEC 1000000000ull
/* Batched mode's buffer: lines are added whole, written out together. */
#define LOG_BATCH_BYTES (64u << 10)

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_now(const struct rw_log *lg)
{
	return lg->opts.realtime_ns ? lg->opts.realtime_ns() : clock_ns(CLOCK_REALTIME);
}

static uint64_t monotonic_now(const struct rw_log *lg)
{
	return lg->opts.monotonic_ns ? lg->opts.monotonic_ns() : clock_ns(CLOCK_MONOTONIC);
}

/* ---- strings from the wire ----------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

size_t log_sanitize(const char *in, char *out, size_t outlen)
{
	static const char cut_mark[] = "...(cut)";
	const unsigned char *p = (const unsigned char *)in;
	size_t n = strlen(in), o = 0, i = 0;
	size_t limit = n > LOG_STR_MAX ? LOG_STR_MAX : n;
	while (i < limit) {
		size_t len = utf8_seq_len(p + i, n - i);
		if (len && i + len <= limit) {
			if (o + len >= outlen)
				break;
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else if (len) {
			break; /* a valid sequence straddling the cut: stop before it */
		} else {
			if (o + 4 >= outlen)
				break;
			static const char hex[] = "0123456789abcdef";
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
			i++;
		}
	}
	if (i < n && o + sizeof(cut_mark) <= outlen) {
		memcpy(out + o, cut_mark, sizeof(cut_mark) - 1);
		o += sizeof(cut_mark) - 1;
	}
	out[o] = '\0';
	return o;
}

/* Worst case: every input byte becomes "\xNN", plus the cut mark. */
#define SANITIZED_MAX (4 * LOG_STR_MAX + 16)

static void set_wire_string(json_t *obj, const char *key, const char *s)
{
	if (!s)
		return;
	char buf[SANITIZED_MAX];
	log_sanitize(s, buf, sizeof(buf));
	json_object_set_new(obj, key, json_string(buf));
}

/* ---- event objects --------------------------------------------------------- */

static void format_time(uint64_t ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / NS_PER_SEC);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06uZ", (unsigned)((ns % NS_PER_SEC) / 1000));
}

static json_t *new_event(struct rw_log *lg, const char *kind)
{
	char ts[48];
	format_time(realtime_now(lg), ts, sizeof(ts));
	json_t *ev = json_object();
	if (!ev)
		return NULL;
	json_object_set_new(ev, "time", json_string(ts));
	json_object_set_new(ev, "event", json_string(kind));
	return ev;
}

static void set_flow(json_t *ev, const struct rw_flow_key *k)
{
	if (!k)
		return;
	char s[FLOW_ADDR_STRLEN], d[FLOW_ADDR_STRLEN];
	json_t *f = json_object();
	json_object_set_new(f, "family", json_string(k->family == RW_AF_INET6 ? "ipv6" : "ipv4"));
	json_object_set_new(f, "saddr", json_string(flow_addr_str(k, true, s, sizeof(s))));
	json_object_set_new(f, "sport", json_integer(k->sport));
	json_object_set_new(f, "daddr", json_string(flow_addr_str(k, false, d, sizeof(d))));
	json_object_set_new(f, "dport", json_integer(k->dport));
	json_object_set_new(ev, "flow", f);
}

static const char *verdict_name(enum match_result r)
{
	switch (r) {
	case MATCH_OK: return "ok";
	case MATCH_FLAG: return "flag";
	default: return "error";
	}
}

static void set_recipient(json_t *ev, const struct log_recipient *r)
{
	set_flow(ev, r->flow);
	set_wire_string(ev, "mail_from", r->mail_from);
	set_wire_string(ev, "rcpt", r->rcpt);
	const struct match_verdict *v = r->verdict;
	if (!v)
		return;
	if (v->domain[0])
		set_wire_string(ev, "domain", v->domain);
	json_object_set_new(ev, "verdict", json_string(verdict_name(v->result)));
	if (v->protected_entry[0])
		set_wire_string(ev, "protected", v->protected_entry);
	if (v->detector)
		set_wire_string(ev, "detector", v->detector);
	if (v->distance >= 0)
		json_object_set_new(ev, "distance", json_integer(v->distance));
	if (v->reason)
		set_wire_string(ev, "reason", v->reason);
}

/* Writes the event as one line (and to syslog at priority, if >= 0);
 * takes the reference. */
/*
 * A reader (tail -f, a log shipper) never sees half an event: unbatched,
 * each line is one flushed write; batched, a line goes into the buffer
 * only when it fits whole, and log_flush() writes the buffer out.
 */
static int write_line(struct rw_log *lg, const char *line)
{
	size_t n = strlen(line);
	int rc = 0;
	if (lg->batch && lg->pending + n + 1 > LOG_BATCH_BYTES)
		rc = log_flush(lg);
	if (lg->batch && n + 1 <= LOG_BATCH_BYTES) {
		memcpy(lg->batch + lg->pending, line, n);
		lg->batch[lg->pending + n] = '\n';
		lg->pending += n + 1;
	} else if (fprintf(lg->out, "%s\n", line) < 0 || fflush(lg->out)) {
		lg->st.write_errors++;
		return -EIO;
	}
	lg->st.lines++;
	return rc;
}

int log_flush(struct rw_log *lg)
{
	size_t n = lg->pending;
	lg->pending = 0;
	if (!n)
		return 0;
	if (fwrite(lg->batch, 1, n, lg->out) != n || fflush(lg->out)) {
		lg->st.write_errors++;
		return -EIO;
	}
	return 0;
}

static int emit(struct rw_log *lg, json_t *ev, int priority)
{
	if (!ev) {
		lg->st.write_errors++;
		return -ENOMEM;
	}
	char *line = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (!line) {
		lg->st.write_errors++;
		return -ENOMEM;
	}
	int rc = write_line(lg, line);
	if (priority >= 0 && lg->opts.syslog) {
		if (lg->opts.syslog_fn)
			lg->opts.syslog_fn(priority, line, lg->opts.syslog_ctx);
		else
			syslog(priority, "%s", line);
	}
	free(line);
	return rc;
}

/* ---- the typed events ------------------------------------------------------ */

int log_rcpt(struct rw_log *lg, const struct log_recipient *r)
{
	json_t *ev = new_event(lg, "rcpt");
	if (ev)
		set_recipient(ev, r);
	return emit(lg, ev, -1);
}

int log_flag(struct rw_log *lg, const struct log_recipient *r, enum rw_mode mode)
{
	json_t *ev = new_event(lg, "flag");
	if (ev) {
		set_recipient(ev, r);
		json_object_set_new(ev, "mode", json_string(config_mode_name(mode)));
	}
	return emit(lg, ev, LOG_MAIL | LOG_WARNING);
}

int log_block(struct rw_log *lg, const struct log_recipient *r, const struct log_block_info *b)
{
	json_t *ev = new_event(lg, "block");
	if (ev) {
		set_recipient(ev, r);
		json_object_set_new(ev, "mode", json_string(config_mode_name(b->mode)));
		if (b->would_block)
			json_object_set_new(ev, "would_block", json_true());
		else if (!b->error) {
			json_object_set_new(ev, "latency_us", json_integer((json_int_t)b->latency_us));
			json_object_set_new(ev, "queue_us", json_integer((json_int_t)b->queue_us));
		}
		if (b->actions)
			json_object_set_new(ev, "actions", json_string(b->actions));
		if (b->error)
			json_object_set_new(ev, "error", json_string(strerror(-b->error)));
	}
	int prio = b->would_block ? LOG_NOTICE : b->error ? LOG_ERR : LOG_WARNING;
	return emit(lg, ev, LOG_MAIL | prio);
}

int log_flow_opaque(struct rw_log *lg, const struct rw_flow_key *flow, const char *why)
{
	json_t *ev = new_event(lg, "flow_opaque");
	if (ev) {
		set_flow(ev, flow);
		set_wire_string(ev, "reason", why);
	}
	return emit(lg, ev, -1);
}

int log_anomaly(struct rw_log *lg, const struct rw_flow_key *flow, const char *code,
		const char *detail)
{
	json_t *ev = new_event(lg, "anomaly");
	if (ev) {
		set_flow(ev, flow);
		set_wire_string(ev, "anomaly", code);
		set_wire_string(ev, "detail", detail);
	}
	return emit(lg, ev, -1);
}

int log_lifecycle(struct rw_log *lg, enum log_lifecycle kind, enum rw_mode mode, bool ok,
		  const char *detail, const struct log_count *counts, size_t n_counts)
{
	static const char *const names[] = { [LOG_START] = "start", [LOG_STOP] = "stop",
					     [LOG_RELOAD] = "reload" };
	json_t *ev = new_event(lg, names[kind]);
	if (ev) {
		json_object_set_new(ev, "mode", json_string(config_mode_name(mode)));
		json_object_set_new(ev, "ok", json_boolean(ok));
		set_wire_string(ev, "detail", detail);
		if (n_counts) {
			json_t *c = json_object();
			for (size_t i = 0; i < n_counts; i++)
				json_object_set_new(c, counts[i].name,
						    json_integer((json_int_t)counts[i].value));
			json_object_set_new(ev, "counts", c);
		}
	}
	/* A refused reload is worth the sysadmin's attention in syslog too. */
	return emit(lg, ev, kind == LOG_RELOAD && !ok ? LOG_MAIL | LOG_ERR : -1);
}

/* ---- loss ------------------------------------------------------------------- */

void log_loss_add(struct rw_log *lg, enum log_loss_source src, uint64_t count)
{
	if (src >= LOSS_MAX || !count)
		return;
	lg->loss[src] += count;
	log_loss_tick(lg);
}

/* Writes the pending counts when a second has passed since the last loss
 * event, or now if force (at close: nothing counted is left unsaid). */
static int loss_emit(struct rw_log *lg, bool force)
{
	uint64_t total = 0;
	for (int i = 0; i < LOSS_MAX; i++)
		total += lg->loss[i];
	if (!total)
		return 0;
	uint64_t now = monotonic_now(lg);
	if (!force && lg->last_loss_ns && now - lg->last_loss_ns < NS_PER_SEC)
		return 0;
	json_t *ev = new_event(lg, "loss");
	if (ev) {
		json_t *c = json_object();
		for (int i = 0; i < LOSS_MAX; i++)
			if (lg->loss[i])
				json_object_set_new(c, loss_names[i], json_integer((json_int_t)lg->loss[i]));
		json_object_set_new(ev, "counts", c);
		json_object_set_new(ev, "total", json_integer((json_int_t)total));
	}
	memset(lg->loss, 0, sizeof(lg->loss));
	lg->last_loss_ns = now ? now : 1;
	lg->st.loss_events++;
	return emit(lg, ev, -1);
}

int log_loss_tick(struct rw_log *lg)
{
	return loss_emit(lg, false);
}

void log_stats(const struct rw_log *lg, struct log_stats *out)
{
	*out = lg->st;
	out->loss_pending = 0;
	for (int i = 0; i < LOSS_MAX; i++)
		out->loss_pending += lg->loss[i];
}

/* ---- opening ------------------------------------------------------------------ */

static int open_file(struct rw_log *lg, char *err, size_t errlen)
{
	FILE *f = fopen(lg->path, "ae");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "open log %s: %s", lg->path, strerror(e));
		return -e;
	}
	lg->out = f;
	lg->own_out = true;
	return 0;
}

int log_open(const struct rw_log_opts *opts, struct rw_log **out, char *err, size_t errlen)
{
	struct rw_log *lg = calloc(1, sizeof(*lg));
	if (!lg) {
		snprintf(err, errlen, "open log: out of memory");
		return -ENOMEM;
	}
	lg->opts = *opts;
	lg->opts.path = NULL; /* the caller's string may not outlive us: see lg->path */
	if (opts->stream) {
		lg->out = opts->stream;
	} else if (!opts->path || !strcmp(opts->path, "-")) {
		lg->out = stdout;
	} else {
		lg->path = strdup(opts->path);
		int rc = lg->path ? open_file(lg, err, errlen) : -ENOMEM;
		if (rc) {
			if (rc == -ENOMEM)
				snprintf(err, errlen, "open log: out of memory");
			free(lg->path);
			free(lg);
			return rc;
		}
	}
	if (opts->batched && !(lg->batch = malloc(LOG_BATCH_BYTES))) {
		snprintf(err, errlen, "open log: out of memory");
		if (lg->own_out)
			fclose(lg->out);
		free(lg->path);
		free(lg);
		return -ENOMEM;
	}
	if (opts->syslog && !opts->syslog_fn)
		openlog("rcptwall", LOG_PID | LOG_NDELAY, LOG_MAIL);
	*out = lg;
	return 0;
}

int log_reopen(struct rw_log *lg, char *err, size_t errlen)
{
	if (!lg->path)
		return 0;
	log_flush(lg); /* what was logged before the move goes to the old file */
	FILE *old = lg->out;
	int rc = open_file(lg, err, errlen);
	if (rc) {
		lg->out = old; /* keep writing to the old file rather than nowhere */
		return rc;
	}
	fclose(old);
	return 0;
}

void log_close(struct rw_log *lg)
{
	if (!lg)
		return;
	loss_emit(lg, true);
	log_flush(lg);
	free(lg->batch);
	if (lg->own_out)
		fclose(lg->out);
	else
		fflush(lg->out);
	if (lg->opts.syslog && !lg->opts.syslog_fn)
		closelog();
	free(lg->path);
	free(lg);
}
