"""Tests of the benchmark helpers in contrib/bench (run by scripts/test.sh):
store_trace.py on a synthetic trace whose figures are known, and a short
fsync_probe.py run."""

import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LES = ["0.0001", "0.001", "0.01", "0.05", "+Inf"]


def histogram(name, labels, observations):
    """Prometheus text lines of a cumulative histogram holding observations."""
    lines = []
    for le in LES:
        bound = float("inf") if le == "+Inf" else float(le)
        n = sum(1 for o in observations if o <= bound)
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {n}')
    lines.append(f"{name}_sum{{{labels}}} {sum(observations)}")
    lines.append(f"{name}_count{{{labels}}} {len(observations)}")
    return lines


def scrape(t, ingest_commits, seal_holds, posts):
    """One scrape as many-chains.sh writes it: a `# <unix time>` line, then
    the metrics, each histogram holding everything observed so far."""
    lines = [f"# {t}"]
    lines += histogram("btcts_store_commit_seconds", 'op="ingest"', ingest_commits)
    lines += histogram("btcts_store_write_hold_seconds", 'op="ingest"', ingest_commits)
    lines += histogram("btcts_store_write_wait_seconds", 'op="ingest"', [0.00005] * len(ingest_commits))
    lines += histogram("btcts_store_write_hold_seconds", 'op="seal"', seal_holds)
    lines += histogram("btcts_store_commit_seconds", 'op="seal"', [h / 2 for h in seal_holds])
    lines += histogram("btcts_store_write_wait_seconds", 'op="seal"', [0.0] * len(seal_holds))
    lines += histogram(
        "btcts_http_request_duration_seconds",
        'method="POST",route="/v1/chains/{chain_id}/blocks",status="200"',
        posts,
    )
    return lines


class StoreTrace(unittest.TestCase):
    def run_trace(self, d, *flags):
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "store_trace.py"), d, *flags],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.splitlines()

    def write(self, d, scrapes):
        with open(os.path.join(d, "trace.prom"), "w") as f:
            for lines in scrapes:
                f.write("\n".join(lines) + "\n")

    def test_minutes_are_means_per_op(self):
        with tempfile.TemporaryDirectory() as d:
            scrapes, commits, seals = [], [], []
            for i in range(13):
                scrapes.append(scrape(1000 + 5 * i, list(commits), list(seals), []))
                commits += [0.0004] * 100  # 100 ingest commits of 0.4 ms per 5 s
                if i % 2 == 0:
                    seals.append(0.02)  # a seal of 20 ms every 10 s
            self.write(d, scrapes)
            rows = self.run_trace(d, "--minutes")
        self.assertEqual(len(rows), 2, rows)
        cols = [c.split() for c in rows[1].split("|")]
        self.assertEqual(cols[0], ["0"])
        seal, ingest = cols[2], cols[3]
        self.assertEqual(seal[0], "6")  # scrapes 0..12 take in seals 1..6
        self.assertEqual(seal[1:3], ["20.00", "10.00"])  # mean hold, mean commit
        self.assertEqual(ingest[0], "1200")
        self.assertEqual(ingest[1:4], ["0.40", "0.40", "0.050"])

    def test_only_slow_intervals_and_the_one_before(self):
        with tempfile.TemporaryDirectory() as d:
            commits = []
            scrapes = []
            for i in range(6):
                scrapes.append(scrape(2000 + 5 * i, list(commits), [], [0.002] * (10 * i)))
                # the interval ending at the fifth scrape has a 40 ms commit
                commits += [0.0004] * 50 + ([0.04] if i == 3 else [])
            self.write(d, scrapes)
            quiet = self.run_trace(d)
            every = self.run_trace(d, "--all")
        self.assertEqual(len(every), 1 + 5)
        self.assertEqual([r.split()[0] for r in quiet[1:]], ["15", "20"], quiet)
        posts, ingest = [c.split() for c in quiet[2].split("|")[:2]]
        self.assertEqual(posts[1:], ["10", "10.0", "10.0"])  # POSTs (2 ms each), p99 and max buckets
        # commits, longest wait's bucket, mean commit ((50 × 0.4 + 40) / 51 ms),
        # longest commit's bucket
        self.assertEqual(ingest, ["51", "0.1", "1.2", "50.0"])

    def test_usage_without_a_directory(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "store_trace.py")],
                             capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("store_trace.py", out.stderr)


class FsyncProbe(unittest.TestCase):
    def test_short_run_reports_and_cleans_up(self):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run(
                [sys.executable, os.path.join(HERE, "fsync_probe.py"), d, "1", "4096", "20", "--grow"],
                capture_output=True, text=True, check=True,
            )
            self.assertEqual(os.listdir(d), [])
        rows = out.stdout.splitlines()
        self.assertEqual(len(rows), 1, rows)
        fields = dict(re.findall(r"([\w.]+)=\s*([\d.]+)", rows[0]))
        self.assertGreater(int(fields["n"]), 5)
        self.assertLessEqual(float(fields["p50"]), float(fields["max"]))

    def test_usage(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "fsync_probe.py"), "/tmp"],
                             capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("fsync_probe.py", out.stderr)


if __name__ == "__main__":
    unittest.main()
