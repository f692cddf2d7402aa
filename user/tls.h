/*
 * TLS plaintext capture: finds the TLS libraries (OpenSSL libssl.so.3,
 * GnuTLS libgnutls.so.30) and attaches bpf/tls_uprobe.bpf.c to them, for
 * every process on the host.
 *
 * The programs write into the tc program's ring buffer, flows map and
 * counters map: the caller passes those maps' fds, so records from both
 * paths arrive in one ring and nothing extra needs polling. Wiring into
 * `rcptwall run`:
 *
 *     struct tls_probe_opts o = { .ring_fd = ..., .flows_fd = ..., .counters_fd = ...,
 *                                 .lib_paths = tls_libs, .n_lib_paths = n };
 *     err = tls_probes_open(&o, &tp);     after the tc skeleton is loaded
 *     err = tls_probes_attach(tp);        then consume the ring as before
 *     ...
 *     tls_probes_close(tp);               detaches every probe
 *
 * Records: kind RW_REC_DATA, source RW_SRC_TLS, seq = plaintext offset in
 * the flow (map rw_tls_offsets, struct rw_tls_offset), filtered by the
 * flow's tls_phase.
 */
#ifndef RCPTWALL_TLS_H
#define RCPTWALL_TLS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* Libraries attached at most (discovered plus --tls-lib). */
#define TLS_MAX_LIBS 16

/* Which write functions a file defines (a library or a static binary). */
#define TLS_LIB_OPENSSL 0x1 /* SSL_write, SSL_write_ex, SSL_free */
#define TLS_LIB_GNUTLS  0x2 /* gnutls_record_send, gnutls_record_uncork, gnutls_deinit */

struct tls_lib {
	char path[PATH_MAX];
	unsigned kinds;    /* TLS_LIB_* found in its symbols */
	unsigned n_probes; /* uprobes attached on it */
	unsigned write_core; /* TLS_LIB_* whose write probes sit on the function
			      * their write API ends in (OpenSSL's internal write
			      * function, gnutls_record_send2), not on SSL_write /
			      * SSL_write_ex / gnutls_record_send (user/tls.c) */
};

struct tls_probe_opts {
	/* Maps of the tc program to share; -1 keeps this object's own map
	 * (tests, benchmarks). */
	int ring_fd;
	int flows_fd;
	int counters_fd;
	/* Files to attach to (--tls-lib PATH, repeatable): shared libraries or
	 * binaries with a TLS library linked in statically (needs symbols).
	 * NULL / 0: discover libssl.so.3 and libgnutls.so.30 with ldconfig -p. */
	const char *const *lib_paths;
	size_t n_lib_paths;
	/* Keep the write probes on SSL_write / SSL_write_ex / gnutls_record_send
	 * even where the write core was found (tests, bench_uprobe). */
	bool wrappers_only;
};

struct tls_probes;

/* Opens and loads the programs with the given maps. 0 or negative errno. */
int tls_probes_open(const struct tls_probe_opts *opts, struct tls_probes **out);

/*
 * Attaches the syscall hook and the uprobes on every library. A library
 * that cannot be attached is reported on stderr and skipped. Returns the
 * number of libraries attached, or negative errno (-ENOENT: none found).
 */
int tls_probes_attach(struct tls_probes *tp);

/* Libraries found (attached or not), for logs and tests. */
size_t tls_probes_lib_count(const struct tls_probes *tp);
const struct tls_lib *tls_probes_lib(const struct tls_probes *tp, size_t i);

/* The plaintext offsets map (struct rw_tls_offset by flow), for tests. */
int tls_probes_offsets_fd(const struct tls_probes *tp);

/* Detaches, unloads, frees. NULL is fine. */
void tls_probes_close(struct tls_probes *tp);

/*
 * Picks the native libssl.so.3 / libgnutls.so.30 entries from the text of
 * `ldconfig -p`. Writes up to max paths; returns how many, or -E2BIG when
 * a path does not fit PATH_MAX. Pure: unit-testable.
 */
int tls_parse_ldconfig(const char *text, size_t len, char (*paths)[PATH_MAX], size_t max);

/* Runs `ldconfig -p` and parses it. Returns how many paths, or negative errno. */
int tls_discover_libs(char (*paths)[PATH_MAX], size_t max);

/* TLS_LIB_* kinds whose write function `path` defines; negative errno if unreadable. */
int tls_lib_kinds(const char *path);

#endif
