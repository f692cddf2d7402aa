/*
 * SOCK_DESTROY over NETLINK_SOCK_DIAG.
 *
 * The kernel finds the socket with an exact lookup (inet_diag_find_one_icsk):
 * idiag_src/sport is the local end, idiag_dst/dport the remote one, ports
 * and addresses in network byte order, no interface, and the cookie set to
 * INET_DIAG_NOCOOKIE because we know the tuple, not the socket's cookie.
 * One request, one acknowledgement (NLMSG_ERROR, error 0 on success).
 */
#include "sockdestroy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct destroy_msg {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 req;
};

struct sockdestroy {
	int fd;
	uint32_t seq;
};

size_t sockdestroy_request_size(void)
{
	return sizeof(struct destroy_msg);
}

int sockdestroy_build_request(const struct rw_flow_key *k, uint32_t seq, void *buf, size_t len)
{
	if (len < sizeof(struct destroy_msg))
		return -ENOSPC;
	if (k->family != RW_AF_INET && k->family != RW_AF_INET6)
		return -EINVAL;
	struct destroy_msg m;
	memset(&m, 0, sizeof(m));
	m.nlh.nlmsg_len = sizeof(m);
	m.nlh.nlmsg_type = SOCK_DESTROY;
	m.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	m.nlh.nlmsg_seq = seq;
	m.req.sdiag_family = k->family == RW_AF_INET6 ? AF_INET6 : AF_INET;
	m.req.sdiag_protocol = IPPROTO_TCP;
	m.req.idiag_states = ~0u; /* any state: the exact tuple is what selects */
	m.req.id.idiag_sport = htons(k->sport);
	m.req.id.idiag_dport = htons(k->dport);
	size_t alen = k->family == RW_AF_INET6 ? 16 : 4;
	memcpy(m.req.id.idiag_src, k->saddr, alen);
	memcpy(m.req.id.idiag_dst, k->daddr, alen);
	m.req.id.idiag_if = 0;
	m.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	m.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	memcpy(buf, &m, sizeof(m));
	return (int)sizeof(m);
}

int sockdestroy_open(struct sockdestroy **out)
{
	struct sockdestroy *sd = calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (sd->fd < 0) {
		int err = -errno;
		free(sd);
		return err;
	}
	/* The kernel answers at once; the timeout only guards the event loop
	 * against a kernel that never does. */
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(sd->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*out = sd;
	return 0;
}

void sockdestroy_close(struct sockdestroy *sd)
{
	if (!sd)
		return;
	close(sd->fd);
	free(sd);
}

/* Reads until the acknowledgement of seq; returns its error (0 = done). */
static int read_ack(struct sockdestroy *sd, uint32_t seq)
{
	char buf[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
	for (;;) {
		ssize_t n = recv(sd->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Walk the messages by hand: NLMSG_OK mixes signed and
		 * unsigned lengths. Every header is bounds-checked. */
		size_t off = 0, total = (size_t)n;
		while (total - off >= sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + off);
			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > total - off)
				return -EBADMSG;
			off += NLMSG_ALIGN(h->nlmsg_len);
			if (off > total)
				off = total; /* last message without its padding */
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue; /* a late answer to an earlier request */
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EBADMSG;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			return e->error; /* 0 or negative errno */
		}
	}
}

int sockdestroy_flow(struct sockdestroy *sd, const struct rw_flow_key *k)
{
	struct destroy_msg m;
	uint32_t seq = ++sd->seq;
	int len = sockdestroy_build_request(k, seq, &m, sizeof(m));
	if (len < 0)
		return len;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;
	do {
		n = sendto(sd->fd, &m, (size_t)len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return read_ack(sd, seq);
}
