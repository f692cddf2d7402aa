/*
 * libFuzzer target: arbitrary bytes as a ring sample. Validation must
 * reject every inconsistent record, and whatever passes must print
 * (--verbose form) without reading past the sample.
 */
#include <stdint.h>
#include <stdio.h>

#include "capture.h"
#include "dump.h"

static int print_it(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	dump_record_verbose(ctx, hdr, data);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (!sink)
		sink = fopen("/dev/null", "w");
	if (!sink)
		return 0;
	struct capture c = { .on_record = print_it, .ctx = sink };
	capture_dispatch(&c, data, size);
	return 0;
}
