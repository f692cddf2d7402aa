/* rtnetlink filter dump on a clsact hook (see tc_filters.h). */
#include "tc_filters.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Not in every uapi copy of pkt_sched.h. */
#ifndef TC_H_CLSACT
#define TC_H_CLSACT TC_H_INGRESS
#endif
#ifndef TC_H_MIN_INGRESS
#define TC_H_MIN_INGRESS 0xFFF2U
#endif
#ifndef TC_H_MIN_EGRESS
#define TC_H_MIN_EGRESS 0xFFF3U
#endif

static int send_dump_request(int sock, int ifindex, bool egress)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_GETTFILTER;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.tc.tcm_family = AF_UNSPEC;
	req.tc.tcm_ifindex = ifindex;
	req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
	if (send(sock, &req, sizeof(req), 0) < 0)
		return -errno;
	return 0;
}

/* Reads one datagram of the dump. Returns 1 when done, 0 for more, <0. */
static int read_dump_part(int sock, int *count)
{
	/* Aligned for struct nlmsghdr; 32 KiB holds any filter message. */
	static _Thread_local long buf[32768 / sizeof(long)];
	ssize_t n = recv(sock, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	size_t left = (size_t)n;
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, left);
	     nh = NLMSG_NEXT(nh, left)) {
		if (nh->nlmsg_type == NLMSG_DONE)
			return 1;
		if (nh->nlmsg_type == NLMSG_ERROR) {
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EBADMSG;
			const struct nlmsgerr *e = NLMSG_DATA(nh);
			return e->error ? e->error : 1;
		}
		/* Each classifier instance and each of its filters is one
		 * message: any message means "not empty". */
		if (nh->nlmsg_type == RTM_NEWTFILTER)
			(*count)++;
	}
	return 0;
}

int tc_filters_count(int ifindex, bool egress)
{
	int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (sock < 0)
		return -errno;
	/* A dump that never ends must not hang the exit path. */
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	int count = 0;
	int rc = send_dump_request(sock, ifindex, egress);
	while (rc == 0)
		rc = read_dump_part(sock, &count);
	close(sock);
	return rc < 0 ? rc : count;
}
