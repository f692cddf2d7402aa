/* Flow table of the SMTP parser: chained hash + LRU list. */
#include "smtp_table.h"

#include <errno.h>
#include <stdlib.h>

#include "flow.h"

#define TABLE_MIN_BUCKETS 64

int smtp_table_init(struct smtp_table *t)
{
	t->buckets = calloc(TABLE_MIN_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = TABLE_MIN_BUCKETS;
	t->count = 0;
	t->oldest = t->newest = NULL;
	return 0;
}

void smtp_table_destroy(struct smtp_table *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}

struct smtp_flow *smtp_table_find(const struct smtp_table *t, const struct rw_flow_key *key,
				  uint64_t hash)
{
	for (struct smtp_flow *f = t->buckets[hash & (t->nbuckets - 1)]; f; f = f->hnext)
		if (f->hash == hash && flow_key_equal(&f->key, key))
			return f;
	return NULL;
}

/* Doubles the bucket array so chains stay O(1) on average (load <= 1). */
static int grow(struct smtp_table *t)
{
	size_t n = t->nbuckets * 2;
	struct smtp_flow **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct smtp_flow *f = t->buckets[i];
		while (f) {
			struct smtp_flow *next = f->hnext;
			f->hnext = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
			f = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return 0;
}

static void lru_unlink(struct smtp_table *t, struct smtp_flow *f)
{
	if (f->older)
		f->older->newer = f->newer;
	else
		t->oldest = f->newer;
	if (f->newer)
		f->newer->older = f->older;
	else
		t->newest = f->older;
	f->older = f->newer = NULL;
}

static void lru_push_newest(struct smtp_table *t, struct smtp_flow *f)
{
	f->older = t->newest;
	f->newer = NULL;
	if (t->newest)
		t->newest->newer = f;
	else
		t->oldest = f;
	t->newest = f;
}

int smtp_table_insert(struct smtp_table *t, struct smtp_flow *f)
{
	if (t->count + 1 > t->nbuckets) {
		int rc = grow(t);
		if (rc)
			return rc;
	}
	size_t b = f->hash & (t->nbuckets - 1);
	f->hnext = t->buckets[b];
	t->buckets[b] = f;
	t->count++;
	lru_push_newest(t, f);
	return 0;
}

void smtp_table_remove(struct smtp_table *t, struct smtp_flow *f)
{
	struct smtp_flow **pp = &t->buckets[f->hash & (t->nbuckets - 1)];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	lru_unlink(t, f);
	t->count--;
}

void smtp_table_touch(struct smtp_table *t, struct smtp_flow *f)
{
	if (t->newest == f)
		return;
	lru_unlink(t, f);
	lru_push_newest(t, f);
}

size_t smtp_table_mem(const struct smtp_table *t)
{
	return t->nbuckets * sizeof(*t->buckets);
}
