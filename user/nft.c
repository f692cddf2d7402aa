/*
 * nft command text for table inet rcptwall, and a thin libnftables runner.
 *
 * See nft.h for why the commands are native syntax built from flow keys.
 */
#include "nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to buf at *off; -ENOSPC when it does not fit. */
static int emit(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int emit(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return -ENOSPC;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return -ENOSPC;
	*off += (size_t)n;
	return 0;
}

/*
 * The table. Notes on the choices:
 * - "table; delete table; table { ... }" in one transaction replaces a
 *   stale table atomically whether or not one exists.
 * - "counter" in a set declaration gives every element its own counter.
 * - The reject skips RST segments: SOCK_DESTROY makes the kernel send an
 *   RST to the remote server, which must get out so the server's side of
 *   the connection is closed too. The RST rule's counter counts them: one
 *   per blocked flow.
 * - A blocked 4-tuple stays in the set for the timeout, but a later
 *   connection may reuse the same ports (busy relays reuse them within
 *   minutes). Such a connection is a different one, to be judged on its
 *   own: its SYN marks its conntrack entry (bit RWNFT_CT_FRESH of ct mark)
 *   and every packet carrying that mark passes. The blocked connection
 *   itself started before its tuple was in the set, so it never has the
 *   mark. This uses conntrack, which the ct expressions load.
 * - priority filter - 10: before the usual filter chains, so a blocked
 *   flow is refused even if a later chain would accept it.
 */
int rwnft_build_table(char *buf, size_t len, uint32_t timeout_s)
{
	size_t off = 0;
	int err = emit(buf, len, &off,
		       "add table inet " RWNFT_TABLE "\n"
		       "delete table inet " RWNFT_TABLE "\n"
		       "table inet " RWNFT_TABLE " {\n");
	static const struct {
		const char *name, *addr_type;
	} sets[] = { { RWNFT_SET4, "ipv4_addr" }, { RWNFT_SET6, "ipv6_addr" } };
	for (size_t i = 0; i < 2 && !err; i++)
		err = emit(buf, len, &off,
			   "\tset %s {\n"
			   "\t\ttype %s . inet_service . %s . inet_service\n"
			   "\t\tflags timeout\n"
			   "\t\ttimeout %us\n"
			   "\t\tcounter\n"
			   "\t}\n",
			   sets[i].name, sets[i].addr_type, sets[i].addr_type, timeout_s);
	if (!err)
		err = emit(buf, len, &off,
			   "\tchain " RWNFT_CHAIN_BLOCKED " {\n"
			   "\t\ttcp flags & (syn | ack) == syn ct state new"
			   " ct mark set ct mark | " RWNFT_CT_FRESH " return\n"
			   "\t\tct mark & " RWNFT_CT_FRESH " == " RWNFT_CT_FRESH " return\n"
			   "\t\ttcp flags & rst == rst counter return\n"
			   "\t\tcounter reject with tcp reset\n"
			   "\t}\n"
			   "\tchain " RWNFT_CHAIN " {\n"
			   "\t\ttype filter hook output priority filter - 10; policy accept;\n"
			   "\t\tmeta nfproto ipv4 meta l4proto tcp"
			   " ip saddr . tcp sport . ip daddr . tcp dport @" RWNFT_SET4
			   " jump " RWNFT_CHAIN_BLOCKED "\n"
			   "\t\tmeta nfproto ipv6 meta l4proto tcp"
			   " ip6 saddr . tcp sport . ip6 daddr . tcp dport @" RWNFT_SET6
			   " jump " RWNFT_CHAIN_BLOCKED "\n"
			   "\t}\n"
			   "}\n");
	return err ? err : (int)off;
}

int rwnft_build_delete(char *buf, size_t len)
{
	size_t off = 0;
	int err = emit(buf, len, &off, "delete table inet " RWNFT_TABLE "\n");
	return err ? err : (int)off;
}

/* "a . p . b . q": 2 addresses (INET6_ADDRSTRLEN each), 2 ports, separators. */
#define ELEM_MAX (2 * INET6_ADDRSTRLEN + 2 * 5 + 3 * 3 + 2)
#define FAMILY_HEADER_MAX 64

size_t rwnft_elements_size(size_t n)
{
	return n * ELEM_MAX + 2 * FAMILY_HEADER_MAX + 1;
}

/* One element, from the key's bytes only. */
static int emit_element(char *buf, size_t len, size_t *off, const struct rw_flow_key *k,
			bool first)
{
	int af = k->family == RW_AF_INET6 ? AF_INET6 : AF_INET;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	if (!inet_ntop(af, k->saddr, s, sizeof(s)) || !inet_ntop(af, k->daddr, d, sizeof(d)))
		return -EINVAL;
	return emit(buf, len, off, "%s%s . %u . %s . %u", first ? "" : ", ", s,
		    (unsigned)k->sport, d, (unsigned)k->dport);
}

static int emit_family(char *buf, size_t len, size_t *off, const struct rw_flow_key *keys,
		       size_t n, uint8_t family, const char *set)
{
	bool first = true;
	int err = 0;
	for (size_t i = 0; i < n && !err; i++) {
		if (keys[i].family != family)
			continue;
		if (first)
			err = emit(buf, len, off, "add element inet " RWNFT_TABLE " %s { ", set);
		if (!err)
			err = emit_element(buf, len, off, &keys[i], first);
		first = false;
	}
	if (!err && !first)
		err = emit(buf, len, off, " }\n");
	return err;
}

int rwnft_build_elements(char *buf, size_t len, const struct rw_flow_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].family != RW_AF_INET && keys[i].family != RW_AF_INET6)
			return -EINVAL;
	size_t off = 0;
	if (len)
		buf[0] = '\0';
	int err = emit_family(buf, len, &off, keys, n, RW_AF_INET, RWNFT_SET4);
	if (!err)
		err = emit_family(buf, len, &off, keys, n, RW_AF_INET6, RWNFT_SET6);
	return err ? err : (int)off;
}

/* ---- libnftables ---------------------------------------------------------- */

struct rwnft {
	struct nft_ctx *ctx;
};

struct rwnft *rwnft_open(int json)
{
	struct rwnft *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!n->ctx) {
		free(n);
		return NULL;
	}
	/* Captured, not printed: the caller reports errors with context. */
	if (nft_ctx_buffer_output(n->ctx) || nft_ctx_buffer_error(n->ctx)) {
		rwnft_close(n);
		return NULL;
	}
	if (json)
		nft_ctx_output_set_flags(n->ctx, nft_ctx_output_get_flags(n->ctx) |
							 NFT_CTX_OUTPUT_JSON);
	return n;
}

void rwnft_close(struct rwnft *n)
{
	if (!n)
		return;
	nft_ctx_free(n->ctx);
	free(n);
}

/* libnftables' messages span lines; one line reads better in a log. */
static void copy_oneline(char *dst, size_t len, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src && src[i] && j + 1 < len; i++) {
		char c = src[i];
		if (c == '\n' && !src[i + 1])
			break;
		dst[j++] = (c == '\n' || c == '\t') ? ' ' : c;
	}
	if (len)
		dst[j] = '\0';
}

int rwnft_run(struct rwnft *n, const char *cmds, char *err, size_t errlen)
{
	/* Reading a buffer rewinds it: drop what earlier runs left. */
	nft_ctx_get_output_buffer(n->ctx);
	nft_ctx_get_error_buffer(n->ctx);
	if (nft_run_cmd_from_buffer(n->ctx, cmds) == 0)
		return 0;
	const char *msg = nft_ctx_get_error_buffer(n->ctx);
	copy_oneline(err, errlen, msg && *msg ? msg : "libnftables failed");
	return -EIO;
}

const char *rwnft_output(struct rwnft *n)
{
	const char *out = nft_ctx_get_output_buffer(n->ctx);
	return out ? out : "";
}
