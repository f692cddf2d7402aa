/*
 * Destroying a TCP socket by its 4-tuple: the sock_diag SOCK_DESTROY
 * request that `ss -K` sends (needs CONFIG_INET_DIAG_DESTROY and
 * CAP_NET_ADMIN).
 *
 * The kernel aborts the socket (tcp_abort): a process blocked in recv() or
 * send() on it gets ECONNABORTED at once, and an RST goes to the peer.
 */
#ifndef RCPTWALL_SOCKDESTROY_H
#define RCPTWALL_SOCKDESTROY_H

#include <stddef.h>
#include <stdint.h>

#include "rcptwall/rcptwall.h"

/* Bytes of one request (netlink header + struct inet_diag_req_v2). */
size_t sockdestroy_request_size(void);

/*
 * Writes the request for the flow (saddr:sport is the local end) into buf.
 * Returns its length, -EINVAL for an unknown family, -ENOSPC if buf is short.
 */
int sockdestroy_build_request(const struct rw_flow_key *k, uint32_t seq, void *buf, size_t len);

struct sockdestroy;

/* Opens the NETLINK_SOCK_DIAG socket. 0 or negative errno. */
int sockdestroy_open(struct sockdestroy **out);
void sockdestroy_close(struct sockdestroy *sd);

/*
 * Destroys the socket of the flow. 0 when done, -ENOENT when no such
 * socket exists (already closed), other negative errno on failure
 * (-EOPNOTSUPP: kernel without CONFIG_INET_DIAG_DESTROY, -EPERM: no
 * CAP_NET_ADMIN).
 */
int sockdestroy_flow(struct sockdestroy *sd, const struct rw_flow_key *k);

#endif /* RCPTWALL_SOCKDESTROY_H */
