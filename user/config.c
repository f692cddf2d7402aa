/*
 * Configuration file and command-line overrides.
 *
 * The file is INI, read with inih. Debian's libinih is built without the
 * line-number handler (INI_HANDLER_LINENO), so we feed inih through
 * ini_parse_stream() with our own line reader: it counts lines, so every
 * error names its line, and it sees section headers itself, so an unknown
 * section is an error even when it holds no key.
 *
 * Every key is a row of one table (section, name, parser); the file and
 * config_set() go through the same parsers, so a value means the same
 * wherever it comes from.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rcptwall/rcptwall.h"

/* ---- value parsers ------------------------------------------------------ */

/* A parser checks text and stores it; on error it returns -EINVAL and says
 * why in why (without the key: the caller adds file, line and key). */
typedef int (*value_parser)(struct rw_config *cfg, const char *value, bool append,
			    char *why, size_t whylen);

static int fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Digits only (no sign, no spaces inside), then an optional unit suffix.
 * *unit gets the suffix ("" if none). */
static int parse_number(const char *s, uint64_t *out, const char **unit)
{
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	uint64_t v = 0;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*unit = s;
	return 0;
}

static int mul_checked(uint64_t v, uint64_t m, uint64_t *out)
{
	if (m && v > UINT64_MAX / m)
		return -ERANGE;
	*out = v * m;
	return 0;
}

/* "16M", "65536", "1G": binary units. */
static int parse_size(const char *s, uint64_t *out)
{
	const char *unit;
	uint64_t v = 0;
	if (parse_number(s, &v, &unit))
		return -EINVAL;
	if (!*unit)
		return mul_checked(v, 1, out);
	if (unit[1] && strcasecmp(unit + 1, "iB") && strcasecmp(unit + 1, "B"))
		return -EINVAL;
	switch (toupper((unsigned char)unit[0])) {
	case 'K': return mul_checked(v, 1ull << 10, out);
	case 'M': return mul_checked(v, 1ull << 20, out);
	case 'G': return mul_checked(v, 1ull << 30, out);
	default: return -EINVAL;
	}
}

/* "600", "600s", "10m", "2h", "1d": seconds. */
static int parse_duration(const char *s, uint64_t *out)
{
	const char *unit;
	uint64_t v = 0;
	if (parse_number(s, &v, &unit))
		return -EINVAL;
	if (!*unit || !strcmp(unit, "s"))
		return mul_checked(v, 1, out);
	if (!strcmp(unit, "m"))
		return mul_checked(v, 60, out);
	if (!strcmp(unit, "h"))
		return mul_checked(v, 3600, out);
	if (!strcmp(unit, "d"))
		return mul_checked(v, 86400, out);
	return -EINVAL;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Splits a list on commas and blanks. Calls item() for each non-empty item
 * (NUL-terminated copy, at most maxlen bytes). */
static int for_each_item(const char *s, size_t maxlen,
			 int (*item)(const char *it, void *ctx, char *why, size_t whylen),
			 void *ctx, char *why, size_t whylen)
{
	char buf[CONFIG_PATH_MAX];
	while (*s) {
		size_t n = strcspn(s, ", \t");
		if (n) {
			if (n >= sizeof(buf) || n > maxlen)
				return fail(why, whylen, "list item '%.*s...' is too long", 16, s);
			memcpy(buf, s, n);
			buf[n] = '\0';
			int err = item(buf, ctx, why, whylen);
			if (err)
				return err;
		}
		s += n;
		s += strspn(s, ", \t");
	}
	return 0;
}

static bool printable_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- per-key parsers ---------------------------------------------------- */

static int set_mode(struct rw_config *cfg, const char *v, bool append, char *why, size_t whylen)
{
	if (!strcmp(v, "monitor"))
		cfg->mode = RW_MODE_MONITOR;
	else if (!strcmp(v, "enforce"))
		cfg->mode = RW_MODE_ENFORCE;
	else
		return fail(why, whylen, "'%.64s' is not monitor or enforce", v);
	return 0;
}

struct iface_list {
	char (*names)[IF_NAMESIZE];
	size_t n;
};

static int add_iface(const char *it, void *ctx, char *why, size_t whylen)
{
	struct iface_list *l = ctx;
	size_t len = strlen(it);
	/* The kernel's dev_valid_name(): no '/', ':' or blanks, not "." or "..". */
	if (len >= IF_NAMESIZE || !strcmp(it, ".") || !strcmp(it, "..") || strpbrk(it, "/:") ||
	    !printable_text(it))
		return fail(why, whylen, "'%.32s' is not a valid interface name", it);
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], it))
			return fail(why, whylen, "interface '%s' listed twice", it);
	if (l->n >= CONFIG_MAX_IFACES)
		return fail(why, whylen, "more than %d interfaces", CONFIG_MAX_IFACES);
	memcpy(l->names[l->n++], it, len + 1);
	return 0;
}

static int set_interfaces(struct rw_config *cfg, const char *v, bool append, char *why,
			  size_t whylen)
{
	/* Zeroed: unused slots stay zero, so equal configs compare equal. */
	char names[CONFIG_MAX_IFACES][IF_NAMESIZE] = { { 0 } };
	struct iface_list l = { names, 0 };
	if (append) {
		memcpy(names, cfg->interfaces, sizeof(names));
		l.n = cfg->n_interfaces;
	}
	int err = for_each_item(v, IF_NAMESIZE, add_iface, &l, why, whylen);
	if (err)
		return err;
	memcpy(cfg->interfaces, names, sizeof(names));
	cfg->n_interfaces = l.n;
	return 0;
}

struct port_list {
	uint16_t *ports;
	size_t n;
};

static int add_port(const char *it, void *ctx, char *why, size_t whylen)
{
	struct port_list *l = ctx;
	const char *unit;
	uint64_t v = 0;
	if (parse_number(it, &v, &unit) || *unit || v < 1 || v > 65535)
		return fail(why, whylen, "'%.16s' is not a port number (1-65535)", it);
	for (size_t i = 0; i < l->n; i++)
		if (l->ports[i] == v)
			return fail(why, whylen, "port %u listed twice", (unsigned)v);
	if (l->n >= CONFIG_MAX_PORTS)
		return fail(why, whylen, "more than %d ports", CONFIG_MAX_PORTS);
	l->ports[l->n++] = (uint16_t)v;
	return 0;
}

/* Parses a port list into ports/n (replacing or appending). */
static int set_port_list(uint16_t *ports, size_t *n, const char *v, bool append, char *why,
			 size_t whylen)
{
	uint16_t tmp[CONFIG_MAX_PORTS] = { 0 };
	struct port_list l = { tmp, 0 };
	if (append) {
		memcpy(tmp, ports, sizeof(tmp));
		l.n = *n;
	}
	int err = for_each_item(v, 16, add_port, &l, why, whylen);
	if (err)
		return err;
	memcpy(ports, tmp, sizeof(tmp));
	*n = l.n;
	return 0;
}

static bool port_in(const uint16_t *ports, size_t n, uint16_t p)
{
	for (size_t i = 0; i < n; i++)
		if (ports[i] == p)
			return true;
	return false;
}

/* A port must be either plain SMTP or implicit TLS: the kernel program
 * keeps one kind per port. */
static int check_port_overlap(const uint16_t *a, size_t na, const uint16_t *b, size_t nb,
			      char *why, size_t whylen)
{
	for (size_t i = 0; i < na; i++)
		if (port_in(b, nb, a[i]))
			return fail(why, whylen, "port %u is in both smtp_ports and tls_ports", a[i]);
	return 0;
}

static int set_smtp_ports(struct rw_config *cfg, const char *v, bool append, char *why,
			  size_t whylen)
{
	uint16_t ports[CONFIG_MAX_PORTS];
	size_t n = cfg->n_smtp_ports;
	memcpy(ports, cfg->smtp_ports, sizeof(ports));
	int err = set_port_list(ports, &n, v, append, why, whylen);
	if (err)
		return err;
	if (!n)
		return fail(why, whylen, "at least one SMTP port is needed");
	memcpy(cfg->smtp_ports, ports, sizeof(ports));
	cfg->n_smtp_ports = n;
	return 0;
}

/* An empty value is allowed: no implicit-TLS port. */
static int set_tls_ports(struct rw_config *cfg, const char *v, bool append, char *why,
			 size_t whylen)
{
	return set_port_list(cfg->tls_ports, &cfg->n_tls_ports, v, append, why, whylen);
}

/* Checks that need more than one key; run after a whole file or a
 * config_set(), so the order of keys in a file does not matter. */
static int config_check(const struct rw_config *cfg, const char **key, char *why, size_t whylen)
{
	*key = "tls_ports";
	return check_port_overlap(cfg->tls_ports, cfg->n_tls_ports, cfg->smtp_ports,
				  cfg->n_smtp_ports, why, whylen);
}

static int set_ring_size(struct rw_config *cfg, const char *v, bool append, char *why,
			 size_t whylen)
{
	uint64_t sz = 0;
	if (parse_size(v, &sz))
		return fail(why, whylen, "'%.32s' is not a size (e.g. 16M)", v);
	/* BPF_MAP_TYPE_RINGBUF: a power of two and a multiple of the page size. */
	if (sz < 4096 || sz > (1ull << 30) || (sz & (sz - 1)))
		return fail(why, whylen, "%llu is not a power of two between 4K and 1G",
			    (unsigned long long)sz);
	cfg->ring_size = (uint32_t)sz;
	return 0;
}

/* Range-checked numbers: one helper per shape keeps the table short. */
static int store_bounded(uint64_t v, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
			 size_t whylen)
{
	if (v < lo || v > hi)
		return fail(why, whylen, "%llu is out of range (%llu-%llu)", (unsigned long long)v,
			    (unsigned long long)lo, (unsigned long long)hi);
	*out = v;
	return 0;
}

static int parse_count(const char *v, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
		       size_t whylen)
{
	const char *unit;
	uint64_t n = 0;
	if (parse_number(v, &n, &unit) || *unit)
		return fail(why, whylen, "'%.32s' is not a whole number", v);
	return store_bounded(n, lo, hi, out, why, whylen);
}

static int parse_bytes(const char *v, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
		       size_t whylen)
{
	uint64_t n = 0;
	if (parse_size(v, &n))
		return fail(why, whylen, "'%.32s' is not a size (e.g. 256M)", v);
	return store_bounded(n, lo, hi, out, why, whylen);
}

static int set_max_flows(struct rw_config *cfg, const char *v, bool append, char *why,
			 size_t whylen)
{
	return parse_count(v, 1, 10000000, &cfg->max_flows, why, whylen);
}

static int set_max_memory(struct rw_config *cfg, const char *v, bool append, char *why,
			  size_t whylen)
{
	return parse_bytes(v, 1ull << 20, 64ull << 30, &cfg->max_memory, why, whylen);
}

static int set_max_reorder(struct rw_config *cfg, const char *v, bool append, char *why,
			   size_t whylen)
{
	return parse_bytes(v, 0, 16ull << 20, &cfg->max_reorder_bytes, why, whylen);
}

static int set_timeout(struct rw_config *cfg, const char *v, bool append, char *why,
		       size_t whylen)
{
	uint64_t s = 0;
	if (parse_duration(v, &s))
		return fail(why, whylen, "'%.32s' is not a duration (e.g. 600, 10m, 1h)", v);
	int err = store_bounded(s, 1, 7 * 86400, &s, why, whylen);
	if (!err)
		cfg->set_timeout_s = (uint32_t)s;
	return err;
}

static int set_keep_rules(struct rw_config *cfg, const char *v, bool append, char *why,
			  size_t whylen)
{
	if (parse_bool(v, &cfg->keep_rules_on_exit))
		return fail(why, whylen, "'%.32s' is not a boolean (true/false)", v);
	return 0;
}

static int set_flush_interval(struct rw_config *cfg, const char *v, bool append, char *why,
			      size_t whylen)
{
	uint64_t ms = 0;
	int err = parse_count(v, 0, 1000, &ms, why, whylen);
	if (!err)
		cfg->flush_interval_ms = (uint32_t)ms;
	return err;
}

static int set_hold(struct rw_config *cfg, const char *v, bool append, char *why, size_t whylen)
{
	uint64_t ms = 0;
	int err = parse_count(v, 0, 10000, &ms, why, whylen);
	if (!err)
		cfg->hold_ms = (uint32_t)ms;
	return err;
}

static int set_batch_size(struct rw_config *cfg, const char *v, bool append, char *why,
			  size_t whylen)
{
	uint64_t n = 0;
	int err = parse_count(v, 1, 65536, &n, why, whylen);
	if (!err)
		cfg->batch_size = (uint32_t)n;
	return err;
}

static int set_realtime(struct rw_config *cfg, const char *v, bool append, char *why,
			size_t whylen)
{
	if (parse_bool(v, &cfg->realtime))
		return fail(why, whylen, "'%.32s' is not a boolean (true/false)", v);
	return 0;
}

static int set_worker_thread(struct rw_config *cfg, const char *v, bool append, char *why,
			     size_t whylen)
{
	if (parse_bool(v, &cfg->worker_thread))
		return fail(why, whylen, "'%.32s' is not a boolean (true/false)", v);
	return 0;
}

static int copy_path(char *dst, const char *v, bool allow_empty, char *why, size_t whylen)
{
	size_t len = strlen(v);
	if (len >= CONFIG_PATH_MAX)
		return fail(why, whylen, "path longer than %d bytes", CONFIG_PATH_MAX - 1);
	if (!allow_empty && !len)
		return fail(why, whylen, "empty path");
	if (!printable_text(v))
		return fail(why, whylen, "path contains control characters");
	memset(dst, 0, CONFIG_PATH_MAX);
	memcpy(dst, v, len);
	return 0;
}

static int set_protect(struct rw_config *cfg, const char *v, bool append, char *why,
		       size_t whylen)
{
	return copy_path(cfg->protect, v, true, why, whylen);
}

static int set_allow(struct rw_config *cfg, const char *v, bool append, char *why, size_t whylen)
{
	return copy_path(cfg->allow, v, true, why, whylen);
}

static int set_block(struct rw_config *cfg, const char *v, bool append, char *why, size_t whylen)
{
	return copy_path(cfg->block, v, true, why, whylen);
}

static int set_log_file(struct rw_config *cfg, const char *v, bool append, char *why,
			size_t whylen)
{
	return copy_path(cfg->log_file, v, false, why, whylen);
}

static int set_syslog(struct rw_config *cfg, const char *v, bool append, char *why,
		      size_t whylen)
{
	if (parse_bool(v, &cfg->syslog))
		return fail(why, whylen, "'%.32s' is not a boolean (true/false)", v);
	return 0;
}

/* ---- the key table ------------------------------------------------------ */

struct key_def {
	const char *section;
	const char *name;
	value_parser parse;
	bool is_list; /* continuation lines append */
};

static const struct key_def keys[] = {
	{ "general", "mode", set_mode, false },
	{ "general", "realtime", set_realtime, false },
	{ "capture", "interfaces", set_interfaces, true },
	{ "capture", "smtp_ports", set_smtp_ports, true },
	{ "capture", "tls_ports", set_tls_ports, true },
	{ "capture", "ring_size", set_ring_size, false },
	{ "capture", "hold_ms", set_hold, false },
	{ "policy", "protect", set_protect, false },
	{ "policy", "allow", set_allow, false },
	{ "policy", "block", set_block, false },
	{ "parser", "max_flows", set_max_flows, false },
	{ "parser", "max_memory", set_max_memory, false },
	{ "parser", "max_reorder_bytes", set_max_reorder, false },
	{ "enforce", "set_timeout", set_timeout, false },
	{ "enforce", "keep_rules_on_exit", set_keep_rules, false },
	{ "enforce", "flush_interval_ms", set_flush_interval, false },
	{ "enforce", "batch_size", set_batch_size, false },
	{ "enforce", "worker_thread", set_worker_thread, false },
	{ "log", "file", set_log_file, false },
	{ "log", "syslog", set_syslog, false },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static bool section_known(const char *section)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].section, section))
			return true;
	return false;
}

static const struct key_def *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

void config_defaults(struct rw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = RW_MODE_MONITOR;
	cfg->smtp_ports[0] = 25;
	cfg->smtp_ports[1] = 587;
	cfg->n_smtp_ports = 2;
	cfg->tls_ports[0] = 465;
	cfg->n_tls_ports = 1;
	cfg->ring_size = RW_RING_SIZE_DEFAULT;
	cfg->hold_ms = 500;
	cfg->max_flows = 65536;
	cfg->max_memory = 256ull << 20;
	cfg->max_reorder_bytes = 64ull << 10;
	cfg->set_timeout_s = 600;
	cfg->keep_rules_on_exit = false;
	cfg->flush_interval_ms = 2;
	cfg->batch_size = 256;
	cfg->worker_thread = true;
	cfg->realtime = true;
	strcpy(cfg->log_file, "-");
	cfg->syslog = true;
}

const char *config_mode_name(enum rw_mode mode)
{
	return mode == RW_MODE_ENFORCE ? "enforce" : "monitor";
}

/* Sets (or appends to, for list keys) one "section.key" from text. */
static int set_key(struct rw_config *cfg, const char *key, const char *value, bool append,
		   char *err, size_t errlen)
{
	char section[32];
	const char *dot = strchr(key, '.');
	size_t slen = dot ? (size_t)(dot - key) : 0;
	const struct key_def *def = NULL;
	if (dot && slen < sizeof(section)) {
		memcpy(section, key, slen);
		section[slen] = '\0';
		def = find_key(section, dot + 1);
	}
	if (!def) {
		snprintf(err, errlen, "%.64s: unknown configuration key", key);
		return -EINVAL;
	}
	if (append && !def->is_list) {
		snprintf(err, errlen, "%s: not a list", key);
		return -EINVAL;
	}
	struct rw_config tmp = *cfg;
	char why[256];
	const char *bad_key;
	if (def->parse(&tmp, value, append, why, sizeof(why)) ||
	    config_check(&tmp, &bad_key, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", key, why);
		return -EINVAL;
	}
	*cfg = tmp;
	return 0;
}

int config_set(struct rw_config *cfg, const char *key, const char *value, char *err,
	       size_t errlen)
{
	return set_key(cfg, key, value, false, err, errlen);
}

int config_append(struct rw_config *cfg, const char *key, const char *value, char *err,
		  size_t errlen)
{
	return set_key(cfg, key, value, true, err, errlen);
}

/* ---- reading the file --------------------------------------------------- */

struct file_parse {
	const char *path;
	struct rw_config cfg;
	FILE *fp;
	int lineno;             /* line the reader handed out last */
	bool line_indented;     /* that line starts with a blank: a continuation */
	int line_of[N_KEYS];    /* line that set each key, 0: not set (duplicates are errors) */
	char last_name[64];     /* key of the previous handler call (continuations) */
	char last_section[64];
	int err;                /* first error, negative errno */
	int err_line;           /* its line */
	char *msg;
	size_t msglen;
};

static void parse_error(struct file_parse *fp, const char *section, const char *name,
			const char *why)
{
	if (fp->err)
		return; /* the first error is the one to fix */
	fp->err = -EINVAL;
	fp->err_line = fp->lineno;
	if (name)
		snprintf(fp->msg, fp->msglen, "%s:%d: [%.32s] %.64s: %s", fp->path, fp->lineno,
			 section, name, why);
	else
		snprintf(fp->msg, fp->msglen, "%s:%d: %s", fp->path, fp->lineno, why);
}

/* A "[name]" line: checked here, because inih reports sections only
 * through the keys in them. */
static void check_section_line(struct file_parse *fp, const char *line)
{
	const char *p = line + strspn(line, " \t");
	if (*p != '[')
		return;
	const char *end = strchr(p, ']');
	if (!end)
		return; /* inih reports the malformed line */
	char name[64];
	size_t n = (size_t)(end - p - 1);
	if (n >= sizeof(name) || (memcpy(name, p + 1, n), name[n] = '\0', !section_known(name))) {
		char why[128];
		snprintf(why, sizeof(why), "unknown section [%.*s]", (int)(n > 32 ? 32 : n), p + 1);
		parse_error(fp, NULL, NULL, why);
	}
}

/* fgets-style reader for ini_parse_stream: one line per call, counted. */
static char *read_line(char *str, int num, void *stream)
{
	struct file_parse *fp = stream;
	if (!fgets(str, num, fp->fp))
		return NULL;
	fp->lineno++;
	size_t len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(fp->fp)) {
		/* Longer than inih's line buffer: inih would read the rest as
		 * another line. Refuse it and skip to the end of the line. */
		parse_error(fp, NULL, NULL, "line too long");
		int c;
		while ((c = fgetc(fp->fp)) != EOF && c != '\n')
			;
		str[0] = '\0';
		return str;
	}
	fp->line_indented = str[0] == ' ' || str[0] == '\t';
	check_section_line(fp, str);
	return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct file_parse *fp = user;
	const struct key_def *def = find_key(section, name);
	if (!def) {
		parse_error(fp, section, name,
			    *section ? "unknown key" : "key outside of any [section]");
		return 1; /* keep going: inih's own errors still count lines */
	}
	size_t idx = (size_t)(def - keys);
	bool continuation = fp->line_indented && !strcmp(fp->last_name, name) &&
			    !strcmp(fp->last_section, section);
	if (fp->line_of[idx] && !(continuation && def->is_list)) {
		parse_error(fp, section, name, "given twice");
		return 1;
	}
	fp->line_of[idx] = fp->lineno;
	snprintf(fp->last_name, sizeof(fp->last_name), "%s", name);
	snprintf(fp->last_section, sizeof(fp->last_section), "%s", section);
	char why[256];
	/* A list key's first line replaces the default; continuations append. */
	if (def->parse(&fp->cfg, value, continuation, why, sizeof(why)))
		parse_error(fp, section, name, why);
	return 1;
}

/* Cross-key checks, reported at the later of the lines involved. */
static int finish_file(struct file_parse *fp, struct rw_config *out)
{
	const char *bad_key;
	char why[256];
	if (config_check(&fp->cfg, &bad_key, why, sizeof(why))) {
		const struct key_def *smtp = find_key("capture", "smtp_ports");
		const struct key_def *tls = find_key("capture", "tls_ports");
		int a = fp->line_of[smtp - keys], b = fp->line_of[tls - keys];
		fp->lineno = a > b ? a : b;
		parse_error(fp, "capture", a > b ? "smtp_ports" : bad_key, why);
		return fp->err;
	}
	*out = fp->cfg;
	return 0;
}

int config_load(const char *path, struct rw_config *out, char *err, size_t errlen)
{
	struct file_parse fp = { .path = path, .msg = err, .msglen = errlen };
	config_defaults(&fp.cfg);
	fp.fp = fopen(path, "re");
	if (!fp.fp) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	int rc = ini_parse_stream(read_line, &fp, on_key, &fp);
	bool read_failed = ferror(fp.fp);
	fclose(fp.fp);
	if (read_failed) {
		snprintf(err, errlen, "%s: read error", path);
		return -EIO;
	}
	/* inih reports its own syntax errors only at the end: whichever
	 * error comes first in the file is the one to report. */
	if (fp.err && !(rc > 0 && rc < fp.err_line))
		return fp.err;
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: not a [section] or key = value line", path, rc);
		return -EINVAL;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	return finish_file(&fp, out);
	return 0;
}

int config_load_startup(const char *path, struct rw_config *out, const char **used_path,
			char *err, size_t errlen)
{
	struct stat st;
	*used_path = NULL;
	if (!path && stat(CONFIG_DEFAULT_PATH, &st) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (!path) {
		config_defaults(out);
		return 0;
	}
	int rc = config_load(path, out, err, errlen);
	if (!rc)
		*used_path = path;
	return rc;
}
