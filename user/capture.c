/* Ring buffer consumer with record validation (see capture.h). */
#include "capture.h"

#include <errno.h>
#include <string.h>

#include <bpf/libbpf.h>

static bool kind_known(uint8_t kind)
{
	return kind == RW_REC_DATA || kind == RW_REC_FLOW_START || kind == RW_REC_FLOW_END;
}

static bool source_known(uint8_t source)
{
	return source == RW_SRC_TC || source == RW_SRC_TLS;
}

int capture_validate(const void *sample, size_t size, struct rw_record_hdr *hdr)
{
	if (!sample || size < sizeof(*hdr))
		return -EBADMSG;
	memcpy(hdr, sample, sizeof(*hdr));
	if (hdr->len > RW_MAX_PAYLOAD || hdr->len != size - sizeof(*hdr))
		return -EBADMSG;
	if (!kind_known(hdr->kind) || !source_known(hdr->source))
		return -EBADMSG;
	if (hdr->phase > RW_PHASE_OPAQUE)
		return -EBADMSG;
	if (hdr->flow.family != RW_AF_INET && hdr->flow.family != RW_AF_INET6)
		return -EBADMSG;
	/* Flow start/end markers carry no bytes. */
	if (hdr->kind != RW_REC_DATA && hdr->len != 0)
		return -EBADMSG;
	return 0;
}

int capture_dispatch(struct capture *c, const void *sample, size_t size)
{
	struct rw_record_hdr hdr;
	if (capture_validate(sample, size, &hdr)) {
		c->stats.invalid++;
		return 0; /* counted; keep consuming */
	}
	c->stats.records++;
	c->stats.bytes += hdr.len;
	if (!c->on_record)
		return 0;
	return c->on_record(&hdr, (const uint8_t *)sample + sizeof(hdr), c->ctx);
}

static int ring_sample(void *ctx, void *data, size_t size)
{
	return capture_dispatch(ctx, data, size);
}

int capture_open(struct capture *c, int ring_fd, capture_record_fn on_record, void *ctx)
{
	memset(c, 0, sizeof(*c));
	c->on_record = on_record;
	c->ctx = ctx;
	c->rb = ring_buffer__new(ring_fd, ring_sample, c, NULL);
	if (!c->rb)
		return -errno;
	return 0;
}

void capture_close(struct capture *c)
{
	ring_buffer__free(c->rb);
	c->rb = NULL;
}

int capture_poll(struct capture *c, int timeout_ms)
{
	int rc = ring_buffer__poll(c->rb, timeout_ms);
	return rc == -EINTR ? 0 : rc;
}

int capture_consume(struct capture *c)
{
	int rc = ring_buffer__consume(c->rb);
	return rc == -EINTR ? 0 : rc;
}
