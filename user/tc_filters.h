/*
 * Counts the tc filters on an interface's clsact hooks with an rtnetlink
 * dump (RTM_GETTFILTER), which libbpf does not offer. The loader uses it to
 * remove a clsact qdisc only when nothing but our filter ever used it.
 */
#ifndef RCPTWALL_TC_FILTERS_H
#define RCPTWALL_TC_FILTERS_H

#include <stdbool.h>

/* Filters on clsact ingress (egress = false) or egress of ifindex:
 * >= 0, or a negative errno (-EINVAL/-ENOENT: no clsact qdisc). */
int tc_filters_count(int ifindex, bool egress);

#endif /* RCPTWALL_TC_FILTERS_H */
