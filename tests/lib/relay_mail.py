#!/usr/bin/python3
"""Submits tagged test mail to the test bed's relay and accounts for it.

  relay_mail.py submit --server ADDR:PORT --manifest FILE --tag TAG
        (--message DOM[,DOM...] ... | --count N --domains DOM,DOM,...)
        [--burst N] [--parallel N] [--pause SECONDS]

    Every recipient gets a unique local part (TAG<run>n<n>r<i>@DOM) and
    every message a token (TAG-<run>-<n>) used as its Message-ID and Subject
    and repeated in its body, so a message can be followed through Postfix's log, queue and the
    sinks. One manifest line per recipient: token, recipient, domain.
    Messages go out in bursts of --burst, each burst over --parallel SMTP
    sessions at once.

  relay_mail.py verify --manifest FILE --sink DIR [--sink DIR] --maillog FILE
        --queue-json FILE --defer DOM,DOM,... [--leak-window START,END]
        [--summary FILE]

    Checks every manifest recipient: a domain in --defer must be deferred in
    the relay's queue with a reason, never stored by a sink, no sink
    transaction that carried it may have received a content byte, and its
    token may not appear in any byte of a connection that carried it. Every other recipient
    must be stored by a sink once and be out of the queue. With
    --leak-window, a --defer recipient that reached a sink is tolerated (and
    counted as leaked, listed in --leaked-out) when the sink saw its RCPT
    inside the window (UNIX times): the outage of the fault test. Exit 1 on
    any failure.

Run with Debian's /usr/bin/python3 (standard library only).
"""

import argparse
import concurrent.futures
import glob
import json
import os
import re
import secrets
import smtplib
import sys
import time

SENDER = "sender@relay.rw-tb.test"


# ---- submit ------------------------------------------------------------------

def build_message(token, rcpts):
    body = "".join("%s line %02d: the quick brown fox jumps over the lazy dog\r\n" % (token, i)
                   for i in range(24))
    return ("From: <%s>\r\nTo: %s\r\nSubject: rcptwall test %s\r\n"
            "Message-ID: <%s@relay.rw-tb.test>\r\n\r\n%s" %
            (SENDER, ", ".join("<%s>" % r for r in rcpts), token, token, body)).encode()


def plan(args):
    """[(token, [rcpt, ...]), ...] for the messages to send."""
    run = secrets.token_hex(3)
    if args.message:
        groups = [m.split(",") for m in args.message]
    else:
        doms = args.domains.split(",")
        groups = [[doms[i % len(doms)]] for i in range(args.count)]
    out = []
    for n, doms in enumerate(groups):
        # The token marks content only: the recipients are spelt without it,
        # so finding the token in a sink's bytes means content got there.
        token = "%s-%s-%04d" % (args.tag, run, n)
        out.append((token, ["%s%sn%dr%d@%s" % (args.tag, run, n, i, d)
                            for i, d in enumerate(doms)]))
    return out


def send_batch(host, port, batch):
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.ehlo("submitter.rw-tb.test")
        for token, rcpts in batch:
            refused = s.sendmail(SENDER, rcpts, build_message(token, rcpts))
            if refused:
                raise RuntimeError("relay refused %s" % refused)


def cmd_submit(args):
    host, _, port = args.server.rpartition(":")
    host = host.strip("[]")
    messages = plan(args)
    with open(args.manifest, "a") as man:
        for token, rcpts in messages:
            for r in rcpts:
                man.write("%s\t%s\t%s\n" % (token, r, r.rsplit("@", 1)[1]))
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        for start in range(0, len(messages), args.burst):
            burst = messages[start:start + args.burst]
            # Split the burst over the sessions round robin.
            batches = [burst[i::args.parallel] for i in range(args.parallel)]
            for f in [pool.submit(send_batch, host, int(port), b) for b in batches if b]:
                f.result()
            if args.pause and start + args.burst < len(messages):
                time.sleep(args.pause)
    print("submitted %d messages, %d recipients" %
          (len(messages), sum(len(r) for _, r in messages)))
    return 0


# ---- verify ------------------------------------------------------------------

def load_manifest(path):
    rows = []
    with open(path) as f:
        for line in f:
            token, rcpt, dom = line.rstrip("\n").split("\t")
            rows.append({"token": token, "rcpt": rcpt, "domain": dom})
    return rows


def load_sink(store):
    """Messages, transactions and raw bytes of one sink store."""
    sink = {"store": store, "delivered": {}, "txns": {}, "rcpt_time": {}, "closes": {}}
    with open(os.path.join(store, "log.jsonl")) as f:
        for line in f:
            ev = json.loads(line)
            key = (ev.get("conn"), ev.get("txn"))
            if ev["event"] == "rcpt":
                sink["txns"].setdefault(key, set()).add(ev["rcpt"])
                sink["rcpt_time"].setdefault(ev["rcpt"], []).append(ev["time"])
            elif ev["event"] == "message":
                for r in ev["rcpts"]:
                    sink["delivered"].setdefault(r, []).append(ev["message_id"])
                sink["txns"].setdefault(key, set())
                sink.setdefault("finished", set()).add(key)
            elif ev["event"] == "close":
                sink["closes"][ev["conn"]] = ev
    sink["raw"] = {}
    for path in glob.glob(os.path.join(store, "conn-*", "raw.bin")):
        conn = int(os.path.basename(os.path.dirname(path))[5:])
        with open(path, "rb") as f:
            sink["raw"][conn] = f.read()
    return sink


def token_in_connections(sink, rcpt, token):
    """True when the token is in the bytes of a connection that carried rcpt.
    (Another recipient's copy of the same message may legitimately carry it
    elsewhere.)"""
    conns = {conn for (conn, _), rcpts in sink["txns"].items() if rcpt in rcpts}
    return any(token.encode() in sink["raw"].get(c, b"") for c in conns)


def load_queue(maillog, queue_json):
    """recipient -> delay reason, for every recipient still queued."""
    qid_token = {}
    with open(maillog, errors="replace") as f:
        for line in f:
            m = re.search(r" ([0-9A-F]{6,}): message-id=<([^@>]+)@", line)
            if m:
                qid_token[m.group(1)] = m.group(2)
    queued, not_deferred = {}, []
    with open(queue_json) as f:
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry["queue_name"] != "deferred":
                not_deferred.append(entry["queue_id"])
            for r in entry["recipients"]:
                queued[r["address"]] = r.get("delay_reason", "")
    return queued, not_deferred


def content_reached_sink(sink, rcpt):
    """True when any sink transaction carrying rcpt got a content byte."""
    for key, rcpts in sink["txns"].items():
        if rcpt not in rcpts:
            continue
        if key in sink.get("finished", set()):
            return True
        close = sink["closes"].get(key[0])
        if close is None:
            return True  # still open: cannot prove anything, count it against
        txn = close.get("open_txn")
        if txn and txn["txn"] == key[1] and txn["content_bytes"] > 0:
            return True
    return False


def judge(row, sinks, queued, defer, window):
    rcpt, token = row["rcpt"], row["token"]
    copies = sum(len(s["delivered"].get(rcpt, [])) for s in sinks)
    in_queue = rcpt in queued
    if row["domain"] not in defer:
        if copies == 1 and not in_queue:
            return "delivered", None
        return "failed", "legitimate %s: %d copies delivered, %s" % (
            rcpt, copies, "queued: " + queued[rcpt] if in_queue else "not queued")
    leaked_bytes = any(token_in_connections(s, rcpt, token) for s in sinks) or \
        any(content_reached_sink(s, rcpt) for s in sinks)
    if copies == 0 and not leaked_bytes:
        if in_queue and queued[rcpt]:
            return "deferred", None
        return "failed", "lookalike %s: neither delivered nor deferred with a reason (lost)" % rcpt
    times = [t for s in sinks for t in s["rcpt_time"].get(rcpt, [])]
    if window and times and all(window[0] <= t <= window[1] for t in times):
        return "leaked", None
    return "failed", "lookalike %s: %d copies at a sink, content bytes reached a sink: %s" % (
        rcpt, copies, leaked_bytes)


def cmd_verify(args):
    rows = load_manifest(args.manifest)
    sinks = [load_sink(d) for d in args.sink]
    queued, not_deferred = load_queue(args.maillog, args.queue_json)
    defer = set(filter(None, args.defer.split(",")))
    window = tuple(float(x) for x in args.leak_window.split(",")) if args.leak_window else None
    counts, per_domain, failures, leaked = {}, {}, [], []
    for row in rows:
        verdict, why = judge(row, sinks, queued, defer, window)
        if verdict == "leaked":
            leaked.append(row["rcpt"])
        counts[verdict] = counts.get(verdict, 0) + 1
        per_domain.setdefault(row["domain"], {}).setdefault(verdict, 0)
        per_domain[row["domain"]][verdict] += 1
        if why:
            failures.append(why)
    if not_deferred:
        failures.append("queue entries not in the deferred queue yet: %s" % " ".join(not_deferred))
    summary = {"recipients": len(rows), "counts": counts, "per_domain": per_domain,
               "failures": len(failures)}
    for dom in sorted(per_domain):
        print("  %-14s %s" % (dom, " ".join("%s=%d" % kv for kv in sorted(per_domain[dom].items()))))
    print("  total %d recipients: %s" % (len(rows), " ".join("%s=%d" % kv for kv in sorted(counts.items()))))
    for f in failures[:40]:
        print("FAIL " + f)
    if len(failures) > 40:
        print("FAIL ... %d more" % (len(failures) - 40))
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f)
    if args.leaked_out:
        with open(args.leaked_out, "w") as f:
            f.write("".join(r + "\n" for r in leaked))
    return 1 if failures else 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--server", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--tag", required=True)
    s.add_argument("--message", action="append", help="one message to these domains")
    s.add_argument("--count", type=int, default=0)
    s.add_argument("--domains")
    s.add_argument("--burst", type=int, default=50)
    s.add_argument("--parallel", type=int, default=4)
    s.add_argument("--pause", type=float, default=0)
    v = sub.add_parser("verify")
    v.add_argument("--manifest", required=True)
    v.add_argument("--sink", action="append", required=True)
    v.add_argument("--maillog", required=True)
    v.add_argument("--queue-json", required=True)
    v.add_argument("--defer", default="")
    v.add_argument("--leak-window")
    v.add_argument("--summary")
    v.add_argument("--leaked-out", help="write the leaked recipients here, one a line")
    args = p.parse_args(argv)
    if args.cmd == "submit":
        if not re.fullmatch(r"[a-z0-9]{1,16}", args.tag):
            p.error("submit: --tag is 1 to 16 lower-case letters and digits")
        if bool(args.message) == bool(args.count and args.domains):
            p.error("submit: give --message, or --count with --domains")
        return cmd_submit(args)
    return cmd_verify(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
