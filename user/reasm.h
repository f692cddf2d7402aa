/*
 * TCP-style reassembly of one byte stream by 32-bit sequence number:
 * trimming of duplicates and overlaps, and a bounded, sorted hold list for
 * segments that arrive ahead of the next expected byte. Sequence numbers
 * compare with serial arithmetic (RFC 1982), so wraparound is transparent.
 *
 * A segment here is [seq - skipped, seq + len): the first `skipped` bytes
 * are known to exist but were not carried (kernel body tails, see
 * rcptwall.h), the rest is data. Internal to the SMTP parser.
 */
#ifndef RCPTWALL_REASM_H
#define RCPTWALL_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reasm_piece {
	uint32_t seq;      /* seq of data[0] */
	uint32_t skipped;  /* uncarried bytes right before seq */
	const uint8_t *data;
	uint32_t len;
	uint64_t ts_ns;
};

struct reasm_held; /* opaque list node */

struct reasm {
	uint32_t next;            /* next expected sequence number */
	bool started;
	struct reasm_held *held;  /* sorted by start, ascending */
	size_t held_bytes;        /* data bytes held */
	size_t held_nodes;
};

enum reasm_fit {
	REASM_OLD,    /* entirely before next: duplicate or retransmission */
	REASM_NEXT,   /* trimmed so that seq - skipped == next */
	REASM_AHEAD,  /* starts after next */
};

static inline int32_t reasm_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline uint32_t reasm_start(const struct reasm_piece *p)
{
	return p->seq - p->skipped;
}

void reasm_init(struct reasm *r, uint32_t next);
/* Trims *p against r->next (overlap removal) and says where it lies. */
enum reasm_fit reasm_fit(const struct reasm *r, struct reasm_piece *p);
/* Copies p into the hold list; returns bytes allocated, or -ENOMEM. */
long reasm_hold(struct reasm *r, const struct reasm_piece *p);
/* Start of the first held piece; false if none. */
bool reasm_first_start(const struct reasm *r, uint32_t *start);
/*
 * Detaches the first held piece into *p (data points into the node, valid
 * until reasm_release). Returns the node, or NULL if nothing is held.
 */
struct reasm_held *reasm_pop(struct reasm *r, struct reasm_piece *p);
/* Frees a popped node; returns the bytes it used. */
size_t reasm_release(struct reasm_held *h);
/* Frees everything held; returns the bytes released. */
size_t reasm_clear(struct reasm *r);
/* Heap bytes a held piece of len data bytes costs (for memory accounting). */
size_t reasm_node_cost(uint32_t len);

#endif
