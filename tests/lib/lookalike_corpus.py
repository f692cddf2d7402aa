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


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "legit":
        legit()
    elif len(sys.argv) == 3 and sys.argv[1] == "lookalikes":
        lookalikes(sys.argv[2])
    else:
        sys.exit(__doc__)
