/*
 * The matcher's index: one open-addressing hash multimap from 64-bit keys
 * to 32-bit values, with a small Bloom filter in front so that the common
 * negative lookup reads one word of it instead of a slot of the table.
 *
 * Keys are hashes of strings (a fold, a label with one character deleted,
 * ...) mixed with a tag that says which index they belong to. Two strings
 * may collide: every hit is a candidate that the caller verifies against
 * the real strings, so a collision costs time, never a wrong verdict.
 *
 * Built once, then read-only: lookups are safe from any number of threads.
 */
#ifndef RCPTWALL_MATCH_HASH_H
#define RCPTWALL_MATCH_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_slot {
	uint64_t key; /* 0 = empty */
	uint32_t value;
	uint32_t pad;
};

struct mh_table {
	struct mh_slot *slots;
	size_t cap;      /* power of two */
	size_t count;
	uint64_t *filter;   /* blocked Bloom filter, see mh_maybe() */
	size_t filter_bits; /* power of two, >= 64 */
};

int mh_init(struct mh_table *t, size_t expected);
void mh_free(struct mh_table *t);
/* Adds (key, value) unless that exact pair is present. Grows as needed. */
int mh_insert(struct mh_table *t, uint64_t key, uint32_t value);
size_t mh_mem_bytes(const struct mh_table *t);

/* Iterates over the values stored under key:
 *   struct mh_iter it; uint32_t v;
 *   for (mh_find(t, key, &it); mh_next(&it, &v);) ... */
struct mh_iter {
	const struct mh_table *t;
	uint64_t key;
	size_t pos;
	bool done;
};

static inline uint64_t mh_mix(uint64_t x)
{
	/* splitmix64 finaliser: spreads polynomial hashes over all bits */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x ? x : 1; /* 0 marks an empty slot */
}

/*
 * The filter is a blocked Bloom filter: one 64-bit word per key, three bits
 * in it. One memory read per lookup, and about 1 % false positives at 16
 * bits per key (one bit per key let 10 % through, each a cache miss in the
 * table).
 */
static inline uint64_t mh_filter_mask(uint64_t key)
{
	return (1ULL << (key >> 58)) | (1ULL << ((key >> 52) & 63)) | (1ULL << ((key >> 46) & 63));
}

static inline size_t mh_filter_word(const struct mh_table *t, uint64_t key)
{
	return (key >> 20) & (t->filter_bits / 64 - 1);
}

/* mh_maybe() with the filter and its word mask (filter_bits / 64 - 1)
 * held by the caller: a loop that stores 64-bit keys would otherwise make
 * the compiler reload both after every store (they might alias). */
static inline bool mh_maybe_in(const uint64_t *filter, size_t word_mask, uint64_t key)
{
	uint64_t mask = mh_filter_mask(key);
	return (filter[(key >> 20) & word_mask] & mask) == mask;
}

/* May key be in the table? (the filter alone: false means surely not) */
static inline bool mh_maybe(const struct mh_table *t, uint64_t key)
{
	return mh_maybe_in(t->filter, t->filter_bits / 64 - 1, key);
}

static inline void mh_find(const struct mh_table *t, uint64_t key, struct mh_iter *it)
{
	it->t = t;
	it->key = key;
	it->pos = key & (t->cap - 1);
	it->done = !mh_maybe(t, key);
}

static inline bool mh_next(struct mh_iter *it, uint32_t *value)
{
	if (it->done)
		return false;
	const struct mh_table *t = it->t;
	for (;;) {
		const struct mh_slot *s = &t->slots[it->pos];
		if (s->key == 0) {
			it->done = true;
			return false;
		}
		it->pos = (it->pos + 1) & (t->cap - 1);
		if (s->key == it->key) {
			*value = s->value;
			return true;
		}
	}
}

/* Polynomial string hash mod 2^64 (not mixed): lets the matcher compute the
 * hash of a string with one or two characters deleted in O(1) from prefix
 * hashes. MH_BASE is odd so powers never reach 0. */
#define MH_BASE 0x100000001b3ULL

#define MH_BASE2 (MH_BASE * MH_BASE)
#define MH_BASE3 (MH_BASE2 * MH_BASE)
#define MH_BASE4 (MH_BASE2 * MH_BASE2)

/* Four characters per step, h = h B^4 + (c0 B^3 + c1 B^2 + c2 B + c3): the
 * same value as one at a time, but the chain of dependent multiplies (the
 * cost of this function) is a quarter as long. */
static inline uint64_t mh_poly(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint64_t h = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4)
		h = h * MH_BASE4 + (u[i] + 1ULL) * MH_BASE3 + (u[i + 1] + 1ULL) * MH_BASE2 +
		    (u[i + 2] + 1ULL) * MH_BASE + (u[i + 3] + 1ULL);
	for (; i < n; i++)
		h = h * MH_BASE + u[i] + 1;
	return h;
}

/* The key of a string hash h of length n in index tag, scoped by scope
 * (the hash of a public suffix, or 0 for none). One multiply and a shift:
 * this runs about a hundred times per recipient, so it must be cheap; the
 * xor-shift brings the well-mixed high bits down to the slot index. */
static inline uint64_t mh_key_salt(size_t n, unsigned tag, uint64_t scope)
{
	return (scope * 0xc2b2ae3d27d4eb4fULL) ^ ((uint64_t)n << 56) ^ ((uint64_t)tag << 48);
}

/* mh_key() with the part that does not depend on h computed once
 * (mh_key_salt), for loops over many strings of one length. */
static inline uint64_t mh_key_salted(uint64_t h, uint64_t salt)
{
	uint64_t x = (h ^ salt) * 0x9e3779b97f4a7c15ULL;
	x ^= x >> 29;
	return x ? x : 1; /* 0 marks an empty slot */
}

static inline uint64_t mh_key(uint64_t h, size_t n, unsigned tag, uint64_t scope)
{
	return mh_key_salted(h, mh_key_salt(n, tag, scope));
}

#endif
