/*
 * Sequence-number reassembly. The hold list is a sorted singly linked list:
 * it only grows when segments arrive out of order, which the per-flow cap
 * keeps short, so a list beats a tree here.
 */
#include "reasm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reasm_held {
	struct reasm_held *next;
	struct reasm_piece piece;
	uint8_t data[];
};

void reasm_init(struct reasm *r, uint32_t next)
{
	memset(r, 0, sizeof(*r));
	r->next = next;
	r->started = true;
}

enum reasm_fit reasm_fit(const struct reasm *r, struct reasm_piece *p)
{
	uint32_t start = reasm_start(p);
	int32_t ahead = reasm_diff(start, r->next);
	if (ahead > 0)
		return REASM_AHEAD;
	if (ahead == 0)
		return REASM_NEXT;
	/* Starts before next: drop what we already have, skipped part first. */
	int32_t end_ahead = reasm_diff(p->seq + p->len, r->next);
	if (end_ahead <= 0)
		return REASM_OLD;
	int32_t data_ahead = reasm_diff(p->seq, r->next);
	if (data_ahead >= 0) {
		p->skipped = (uint32_t)data_ahead;
	} else {
		uint32_t cut = (uint32_t)(-(int64_t)data_ahead);
		p->data += cut;
		p->len -= cut;
		p->seq += cut;
		p->skipped = 0;
	}
	return REASM_NEXT;
}

size_t reasm_node_cost(uint32_t len)
{
	return sizeof(struct reasm_held) + len;
}

long reasm_hold(struct reasm *r, const struct reasm_piece *p)
{
	struct reasm_held *h = malloc(reasm_node_cost(p->len));
	if (!h)
		return -ENOMEM;
	h->piece = *p;
	if (p->len)
		memcpy(h->data, p->data, p->len);
	h->piece.data = h->data;

	/* Sorted insert by start; equal starts keep arrival order. */
	uint32_t start = reasm_start(p);
	struct reasm_held **pp = &r->held;
	while (*pp && reasm_diff(reasm_start(&(*pp)->piece), start) <= 0)
		pp = &(*pp)->next;
	h->next = *pp;
	*pp = h;
	r->held_bytes += p->len;
	r->held_nodes++;
	return (long)reasm_node_cost(p->len);
}

bool reasm_first_start(const struct reasm *r, uint32_t *start)
{
	if (!r->held)
		return false;
	*start = reasm_start(&r->held->piece);
	return true;
}

struct reasm_held *reasm_pop(struct reasm *r, struct reasm_piece *p)
{
	struct reasm_held *h = r->held;
	if (!h)
		return NULL;
	r->held = h->next;
	r->held_bytes -= h->piece.len;
	r->held_nodes--;
	*p = h->piece;
	return h;
}

size_t reasm_release(struct reasm_held *h)
{
	size_t cost = reasm_node_cost(h->piece.len);
	free(h);
	return cost;
}

size_t reasm_clear(struct reasm *r)
{
	size_t freed = 0;
	struct reasm_piece p;
	struct reasm_held *h;
	while ((h = reasm_pop(r, &p)))
		freed += reasm_release(h);
	return freed;
}
