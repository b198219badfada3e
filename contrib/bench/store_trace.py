#!/usr/bin/env python3
"""Per-interval view of a `TRACE=1 scripts/many-chains.sh` run.

Reads DIR/trace.prom (the server's /metrics, store write timings and request
durations, every 5 s) and DIR/vmstat.txt, and prints one row per interval:
single-record block POSTs (count, p99 and max bucket of the server-side
duration), the store's write transactions by op (count; for `ingest` the
longest wait for the writer and the mean and longest commit; for `seal`,
`anchor` the longest hold, for `index` the transactions' total hold), and
the machine's CPU wait and blocks written (vmstat). A "max" is the upper
bound of the highest bucket that received an observation in the interval.

    contrib/bench/store_trace.py /tmp/btcts-many-chains.XXXXXX [--all]
    contrib/bench/store_trace.py /tmp/btcts-many-chains.XXXXXX --minutes

Without --all only intervals whose POST p99 bucket is above 25 ms, or whose
longest ingest wait or commit is, are printed, with the interval before.
--minutes prints one row per minute instead: per op, the transactions and
their mean hold, commit and wait for the writer.
"""

import datetime
import re
import sys
from collections import defaultdict

LINE = re.compile(r'^(\w+)(\{.*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')
ROUTE = "/v1/chains/{chain_id}/blocks"


def scrapes(path):
    out, cur = [], None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("# "):
            cur = (float(line[2:]), {})
            out.append(cur)
            continue
        m = LINE.match(line)
        if not m or cur is None:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        cur[1][(name, tuple(sorted(LABEL.findall(labels))))] = float(value)
    return [s for s in out if s[1]]


def histogram(before, after, name, **want):
    """(count, sum, [(le, n)]) of observations between two scrapes."""
    buckets = defaultdict(float)
    count = total = 0.0
    for (n, labels), v in after.items():
        d = dict(labels)
        if any(d.get(k) != w for k, w in want.items()):
            continue
        delta = v - before.get((n, labels), 0.0)
        if n == name + "_count":
            count += delta
        elif n == name + "_sum":
            total += delta
        elif n == name + "_bucket":
            le = d["le"]
            buckets[float("inf") if le == "+Inf" else float(le)] += delta
    cum = sorted(buckets.items())
    per, prev = [], 0.0
    for le, c in cum:
        per.append((le, c - prev))
        prev = c
    return count, total, per


def top(per):
    hits = [le for le, n in per if n > 0.5]
    return hits[-1] if hits else 0.0


def quantile(count, per, q):
    need, seen = q * count, 0.0
    for le, n in per:
        seen += n
        if seen >= need and count > 0:
            return le
    return 0.0


def ms(x):
    return "inf" if x == float("inf") else f"{x * 1000:.1f}"


def vmstat(path):
    rows = []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return rows
    head = None
    for line in lines:
        f = line.split()
        if "wa" in f and "bo" in f:
            head = [h for h in f if h != "UTC"]
            continue
        if head is None or len(f) < len(head) + 2 or not f[0].isdigit():
            continue
        t = datetime.datetime.strptime(f[-2] + " " + f[-1], "%Y-%m-%d %H:%M:%S")
        t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
        d = dict(zip(head, f))
        rows.append((t, int(d["wa"]), int(d["bo"]), int(d["us"]) + int(d["sy"])))
    return rows


def per_minute(s):
    """One row per 12 scrapes (a minute at the script's 5 s): per op, the
    transactions and their mean hold, commit and wait, in ms."""
    ops = ("index", "seal", "ingest", "anchor")
    print("min | " + " | ".join(f"{op:>6}    n   hold commit   wait" for op in ops))
    t0 = s[0][0]
    for i in range(0, len(s) - 12, 12):
        a, b = s[i][1], s[i + 12][1]
        cols = []
        for op in ops:
            n, hold, _ = histogram(a, b, "btcts_store_write_hold_seconds", op=op)
            nc, commit, _ = histogram(a, b, "btcts_store_commit_seconds", op=op)
            nw, wait, _ = histogram(a, b, "btcts_store_write_wait_seconds", op=op)
            mean = lambda total, count: 1000 * total / count if count else 0.0
            cols.append(f"{n:11.0f} {mean(hold, n):6.2f} {mean(commit, nc):6.2f} {mean(wait, nw):6.3f}")
        print(f"{(s[i][0] - t0) / 60:3.0f} | " + " | ".join(cols))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    show_all = "--all" in sys.argv
    d = args[0]
    s = scrapes(d + "/trace.prom")
    if "--minutes" in sys.argv:
        per_minute(s)
        return
    vm = vmstat(d + "/vmstat.txt")
    t0 = s[0][0] if s else 0
    print("   t  posts  p99   max | ingest  wait  commit(mean max) | seal hold | index n  total | anchor hold | cpu wa   bo")
    rows = []
    for (ta, a), (tb, b) in zip(s, s[1:]):
        n, _, per = histogram(a, b, "btcts_http_request_duration_seconds", route=ROUTE)
        p99, pmax = quantile(n, per, 0.99), top(per)
        ic, _, iw = histogram(a, b, "btcts_store_write_wait_seconds", op="ingest")
        cc, cs, cp = histogram(a, b, "btcts_store_commit_seconds", op="ingest")
        sc, _, sh = histogram(a, b, "btcts_store_write_hold_seconds", op="seal")
        xc, xs, _ = histogram(a, b, "btcts_store_write_hold_seconds", op="index")
        ac, _, ah = histogram(a, b, "btcts_store_write_hold_seconds", op="anchor")
        near = [r for r in vm if ta < r[0] <= tb + 0.5]
        wa = max((r[1] for r in near), default=0)
        bo = max((r[2] for r in near), default=0)
        cpu = max((r[3] for r in near), default=0)
        row = (
            f"{tb - t0:4.0f} {n:6.0f} {ms(p99):>5} {ms(pmax):>5} | {ic:6.0f} {ms(top(iw)):>5} "
            f"{ms(cs / cc if cc else 0):>6} {ms(top(cp)):>5} | {sc:2.0f} {ms(top(sh)):>5} | "
            f"{xc:3.0f} {ms(xs):>6} | {ac:2.0f} {ms(top(ah)):>5} | {cpu:3d} {wa:2d} {bo:6d}"
        )
        slow = max(p99, top(iw), top(cp)) > 0.025
        rows.append((slow, row))
    for i, (slow, row) in enumerate(rows):
        if show_all or slow or (i + 1 < len(rows) and rows[i + 1][0]):
            print(row)


if __name__ == "__main__":
    main()
