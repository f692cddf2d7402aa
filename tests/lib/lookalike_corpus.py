#!/usr/bin/python3
"""Test corpora for the lookalike matcher (run with Debian's /usr/bin/python3).

  lookalike_corpus.py legit
      Real legitimate domains found on this machine, one per line: the mail
      domains and URL hosts in /usr/share/doc/*/copyright, the maintainers of
      installed packages (dpkg-query), and the Maintainer and Homepage fields
      of every package in the APT lists (/var/lib/apt/lists, if present).

  lookalike_corpus.py lookalikes POLICY_SOURCE
      Lookalikes of the protected domains of the embedded default policy
      (read from user/policy_default.c, the single source of the list), one
      per line as "CLASS<TAB>PROTECTED<TAB>LOOKALIKE". Generated offline by
      Debian's dnstwist module (Fuzzer(domain).generate(), no DNS), plus
      suffix typos of the protected suffixes (.mil -> .ml) computed from
      Debian's public suffix list, which dnstwist does not generate.

  lookalike_corpus.py recall POLICY_SOURCE JOINED_TSV
      Reads "CLASS<TAB>PROTECTED<TAB>LOOKALIKE<TAB>INPUT<TAB>VERDICT<TAB>..."
      (the lookalikes joined with `rcptwall check` output), prints recall per
      class with what is missed and why, and exits non-zero when overall
      recall is under 99 %, a class other than tld-swap is under 99 %, or a
      tld-swap between generic TLDs is missed.
"""
import glob
import re
import subprocess
import sys

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://([A-Za-z0-9.-]+)", re.I)
TLD_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$|^xn--[a-z0-9-]+$")
PSL = "/usr/share/publicsuffix/public_suffix_list.dat"

# Documentation names (RFC 2606 / 6761) are placeholders, not real mail domains.
RESERVED = ("example.com", "example.org", "example.net", "localhost", "invalid", "test",
            "example", "local", "localdomain")


def clean(host):
    host = host.strip().strip(".").lower()
    if "." not in host or len(host) > 253:
        return None
    labels = host.split(".")
    if any(not l or len(l) > 63 or l.startswith("-") or l.endswith("-") for l in labels):
        return None
    if not TLD_RE.match(labels[-1]):
        return None
    if any(host == r or host.endswith("." + r) for r in RESERVED):
        return None
    return host


def scan_text(text, out):
    for rx in (EMAIL_RE, URL_RE):
        for m in rx.finditer(text):
            h = clean(m.group(1))
            if h:
                out.add(h)


def apt_lists():
    """Decompressed Packages files, through apt-helper (handles lz4/xz/gz)."""
    for path in glob.glob("/var/lib/apt/lists/*_Packages*"):
        try:
            yield subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path],
                                 capture_output=True, check=True, text=True,
                                 errors="replace").stdout
        except (OSError, subprocess.CalledProcessError):
            continue


def legit():
    out = set()
    for path in glob.glob("/usr/share/doc/*/copyright"):
        try:
            with open(path, errors="replace") as f:
                scan_text(f.read(), out)
        except OSError:
            pass
    try:
        text = subprocess.run(["dpkg-query", "-W", "-f", "${Maintainer}\n${Homepage}\n"],
                              capture_output=True, text=True, errors="replace").stdout
        scan_text(text, out)
    except OSError:
        pass
    for text in apt_lists():
        fields = [l for l in text.splitlines()
                  if l.startswith(("Maintainer:", "Original-Maintainer:", "Homepage:"))]
        scan_text("\n".join(fields), out)
    for d in sorted(out):
        print(d)


def default_policy(source):
    with open(source) as f:
        text = f.read()
    body = text[text.index("policy_default_protect[]"):]
    body = body[:body.index("NULL")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return re.findall(r'"([^"]+)"', body)


def icann_suffixes():
    out = set()
    with open(PSL, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if "===END ICANN DOMAINS===" in line:
                break
            if line and not line.startswith(("//", "!", "*")):
                out.add(line)
    return out


def one_edit(s):
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-."
    for i in range(len(s)):
        yield s[:i] + s[i + 1:]
        for c in alphabet:
            yield s[:i] + c + s[i + 1:]
    for i in range(len(s) + 1):
        for c in alphabet:
            yield s[:i] + c + s[i:]
    for i in range(len(s) - 1):
        yield s[:i] + s[i + 1] + s[i] + s[i + 2:]


# Names standing for "any X" under a protected suffix.
SUFFIX_SAMPLES = ["army", "navy", "af", "marines", "disa", "whitehouse", "irs", "nasa",
                  "state", "usps", "defense", "uscg"]
# A small dictionary so dnstwist's tld-swap class is exercised too.
TLD_DICTIONARY = ["com", "net", "org", "info", "biz", "co", "io", "de", "ru", "cn", "us"]


def lookalikes(source):
    import dnstwist  # Debian package dnstwist; no network I/O in Fuzzer
    entries = default_policy(source)
    suffixes = icann_suffixes()
    for entry in entries:
        if entry.startswith("."):
            suffix = entry[1:]
            typos = sorted({t for t in one_edit(suffix) if t != suffix and t in suffixes})
            for x in SUFFIX_SAMPLES:
                for t in typos:
                    print(f"suffix-typo\t{entry}\t{x}.{t}")
                print(f"protected-prefix\t{entry}\t{x}.{suffix}.example-foreign.com")
            continue
        fz = dnstwist.Fuzzer(entry, tld_dictionary=TLD_DICTIONARY)
        fz.generate()
        for p in sorted(fz.domains, key=lambda p: (p["fuzzer"], p["domain"])):
            print(f"{p['fuzzer']}\t{entry}\t{p['domain']}")


# Why a class misses what it misses (the README's "Limits" say the same).
MISS_REASONS = {
    "tld-swap": "not flagged on purpose: a swap to or from a country-code TLD "
                "(providers have real national siblings such as yahoo.dk, and words "
                "like 'mail' or 'orange' exist under every country code), and labels "
                "under 4 characters (msn, gmx, qq exist under many TLDs)",
    "homoglyph": "ambiguous glyph pairs: 'lc' standing for k right after a 'c' reads "
                 "as 'cl' standing for d, so the fold differs",
}


def is_protected(name, entries):
    """Protected itself: the domain, a name under it, or under a protected suffix
    belongs to the protected party and is not a lookalike."""
    for e in entries:
        if e.startswith("."):
            if name.endswith(e):
                return True
        elif name == e or name.endswith("." + e):
            return True
    return False


def generic_swap(prot, name):
    """A swap the matcher must flag: a label of 4+ characters moved from one
    generic TLD (3+ letters, one label) to another."""
    plabel, _, psuffix = prot.partition(".")
    label, _, suffix = name.partition(".")
    return (label == plabel and len(label) >= 4 and "." not in psuffix + suffix
            and len(psuffix) >= 3 and len(suffix) >= 3)


def recall(source, joined):
    entries = default_policy(source)
    stats = {}
    for line in open(joined, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 5:
            sys.exit(f"recall: malformed line: {line!r}")
        cls, prot, name, verdict = f[0], f[1], f[2], f[4]
        st = stats.setdefault(cls, {"n": 0, "flag": 0, "excl": {}, "miss": []})
        st["n"] += 1
        reason = None
        if cls == "*original":
            reason = "the protected domain itself"
        elif is_protected(name, entries):
            reason = "itself protected (a protected domain, under one, or under a protected suffix)"
        if reason:
            st["excl"][reason] = st["excl"].get(reason, 0) + 1
            continue
        if verdict == "flag":
            st["flag"] += 1
        else:
            st["miss"].append((prot, name, verdict))
    ok = True
    total = flagged = 0
    print(f"{'class':<18} {'generated':>9} {'excluded':>8} {'judged':>7} {'flagged':>7} {'recall':>8}")
    for cls in sorted(stats):
        st = stats[cls]
        excl = sum(st["excl"].values())
        judged = st["n"] - excl
        total += judged
        flagged += st["flag"]
        rate = 100.0 * st["flag"] / judged if judged else 100.0
        print(f"{cls:<18} {st['n']:>9} {excl:>8} {judged:>7} {st['flag']:>7} {rate:>7.2f}%")
        for reason, count in st["excl"].items():
            print(f"    excluded {count}: {reason}")
        if st["miss"]:
            print(f"    missed {len(st['miss'])}: {MISS_REASONS.get(cls, 'no known reason')}")
            for prot, name, verdict in st["miss"][:8]:
                print(f"      {name} (for {prot}): {verdict}")
        if cls == "tld-swap":
            generic = [m for m in st["miss"] if generic_swap(m[0], m[1])]
            if generic:
                print(f"FAIL: tld-swap between generic TLDs missed: {generic[:5]}")
                ok = False
        elif judged and rate < 99.0:
            print(f"FAIL: class {cls} under 99 %")
            ok = False
    overall = 100.0 * flagged / total if total else 0.0
    print(f"overall: {flagged}/{total} flagged, recall {overall:.2f}%")
    if overall < 99.0:
        print("FAIL: overall recall under 99 %")
        ok = False
    return ok


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "recall":
        sys.exit(0 if recall(sys.argv[2], sys.argv[3]) else 1)
    elif len(sys.argv) == 2 and sys.argv[1] == "legit":
        legit()
    elif len(sys.argv) == 3 and sys.argv[1] == "lookalikes":
        lookalikes(sys.argv[2])
    else:
        sys.exit(__doc__)
