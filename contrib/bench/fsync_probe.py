#!/usr/bin/env python3
"""How long the disk takes to make a write durable, with nothing else of btcts.

Writes SIZE bytes and calls fdatasync (what redb's durable commit ends
with), every INTERVAL_MS, for SECONDS, in a file under DIR, and prints the
latency per 30 s (p50, p99, p99.9, max). docs/BENCHMARKS.md (target 5)
compares it with the store's own commit times.

    contrib/bench/fsync_probe.py DIR SECONDS SIZE INTERVAL_MS [--grow]

Without --grow the same 512 MiB are overwritten in turn; with --grow the
file is extended sparse, doubling, and written front to back, as redb grows
its file. The file is removed at the end.

    contrib/bench/fsync_probe.py /var/lib/btcts 300 4096 10         # light
    contrib/bench/fsync_probe.py /var/lib/btcts 300 65536 1 --grow  # ~ btcts at 1,000 records/s
"""

import os
import sys
import time


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    grow = "--grow" in sys.argv
    if len(args) != 4:
        sys.exit(__doc__)
    d, secs, size, interval = args[0], float(args[1]), int(args[2]), float(args[3]) / 1000
    path = os.path.join(d, "btcts-fsync-probe.bin")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        buf = os.urandom(size)
        wrap, cap = 512 << 20, 16 << 20
        if grow:
            os.ftruncate(fd, cap)
        start, off, per = time.monotonic(), 0, {}
        while time.monotonic() - start < secs:
            if grow and off + size > cap:
                cap *= 2
                os.ftruncate(fd, cap)
            t = time.monotonic()
            os.pwrite(fd, buf, off)
            os.fdatasync(fd)
            dt = time.monotonic() - t
            off = off + size if grow else (off + size) % wrap
            per.setdefault(int((t - start) // 30), []).append(dt)
            if interval:
                time.sleep(max(0.0, interval - dt))
        for m, v in sorted(per.items()):
            v.sort()
            q = lambda p: v[min(len(v) - 1, int(len(v) * p))] * 1e3
            print(f"{m * 30:4d} s  n={len(v):6d}  p50={q(.5):6.2f}  p99={q(.99):7.2f}"
                  f"  p99.9={q(.999):7.2f}  max={v[-1] * 1e3:7.1f} ms")
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
