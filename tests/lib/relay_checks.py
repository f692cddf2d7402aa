#!/usr/bin/python3
"""Checks rcptwall's event log and nft table against a relay test manifest.

  relay_checks.py events --manifest M --defer DOMS --mode enforce|monitor
        --log LOG [--log LOG] [--leaked FILE]
    Every recipient of a --defer domain in the manifest has a `flag` event
    with a detector and a `block` event: in enforce mode with latency_us,
    in monitor mode with would_block. No legitimate recipient has either.
    Recipients listed in --leaked (one a line: the fault test's outage) are
    exempt, and so are lookalikes whose delivery failed at connect with
    "Connection refused" in --queue-json (no RCPT was ever sent; counted). Prints the block latency p50/p99/max. Exit 1 on failure.

  relay_checks.py nft --table JSON --log LOG [--log LOG] --lookalike-mx IP,...
    JSON is `nft -j list table inet rcptwall`. Every set element is a flow
    to a lookalike's exchanger (a legitimate connection is never in the
    set), every element corresponds to a flow of a logged block, and prints
    the reject counters next to the number of blocked flows.

Run with Debian's /usr/bin/python3 (standard library only).
"""

import argparse
import json
import sys


def load_events(paths):
    events = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    events.append(json.loads(line))
    return events


def load_manifest(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def refused_at_connect(path):
    """Queued recipients whose delivery failed at connect time."""
    out = set()
    with open(path) as f:
        for line in f:
            if line.strip():
                for r in json.loads(line).get("recipients", []):
                    if "Connection refused" in r.get("delay_reason", ""):
                        out.add(r["address"])
    return out


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cmd_events(args):
    events = load_events(args.log)
    defer = set(args.defer.split(","))
    leaked = set()
    if args.leaked:
        with open(args.leaked) as f:
            leaked = {l.strip() for l in f if l.strip()}
    refused = refused_at_connect(args.queue_json) if args.queue_json else set()
    n_refused = 0
    flags, blocks = {}, {}
    for ev in events:
        if ev.get("event") == "flag":
            flags.setdefault(ev.get("rcpt"), []).append(ev)
        elif ev.get("event") == "block":
            blocks.setdefault(ev.get("rcpt"), []).append(ev)
    failures, latencies = [], []
    for _token, rcpt, dom in load_manifest(args.manifest):
        if dom not in defer:
            if rcpt in flags or rcpt in blocks:
                failures.append("legitimate %s was flagged or blocked" % rcpt)
            continue
        if rcpt in leaked:
            continue
        if rcpt in refused:
            # Never sent: its connection was refused at the SYN by a set
            # element of an earlier blocked flow with the same ports.
            n_refused += 1
            continue
        f = [e for e in flags.get(rcpt, []) if e.get("detector") and e.get("mode") == args.mode]
        if not f:
            failures.append("no %s flag event with a detector for %s" % (args.mode, rcpt))
        b = blocks.get(rcpt, [])
        if args.mode == "enforce":
            good = [e for e in b if e.get("mode") == "enforce" and not e.get("would_block")
                    and isinstance(e.get("latency_us"), int) and not e.get("error")]
            latencies += [e["latency_us"] for e in good]
        else:
            good = [e for e in b if e.get("would_block") is True]
            if len(good) != len(b):
                failures.append("monitor mode logged a real block for %s" % rcpt)
        if not good:
            failures.append("no %s block event for %s (have %s)" % (args.mode, rcpt, b))
        elif good[0].get("domain") != dom:
            failures.append("block event for %s names domain %r" % (rcpt, good[0].get("domain")))
    if n_refused:
        print("  %d lookalike recipients deferred with 'Connection refused' (no RCPT sent): "
              "4-tuple reuse of a blocked flow still in the nft set" % n_refused)
    if latencies:
        print("  block latency us: p50 %d p99 %d max %d over %d blocks" % (
            percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies), len(latencies)))
    for f in failures[:30]:
        print("FAIL " + f)
    if len(failures) > 30:
        print("FAIL ... %d more" % (len(failures) - 30))
    return 1 if failures else 0


def flow_tuple(flow):
    return (flow.get("saddr"), int(flow.get("sport", 0)), flow.get("daddr"), int(flow.get("dport", 0)))


def set_elements(table):
    """(set name, (saddr, sport, daddr, dport), packets) for each element."""
    for item in table.get("nftables", []):
        s = item.get("set")
        if not s:
            continue
        for el in s.get("elem", []):
            packets = 0
            if isinstance(el, dict) and "elem" in el:
                packets = el["elem"].get("counter", {}).get("packets", 0)
                el = el["elem"]["val"]
            parts = el.get("concat", []) if isinstance(el, dict) else []
            if len(parts) == 4:
                yield s["name"], (str(parts[0]), int(parts[1]), str(parts[2]), int(parts[3])), packets


def rule_packets(table):
    total = 0
    for item in table.get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += expr["counter"].get("packets", 0)
    return total


def cmd_nft(args):
    with open(args.table) as f:
        table = json.load(f)
    blocked = {flow_tuple(e["flow"]) for e in load_events(args.log)
               if e.get("event") == "block" and e.get("mode") == "enforce" and "flow" in e
               and not e.get("would_block")}
    mx = set(args.lookalike_mx.split(","))
    failures, elements = [], list(set_elements(table))
    for name, key, _ in elements:
        if key[2] not in mx:
            failures.append("set %s holds a flow to %s, not a lookalike's exchanger: %s" % (name, key[2], key))
        if key not in blocked:
            failures.append("set %s holds a flow no block event names: %s" % (name, key))
    elem_packets = sum(p for _, _, p in elements)
    print("  nft: %d elements (%d blocked flows logged), element counters %d packets, "
          "reject rule counters %d packets" % (len(elements), len(blocked), elem_packets,
                                               rule_packets(table)))
    # Each blocked flow sends one packet through the rule: the RST of its
    # socket destroy. More means a later connection reused the element's
    # address and port pair and was refused at its SYN.
    reused = [key for _, key, p in elements if p > 1]
    if reused:
        print("  nft: %d element(s) also refused a later connection with the same ports "
              "(4-tuple reuse): %s" % (len(reused), reused[:5]))
    if args.expect_all and len(elements) != len(blocked):
        failures.append("%d blocked flows logged but %d set elements" % (len(blocked), len(elements)))
    for f in failures[:30]:
        print("FAIL " + f)
    return 1 if failures else 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("events")
    e.add_argument("--manifest", required=True)
    e.add_argument("--defer", required=True)
    e.add_argument("--mode", choices=("enforce", "monitor"), required=True)
    e.add_argument("--log", action="append", required=True)
    e.add_argument("--leaked")
    e.add_argument("--queue-json", help="postqueue -j: lookalikes refused at connect are exempt")
    n = sub.add_parser("nft")
    n.add_argument("--table", required=True)
    n.add_argument("--log", action="append", required=True)
    n.add_argument("--lookalike-mx", required=True)
    n.add_argument("--expect-all", action="store_true",
                   help="every logged blocked flow must still be in the set")
    args = p.parse_args(argv)
    return cmd_events(args) if args.cmd == "events" else cmd_nft(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
