/* Open-addressing multimap with a bitmap prefilter (see match_hash.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "match_hash.h"

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static void filter_set(struct mh_table *t, uint64_t key)
{
	t->filter[mh_filter_word(t, key)] |= mh_filter_mask(key);
}

/* Table at most half full; filter with 16 to 32 bits per key, so about
 * 1 % of negative lookups pass it (256 KiB for 1,000 protected entries). */
static int alloc_arrays(struct mh_table *t, size_t cap)
{
	t->slots = calloc(cap, sizeof(*t->slots));
	t->filter_bits = pow2_at_least(cap * 8);
	t->filter = calloc(t->filter_bits / 64, sizeof(uint64_t));
	if (!t->slots || !t->filter) {
		free(t->slots);
		free(t->filter);
		t->slots = NULL;
		t->filter = NULL;
		return -ENOMEM;
	}
	t->cap = cap;
	t->count = 0;
	return 0;
}

int mh_init(struct mh_table *t, size_t expected)
{
	memset(t, 0, sizeof(*t));
	return alloc_arrays(t, pow2_at_least(expected * 2));
}

void mh_free(struct mh_table *t)
{
	free(t->slots);
	free(t->filter);
	memset(t, 0, sizeof(*t));
}

static void place(struct mh_table *t, uint64_t key, uint32_t value)
{
	size_t pos = key & (t->cap - 1);
	while (t->slots[pos].key != 0)
		pos = (pos + 1) & (t->cap - 1);
	t->slots[pos].key = key;
	t->slots[pos].value = value;
	t->count++;
	filter_set(t, key);
}

static int grow(struct mh_table *t)
{
	struct mh_table bigger;
	memset(&bigger, 0, sizeof(bigger));
	if (alloc_arrays(&bigger, t->cap * 2) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			place(&bigger, t->slots[i].key, t->slots[i].value);
	mh_free(t);
	*t = bigger;
	return 0;
}

int mh_insert(struct mh_table *t, uint64_t key, uint32_t value)
{
	if (key == 0)
		key = 1; /* mh_mix never yields 0; keep raw callers consistent */
	struct mh_iter it;
	uint32_t v;
	for (mh_find(t, key, &it); mh_next(&it, &v);)
		if (v == value)
			return 0;
	if ((t->count + 1) * 2 > t->cap && grow(t) < 0)
		return -ENOMEM;
	place(t, key, value);
	return 0;
}

size_t mh_mem_bytes(const struct mh_table *t)
{
	return t->cap * sizeof(*t->slots) + t->filter_bits / 8;
}
