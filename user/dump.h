/*
 * Text form of ring records for `rcptwall run --dump` and --verbose: one
 * line per record, client bytes escaped so that nothing a client sends
 * (control bytes, escape sequences, invalid UTF-8) reaches the terminal raw.
 */
#ifndef RCPTWALL_DUMP_H
#define RCPTWALL_DUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rcptwall/rcptwall.h"

/*
 * Escapes bytes as printable ASCII: \r \n \t \\ and \xHH for everything
 * outside 0x20..0x7e. Always NUL-terminates (if outlen > 0); returns the
 * length the full escape needs (like snprintf), so >= outlen means cut.
 */
size_t dump_escape(const uint8_t *data, size_t len, char *out, size_t outlen);

/* "198.51.100.1:40000 -> 198.51.100.2:25 C: EHLO x\r\n" (data),
 * "... flow start seq=N", "... flow end FIN". */
void dump_record(FILE *out, const struct rw_record_hdr *hdr, const uint8_t *data);

/* Same line prefixed with the header fields (seq, len, flags, phase, pid, ts). */
void dump_record_verbose(FILE *out, const struct rw_record_hdr *hdr, const uint8_t *data);

#endif /* RCPTWALL_DUMP_H */
