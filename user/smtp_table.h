/*
 * The SMTP parser's flow table: O(1) lookup by flow key (chained hash on
 * flow_key_hash, grown by doubling) and an LRU list so the least recently
 * fed flow can be evicted first. Internal to the SMTP parser; it owns no
 * per-stream state, only the entries' links.
 */
#ifndef RCPTWALL_SMTP_TABLE_H
#define RCPTWALL_SMTP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

struct smtp_stream;

struct smtp_flow {
	struct rw_flow_key key;
	uint64_t hash;
	struct smtp_flow *hnext;          /* bucket chain */
	struct smtp_flow *older, *newer;  /* LRU list */
	struct smtp_stream *streams[2];   /* [0] RW_SRC_TC, [1] RW_SRC_TLS; NULL until fed */
	bool end_pending;                 /* flow_end asked for from inside a callback */
};

struct smtp_table {
	struct smtp_flow **buckets;
	size_t nbuckets;   /* power of two */
	size_t count;
	struct smtp_flow *oldest, *newest;
};

int smtp_table_init(struct smtp_table *t);
/* Frees the bucket array only; entries belong to the caller. */
void smtp_table_destroy(struct smtp_table *t);
struct smtp_flow *smtp_table_find(const struct smtp_table *t, const struct rw_flow_key *key,
				  uint64_t hash);
/* Links f (key and hash set) as the newest entry. 0 or -ENOMEM (table growth). */
int smtp_table_insert(struct smtp_table *t, struct smtp_flow *f);
void smtp_table_remove(struct smtp_table *t, struct smtp_flow *f);
/* Marks f as the most recently used. */
void smtp_table_touch(struct smtp_table *t, struct smtp_flow *f);
size_t smtp_table_mem(const struct smtp_table *t);

#endif
