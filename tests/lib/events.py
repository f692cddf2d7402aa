#!/usr/bin/python3
"""Queries rcptwall's JSON Lines event log for end-to-end tests.

  events.py LOG count [FIELD=VALUE ...]      number of matching events
  events.py LOG values FIELD [FIELD=VALUE ...]  the field of each match, one a line
  events.py LOG check                        every line is a JSON object with time and event

FIELD may be dotted (flow.dport); VALUE is compared as text ("true" for a
JSON true). Exit status 0, or 1 with a message on a malformed log.
"""
import json
import sys


def load(path):
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            if not isinstance(ev, dict) or "event" not in ev or "time" not in ev:
                sys.exit(f"{path}:{n}: not an event object")
            events.append(ev)
    return events


def field(ev, name):
    for part in name.split("."):
        if not isinstance(ev, dict) or part not in ev:
            return None
        ev = ev[part]
    if ev is True:
        return "true"
    if ev is False:
        return "false"
    return str(ev)


def matches(ev, conds):
    return all(field(ev, k) == v for k, v in conds)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    events = load(sys.argv[1])
    cmd, args = sys.argv[2], sys.argv[3:]
    if cmd == "check":
        return
    if cmd == "values":
        name, args = args[0], args[1:]
    conds = [a.split("=", 1) for a in args]
    hits = [e for e in events if matches(e, conds)]
    if cmd == "count":
        print(len(hits))
    elif cmd == "values":
        for e in hits:
            print(field(e, name))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
