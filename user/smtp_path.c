/*
 * Reverse and forward paths as the receiving server reads them.
 *
 * RFC 5321 4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">", Mailbox =
 * Local-part "@" ( Domain / address-literal ). Real servers are more lenient
 * than the grammar (spaces inside <>, no <> at all), and the whole point is
 * to see what a lenient server would deliver to, so the parser accepts those
 * forms and flags them instead of rejecting them. Text is kept as sent (case,
 * trailing dot, quotes): normalisation is the matcher's job.
 */
#include "smtp_path.h"

#include <string.h>

struct cursor {
	const uint8_t *s;
	size_t len, pos;
};

static bool at_end(const struct cursor *c)
{
	return c->pos >= c->len;
}

static bool is_wsp(uint8_t ch)
{
	return ch == ' ' || ch == '\t';
}

static void skip_wsp(struct cursor *c)
{
	while (!at_end(c) && is_wsp(c->s[c->pos]))
		c->pos++;
}

/* Copies n bytes into a NUL-terminated field of size cap, truncating. */
static void put_field(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool has_high_byte(const char *s)
{
	for (; *s; s++)
		if ((uint8_t)*s >= 0x80)
			return true;
	return false;
}

/* "<@a,@b:" : the route ends at the first ':'; it must not pass a '>'. */
static enum smtp_path_result skip_source_route(struct cursor *c, struct smtp_mailbox *out)
{
	while (!at_end(c)) {
		uint8_t ch = c->s[c->pos++];
		if (ch == ':') {
			out->had_source_route = true;
			return SMTP_PATH_OK;
		}
		if (ch == '>' || is_wsp(ch))
			break;
	}
	return SMTP_PATH_BAD_ROUTE;
}

/* Quoted-string local part: returns the index after the closing quote, or 0. */
static size_t quoted_end(const struct cursor *c)
{
	size_t i = c->pos + 1;
	while (i < c->len) {
		if (c->s[i] == '\\')
			i += 2;
		else if (c->s[i] == '"')
			return i + 1;
		else
			i++;
	}
	return 0;
}

/* End of an unquoted token: '>' closes a bracketed path, whitespace any path. */
static size_t token_end(const struct cursor *c, size_t from, bool bracketed)
{
	size_t i = from;
	while (i < c->len && !is_wsp(c->s[i]) && !(bracketed && c->s[i] == '>'))
		i++;
	return i;
}

static enum smtp_path_result parse_domain(struct cursor *c, bool bracketed,
					  struct smtp_mailbox *out)
{
	size_t start = c->pos, end;
	if (!at_end(c) && c->s[start] == '[') {
		const uint8_t *close = memchr(c->s + start, ']', c->len - start);
		if (!close)
			return SMTP_PATH_BAD_DOMAIN;
		end = (size_t)(close - c->s) + 1;
		out->is_literal = true;
	} else {
		end = token_end(c, start, bracketed);
	}
	if (end == start)
		return SMTP_PATH_BAD_DOMAIN;
	put_field(out->domain, sizeof(out->domain), c->s + start, end - start);
	c->pos = end;
	return SMTP_PATH_OK;
}

/*
 * Local part and domain. An unquoted local part may (invalidly) contain
 * '@': the domain is what follows the last one, which is where a server
 * that splits at the last '@' would deliver.
 */
static enum smtp_path_result parse_mailbox(struct cursor *c, bool bracketed,
					   struct smtp_mailbox *out)
{
	size_t start = c->pos;
	if (!at_end(c) && c->s[start] == '"') {
		size_t q = quoted_end(c);
		if (!q)
			return SMTP_PATH_UNTERMINATED;
		put_field(out->local, sizeof(out->local), c->s + start, q - start);
		c->pos = q;
		if (at_end(c) || c->s[c->pos] != '@')
			return SMTP_PATH_OK; /* "<\"postmaster\">": no domain */
		c->pos++;
		return parse_domain(c, bracketed, out);
	}
	size_t end = token_end(c, start, bracketed);
	size_t at = end;
	for (size_t i = start; i < end; i++)
		if (c->s[i] == '@')
			at = i;
	if (at == end) { /* no '@': <postmaster> is a valid forward path */
		if (end == start)
			return SMTP_PATH_BAD_LOCAL;
		put_field(out->local, sizeof(out->local), c->s + start, end - start);
		c->pos = end;
		return SMTP_PATH_OK;
	}
	if (at == start)
		return SMTP_PATH_BAD_LOCAL;
	put_field(out->local, sizeof(out->local), c->s + start, at - start);
	c->pos = at + 1;
	return parse_domain(c, bracketed, out);
}

static enum smtp_path_result parse_bracketed(struct cursor *c, bool allow_null,
					     struct smtp_mailbox *out)
{
	c->pos++; /* '<' */
	skip_wsp(c);
	if (!at_end(c) && c->s[c->pos] == '>') {
		c->pos++;
		out->is_null = true;
		return allow_null ? SMTP_PATH_OK : SMTP_PATH_NULL_RCPT;
	}
	if (!at_end(c) && c->s[c->pos] == '@') {
		enum smtp_path_result r = skip_source_route(c, out);
		if (r != SMTP_PATH_OK)
			return r;
	}
	enum smtp_path_result r = parse_mailbox(c, true, out);
	if (r != SMTP_PATH_OK)
		return r;
	skip_wsp(c);
	if (at_end(c) || c->s[c->pos] != '>')
		return SMTP_PATH_UNTERMINATED;
	c->pos++;
	return SMTP_PATH_OK;
}

static void set_params(struct cursor *c, struct smtp_mailbox *out)
{
	skip_wsp(c);
	size_t end = c->len;
	while (end > c->pos && is_wsp(c->s[end - 1]))
		end--;
	put_field(out->params, sizeof(out->params), c->s + c->pos, end - c->pos);
}

/* local@domain; the argument was at most a line, so this fits (and is capped if not) */
static void build_mailbox(struct smtp_mailbox *out)
{
	size_t cap = sizeof(out->mailbox), ll = strlen(out->local), dl = strlen(out->domain);
	size_t o = ll < cap - 1 ? ll : cap - 1;
	memcpy(out->mailbox, out->local, o);
	if (dl && o + 1 < cap) {
		out->mailbox[o++] = '@';
		size_t n = dl < cap - 1 - o ? dl : cap - 1 - o;
		memcpy(out->mailbox + o, out->domain, n);
		o += n;
	}
	out->mailbox[o] = '\0';
	out->utf8 = has_high_byte(out->mailbox);
}

enum smtp_path_result smtp_path_parse(const uint8_t *arg, size_t len, bool allow_null,
				      struct smtp_mailbox *out)
{
	struct cursor c = { .s = arg, .len = len, .pos = 0 };
	enum smtp_path_result r;

	/* the strings are always NUL-terminated; clearing 2 KiB per path is not needed */
	out->mailbox[0] = out->local[0] = out->domain[0] = out->params[0] = '\0';
	out->is_null = out->is_literal = out->no_brackets = false;
	out->had_source_route = out->utf8 = false;
	skip_wsp(&c);
	if (at_end(&c))
		return SMTP_PATH_EMPTY;
	if (c.s[c.pos] == '<') {
		r = parse_bracketed(&c, allow_null, out);
	} else {
		out->no_brackets = true;
		if (c.s[c.pos] == '@') {
			r = skip_source_route(&c, out);
			if (r != SMTP_PATH_OK)
				return r;
		}
		r = parse_mailbox(&c, false, out);
	}
	if (r != SMTP_PATH_OK) {
		out->local[0] = out->domain[0] = '\0';
		return r;
	}
	set_params(&c, out);
	build_mailbox(out);
	return SMTP_PATH_OK;
}

const char *smtp_path_result_str(enum smtp_path_result r)
{
	switch (r) {
	case SMTP_PATH_OK: return "ok";
	case SMTP_PATH_EMPTY: return "empty path";
	case SMTP_PATH_UNTERMINATED: return "unterminated path";
	case SMTP_PATH_BAD_ROUTE: return "bad source route";
	case SMTP_PATH_BAD_LOCAL: return "empty local part";
	case SMTP_PATH_BAD_DOMAIN: return "bad domain";
	case SMTP_PATH_NULL_RCPT: return "null forward path";
	}
	return "?";
}

/* Escaped form of one byte into tmp; returns its length. */
static size_t escape_byte(uint8_t ch, char tmp[4])
{
	static const char hex[] = "0123456789abcdef";
	if (ch == '\\' || ch == '\r' || ch == '\n') {
		tmp[0] = '\\';
		tmp[1] = ch == '\r' ? 'r' : ch == '\n' ? 'n' : '\\';
		return 2;
	}
	if (ch >= 0x20 && ch < 0x7f) {
		tmp[0] = (char)ch;
		return 1;
	}
	tmp[0] = '\\';
	tmp[1] = 'x';
	tmp[2] = hex[ch >> 4];
	tmp[3] = hex[ch & 15];
	return 4;
}

void smtp_escape(const uint8_t *src, size_t len, char *dst, size_t dstlen)
{
	char tmp[4];
	size_t total = 0, o = 0;
	if (!dstlen)
		return;
	for (size_t i = 0; i < len && total < dstlen; i++)
		total += escape_byte(src[i], tmp);
	/* if it all fits, no "..."; otherwise keep room for it */
	size_t limit = total < dstlen ? dstlen - 1 : (dstlen >= 4 ? dstlen - 4 : 0);
	for (size_t i = 0; i < len; i++) {
		size_t n = escape_byte(src[i], tmp);
		if (o + n > limit)
			break;
		memcpy(dst + o, tmp, n);
		o += n;
	}
	if (total >= dstlen && dstlen >= 4) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}
