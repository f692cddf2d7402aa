/* Flow key comparison, hashing and formatting. */
#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

bool flow_key_equal(const struct rw_flow_key *a, const struct rw_flow_key *b)
{
	return a->family == b->family && a->sport == b->sport && a->dport == b->dport &&
	       !memcmp(a->saddr, b->saddr, sizeof(a->saddr)) &&
	       !memcmp(a->daddr, b->daddr, sizeof(a->daddr));
}

/* FNV-1a over the meaningful fields: the key has padding we must not hash. */
uint64_t flow_key_hash(const struct rw_flow_key *k)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint8_t *parts[] = { &k->family, (const uint8_t *)&k->sport,
				   (const uint8_t *)&k->dport, k->saddr, k->daddr };
	const size_t sizes[] = { 1, 2, 2, 16, 16 };
	for (size_t p = 0; p < 5; p++)
		for (size_t i = 0; i < sizes[p]; i++)
			h = (h ^ parts[p][i]) * 0x100000001b3ull;
	return h;
}

const char *flow_addr_str(const struct rw_flow_key *k, bool source, char *buf, size_t len)
{
	const void *addr = source ? k->saddr : k->daddr;
	int af = k->family == RW_AF_INET6 ? AF_INET6 : AF_INET;
	if (!inet_ntop(af, addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

const char *flow_key_str(const struct rw_flow_key *k, char *buf, size_t len)
{
	char s[FLOW_ADDR_STRLEN], d[FLOW_ADDR_STRLEN];
	flow_addr_str(k, true, s, sizeof(s));
	flow_addr_str(k, false, d, sizeof(d));
	if (k->family == RW_AF_INET6)
		snprintf(buf, len, "[%s]:%u -> [%s]:%u", s, k->sport, d, k->dport);
	else
		snprintf(buf, len, "%s:%u -> %s:%u", s, k->sport, d, k->dport);
	return buf;
}

int flow_key_from_strings(struct rw_flow_key *k, const char *saddr, uint16_t sport,
			  const char *daddr, uint16_t dport)
{
	memset(k, 0, sizeof(*k));
	int af = strchr(saddr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, saddr, k->saddr) != 1 || inet_pton(af, daddr, k->daddr) != 1)
		return -EINVAL;
	k->family = af == AF_INET6 ? RW_AF_INET6 : RW_AF_INET;
	k->sport = sport;
	k->dport = dport;
	return 0;
}
