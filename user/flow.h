/* Helpers for struct rw_flow_key shared by every user-space part. */
#ifndef RCPTWALL_FLOW_H
#define RCPTWALL_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

/* "198.51.100.1" or "2001:db8:25::1": enough for either family. */
#define FLOW_ADDR_STRLEN 46
/* "[2001:db8:25::1]:54321 -> [2001:db8:25::2]:25" */
#define FLOW_STRLEN (2 * (FLOW_ADDR_STRLEN + 8) + 8)

bool flow_key_equal(const struct rw_flow_key *a, const struct rw_flow_key *b);
uint64_t flow_key_hash(const struct rw_flow_key *k);

/* Formats the source or destination address; returns buf. */
const char *flow_addr_str(const struct rw_flow_key *k, bool source, char *buf, size_t len);
/* "addr:port -> addr:port", IPv6 in brackets; returns buf. */
const char *flow_key_str(const struct rw_flow_key *k, char *buf, size_t len);

/* Builds a key from text addresses (for tests and tools). 0 or -EINVAL. */
int flow_key_from_strings(struct rw_flow_key *k, const char *saddr, uint16_t sport,
			  const char *daddr, uint16_t dport);

#endif
