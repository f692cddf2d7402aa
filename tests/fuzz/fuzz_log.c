/*
 * libFuzzer target: arbitrary bytes as wire strings in a log event. Every
 * line written must be one line of valid JSON that jansson reads back,
 * whatever the bytes (control bytes, invalid UTF-8, very long input).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Two strings: the input split at its first NUL (C strings end there). */
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	size_t first = strlen(s);
	const char *second = first < size ? s + first + 1 : "";

	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	struct rw_log_opts o = { .stream = mem };
	struct rw_log *lg;
	char err[128];
	if (!mem || log_open(&o, &lg, err, sizeof(err))) {
		if (mem)
			fclose(mem);
		free(buf);
		free(s);
		return 0;
	}
	struct rw_flow_key k = { .family = RW_AF_INET, .sport = 1, .dport = 25 };
	struct match_verdict v = { .result = MATCH_FLAG, .detector = "omission", .distance = 1 };
	snprintf(v.domain, sizeof(v.domain), "%s", second);
	struct log_recipient r = { &k, s, second, &v };
	log_rcpt(lg, &r);
	log_anomaly(lg, &k, "fuzz", s);
	log_close(lg);
	fclose(mem);

	/* Two events, two lines, each valid JSON. */
	size_t lines = 0;
	for (char *line = buf, *nl; line && (nl = memchr(line, '\n', len - (size_t)(line - buf)));
	     line = nl + 1) {
		json_error_t jerr;
		json_t *ev = json_loadb(line, (size_t)(nl - line), 0, &jerr);
		if (!ev)
			abort();
		json_decref(ev);
		lines++;
	}
	if (lines != 2)
		abort();
	free(buf);
	free(s);
	return 0;
}
