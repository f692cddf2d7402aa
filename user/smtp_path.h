/*
 * MAIL FROM / RCPT TO argument parsing (RFC 5321 4.1.2, RFC 6531) and the
 * byte escaping used in anomaly details. Internal to the SMTP parser.
 */
#ifndef RCPTWALL_SMTP_PATH_H
#define RCPTWALL_SMTP_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "smtp.h"

enum smtp_path_result {
	SMTP_PATH_OK = 0,
	SMTP_PATH_EMPTY,        /* nothing after the colon */
	SMTP_PATH_UNTERMINATED, /* '<' without its '>', or an open quote */
	SMTP_PATH_BAD_ROUTE,    /* '<@...' without the ':' that ends a source route */
	SMTP_PATH_BAD_LOCAL,    /* empty local part before '@' */
	SMTP_PATH_BAD_DOMAIN,   /* '@' with no domain, or '[' without ']' */
	SMTP_PATH_NULL_RCPT,    /* <> where a forward path is needed */
};

/*
 * Parses the argument after "FROM:" or "TO:" (arg need not be
 * NUL-terminated; len <= SMTP_LINE_MAX). allow_null: <> is valid (MAIL).
 * Fills *out completely, also on error (empty strings).
 */
enum smtp_path_result smtp_path_parse(const uint8_t *arg, size_t len, bool allow_null,
				      struct smtp_mailbox *out);
const char *smtp_path_result_str(enum smtp_path_result r);

/* Writes src as printable ASCII (\xNN, \r, \n, \\) into dst, truncating with "...". */
void smtp_escape(const uint8_t *src, size_t len, char *dst, size_t dstlen);

#endif
