/*
 * Capture: consumes the BPF ring buffer and hands every valid record to a
 * callback. The kernel side is trusted no more than the wire: a record
 * whose size, length, kind or source does not add up is counted and
 * dropped, never passed on.
 */
#ifndef RCPTWALL_CAPTURE_H
#define RCPTWALL_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

/*
 * Called for each valid record; data has hdr->len bytes. A non-zero return
 * stops the current poll and is returned by capture_poll().
 */
typedef int (*capture_record_fn)(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx);

struct capture_stats {
	uint64_t records; /* valid records delivered */
	uint64_t bytes;   /* payload bytes delivered */
	uint64_t invalid; /* records rejected by capture_validate() */
};

struct ring_buffer;

struct capture {
	struct ring_buffer *rb;
	capture_record_fn on_record;
	void *ctx;
	struct capture_stats stats;
};

/*
 * Checks one raw ring sample. On success copies the header into *hdr (the
 * sample needs no particular alignment) and returns 0; -EBADMSG otherwise.
 */
int capture_validate(const void *sample, size_t size, struct rw_record_hdr *hdr);

/* Feeds one raw sample through validation and the callback (the ring's
 * sample function; exposed so tests and fuzzers can drive it). */
int capture_dispatch(struct capture *c, const void *sample, size_t size);

int capture_open(struct capture *c, int ring_fd, capture_record_fn on_record, void *ctx);
void capture_close(struct capture *c);

/*
 * Waits up to timeout_ms for records and consumes what is there. Returns
 * the number consumed, 0 on timeout or when a signal interrupted the wait
 * (the caller checks its stop flag), or a negative errno / callback result.
 */
int capture_poll(struct capture *c, int timeout_ms);

/* Consumes what is in the ring without waiting (same returns). */
int capture_consume(struct capture *c);

#endif /* RCPTWALL_CAPTURE_H */
