/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Header parsing for the tc egress program: Ethernet (one optional 802.1Q
 * tag), IPv4 or IPv6 (with extension headers), TCP. Every read goes through
 * bpf_skb_load_bytes with an offset, so it works on GSO super-packets whose
 * bytes are not all in the linear part, and every length field is checked
 * against the packet before it is trusted.
 */
#ifndef RCPTWALL_EGRESS_PARSE_H
#define RCPTWALL_EGRESS_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rcptwall/rcptwall.h"

/* From uapi headers that vmlinux.h (BTF types only) does not carry. */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP_NR 6
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define EGRESS_TCP_FIN 0x01
#define EGRESS_TCP_SYN 0x02
#define EGRESS_TCP_RST 0x04

/* IPv6 extension headers chained before TCP we are willing to walk. */
#define EGRESS_IPV6_MAX_EXT 6

enum egress_verdict {
	EGRESS_OTHER = 0,      /* not TCP over IPv4/IPv6: none of our business */
	EGRESS_TCP = 1,        /* parsed: p is filled */
	EGRESS_UNPARSABLE = 2, /* truncated/malformed header or non-first fragment */
	EGRESS_EXT_UNKNOWN = 3 /* IPv6 extension header we do not walk */
};

struct egress_pkt {
	struct rw_flow_key key;
	__u32 seq;          /* TCP sequence number (host order) */
	__u32 data_seq;     /* seq of the first payload byte (seq + 1 on a SYN) */
	__u32 payload_off;  /* offset of the payload in the skb */
	__u32 payload_len;  /* payload bytes, excluding link-layer padding */
	__u8 tcp_flags;
	__u8 first_flags;   /* RW_RF_* for the flow's first record (midstream) */
};

/* IPv4: returns the verdict; *l4_off and *l3_end are set for TCP. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct egress_pkt *p,
				      __u32 *l4_off, __u32 *l3_end)
{
	struct iphdr ip;
	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return EGRESS_UNPARSABLE;
	if (ip.version != 4 || ip.ihl < 5)
		return EGRESS_UNPARSABLE;
	if (ip.protocol != IPPROTO_TCP_NR)
		return EGRESS_OTHER;
	/* Without the first fragment's TCP header the ports are unknown. */
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET)
		return EGRESS_UNPARSABLE;

	__u32 hlen = ip.ihl * 4;
	__u32 tot = bpf_ntohs(ip.tot_len);
	/* BIG TCP (IPv4, kernel >= 6.3) leaves tot_len 0 on super-packets
	 * over 64 KiB: the skb length is the only length there is. */
	if (tot == 0 && skb->len > off + 0xffff)
		tot = skb->len - off;
	if (tot < hlen || off + tot > skb->len)
		return EGRESS_UNPARSABLE;

	p->key.family = RW_AF_INET;
	__builtin_memcpy(p->key.saddr, &ip.saddr, 4);
	__builtin_memcpy(p->key.daddr, &ip.daddr, 4);
	*l4_off = off + hlen;
	*l3_end = off + tot;
	return EGRESS_TCP;
}

/* Is nh an IPv6 extension header (IANA registry) rather than a transport? */
static __always_inline bool ipv6_is_ext(__u8 nh)
{
	switch (nh) {
	case 0: case 43: case 44: case 50: case 51: case 60:
	case 135: case 139: case 140: case 253: case 254:
		return true;
	default:
		return false;
	}
}

/* Walks the extension header chain: hop-by-hop, routing, fragment,
 * destination options and AH. Returns the verdict and the TCP offset. */
static __always_inline int ipv6_skip_ext(struct __sk_buff *skb, __u8 nh, __u32 *off)
{
#pragma unroll
	for (int i = 0; i < EGRESS_IPV6_MAX_EXT; i++) {
		if (nh == IPPROTO_TCP_NR)
			return EGRESS_TCP;
		if (!ipv6_is_ext(nh))
			return EGRESS_OTHER;

		__u8 ext[2];
		if (bpf_skb_load_bytes(skb, *off, ext, sizeof(ext)))
			return EGRESS_UNPARSABLE;
		switch (nh) {
		case 0:  /* hop-by-hop options */
		case 43: /* routing */
		case 60: /* destination options */
			*off += (ext[1] + 1) * 8;
			break;
		case 51: /* authentication header: length in 4-octet units minus 2 */
			*off += (ext[1] + 2) * 4;
			break;
		case 44: { /* fragment */
			__be16 frag;
			if (bpf_skb_load_bytes(skb, *off + 2, &frag, sizeof(frag)))
				return EGRESS_UNPARSABLE;
			if (bpf_ntohs(frag) & 0xfff8)
				return EGRESS_UNPARSABLE; /* non-first fragment */
			*off += 8;
			break;
		}
		default: /* ESP, mobility, HIP, shim6, experimental */
			return EGRESS_EXT_UNKNOWN;
		}
		nh = ext[0];
	}
	return nh == IPPROTO_TCP_NR ? EGRESS_TCP : EGRESS_UNPARSABLE;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct egress_pkt *p,
				      __u32 *l4_off, __u32 *l3_end)
{
	struct ipv6hdr ip6;
	if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
		return EGRESS_UNPARSABLE;
	if (ip6.version != 6)
		return EGRESS_UNPARSABLE;

	__u32 plen = bpf_ntohs(ip6.payload_len);
	/* payload_len 0 is a jumbogram / BIG TCP super-packet: use skb->len. */
	__u32 end = plen ? off + sizeof(ip6) + plen : skb->len;
	if (end > skb->len)
		return EGRESS_UNPARSABLE;

	__u32 l4 = off + sizeof(ip6);
	int rc = ipv6_skip_ext(skb, ip6.nexthdr, &l4);
	if (rc != EGRESS_TCP)
		return rc;

	p->key.family = RW_AF_INET6;
	__builtin_memcpy(p->key.saddr, &ip6.saddr, 16);
	__builtin_memcpy(p->key.daddr, &ip6.daddr, 16);
	*l4_off = l4;
	*l3_end = end;
	return EGRESS_TCP;
}

static __always_inline int parse_tcp(struct __sk_buff *skb, __u32 off, __u32 l3_end,
				     struct egress_pkt *p)
{
	struct tcphdr th;
	if (off + sizeof(th) > l3_end || bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
		return EGRESS_UNPARSABLE;
	__u32 thlen = th.doff * 4;
	if (thlen < sizeof(th) || off + thlen > l3_end)
		return EGRESS_UNPARSABLE;

	p->key.sport = bpf_ntohs(th.source);
	p->key.dport = bpf_ntohs(th.dest);
	p->seq = bpf_ntohl(th.seq);
	p->tcp_flags = (th.fin ? EGRESS_TCP_FIN : 0) | (th.syn ? EGRESS_TCP_SYN : 0) |
		       (th.rst ? EGRESS_TCP_RST : 0);
	p->data_seq = p->seq + (th.syn ? 1 : 0);
	p->payload_off = off + thlen;
	p->payload_len = l3_end - p->payload_off;
	return EGRESS_TCP;
}

/* Parses the packet at skb data (Ethernet header first, as tc sees it). */
static __always_inline int egress_parse(struct __sk_buff *skb, struct egress_pkt *p)
{
	__be16 proto;
	__u32 off = ETH_HLEN;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)))
		return EGRESS_OTHER; /* not even an Ethernet header: not IP */
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (bpf_skb_load_bytes(skb, 16, &proto, sizeof(proto)))
			return EGRESS_UNPARSABLE;
		off += 4;
	}

	__u32 l4_off = 0, l3_end = 0;
	int rc;
	if (proto == bpf_htons(ETH_P_IP))
		rc = parse_ipv4(skb, off, p, &l4_off, &l3_end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		rc = parse_ipv6(skb, off, p, &l4_off, &l3_end);
	else
		return EGRESS_OTHER;
	if (rc != EGRESS_TCP)
		return rc;
	return parse_tcp(skb, l4_off, l3_end, p);
}

#endif /* RCPTWALL_EGRESS_PARSE_H */
