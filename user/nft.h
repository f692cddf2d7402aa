/*
 * rcptwall's nftables table, driven through libnftables.
 *
 * Table `inet rcptwall` holds one set per address family (flows4, flows6),
 * keyed saddr . sport . daddr . dport, with a timeout and a counter per
 * element, and an output chain that rejects a listed flow with a TCP reset.
 *
 * Commands are written in nft's native syntax, not JSON: every variable
 * part is an address or a port that this file formats itself from a
 * struct rw_flow_key (inet_ntop, %u). The builders take keys, never
 * strings, so nothing a remote party sent (a recipient, a domain) can reach
 * an nft command. (JSON input would need NFT_CTX_OUTPUT_JSON set on the
 * context in libnftables 1.0.6, and buys nothing here.)
 */
#ifndef RCPTWALL_NFT_H
#define RCPTWALL_NFT_H

#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

#define RWNFT_TABLE "rcptwall"       /* family inet */
#define RWNFT_SET4 "flows4"
#define RWNFT_SET6 "flows6"
#define RWNFT_CHAIN "output"
#define RWNFT_CHAIN_BLOCKED "blocked"
/* ct mark bit of connections that started while their 4-tuple was in a set. */
#define RWNFT_CT_FRESH "0x40000000"

/* Upper bound of the text rwnft_build_elements() writes for n keys. */
size_t rwnft_elements_size(size_t n);

/*
 * Writes the commands that (re)create the table: an existing table of the
 * same name (left by a crash or by keep_rules_on_exit) is replaced in the
 * same transaction. Returns the length, or -ENOSPC.
 */
int rwnft_build_table(char *buf, size_t len, uint32_t timeout_s);

/*
 * Writes "add element" commands for the keys, one per family present.
 * Returns the length, -EINVAL if a key has an unknown family (nothing is
 * written then), or -ENOSPC.
 */
int rwnft_build_elements(char *buf, size_t len, const struct rw_flow_key *keys, size_t n);

/* "delete table inet rcptwall" */
int rwnft_build_delete(char *buf, size_t len);

/* A libnftables context with its output and errors captured. */
struct rwnft;

/* json: listings come back as JSON (for tests and tools). NULL on ENOMEM. */
struct rwnft *rwnft_open(int json);
void rwnft_close(struct rwnft *n);

/*
 * Runs commands as one transaction. On failure returns -EIO and copies
 * libnftables' error text into err.
 */
int rwnft_run(struct rwnft *n, const char *cmds, char *err, size_t errlen);

/* Output of the last rwnft_run() (a listing), "" if none. */
const char *rwnft_output(struct rwnft *n);

#endif /* RCPTWALL_NFT_H */
