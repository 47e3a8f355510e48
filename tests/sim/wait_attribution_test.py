#!/usr/bin/env python3
"""bench/sim/wait-attribution.py on a hand-worked job log (values worked out in the comments)."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "sim",
                      "wait-attribution.py")

# Policy p: A (2 x 8 cards) arrived at 0, started at 10; B (1 x 2) arrived 1, started 12; X (1 x 8)
# never started; W1 (2 x 4, a gang) arrived 5, started 20; N (1 x 1) arrived 6, started 15; W2
# (1 x 4) arrived 8, started 13; Z (1 x 4) arrived and started at 30. Policy q: W1 without a wait.
LOG = """policy,job_id,tasks,cards_per_task,priority,arrival_s,start_s,run_s
p,A,2,8,0,0.000,10.000,5.000
p,B,1,2,0,1.000,12.000,5.000
p,X,1,8,0,2.000,-1.000,-1.000
p,W1,2,4,0,5.000,20.000,5.000
q,W1,2,4,0,5.000,5.000,5.000
p,N,1,1,0,6.000,15.000,5.000
p,W2,1,4,0,8.000,13.000,5.000
p,Z,1,4,0,30.000,30.000,5.000
"""

HEADER = ("| policy | waiting jobs | mean wait (min) | gangs' share of the wait | older jobs, more cards per "
          "task | older jobs, as many or fewer | newer jobs |")


class WaitAttributionTest(unittest.TestCase):
    def run_script(self, *args):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write(LOG)
        try:
            return subprocess.run([sys.executable, SCRIPT, f.name, *args], capture_output=True, text=True,
                                  check=False)
        finally:
            os.unlink(f.name)

    def test_four_card_jobs(self):
        # Waiting 4-card jobs of p: W1 (5..20, 15 s, a gang) and W2 (8..13, 5 s); Z did not wait.
        # Mean wait 10 s = 0.17 min; gangs' share 15 / 20. Started while W1 waited: A (older, 8 cards
        # per task: 16 cards), B (older, 2 cards), W2 (newer: 4), N (newer: 1); while W2 waited: A
        # and B. Per waiting job: (16 + 16) / 2, (2 + 2) / 2, (5 + 0) / 2. q's W1 never waited.
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "Jobs of 4-card pods that waited; cards started while each waited (mean per waiting job)",
            "",
            HEADER,
            "|---|---|---|---|---|---|---|",
            "| p | 2 | 0.17 | 75.0 % | 16.0 | 2.0 | 2.5 |",
            "| q | 0 | 0.00 | 0.0 % | 0.0 | 0.0 | 0.0 |",
        ])

    def test_other_size_and_never_started(self):
        # 8-card jobs of p: A waited 10 s (nothing started before it did); X never started and does
        # not count as waiting.
        r = self.run_script("--cards", "8")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("| p | 1 | 0.17 | 100.0 % | 0.0 | 0.0 | 0.0 |", r.stdout.splitlines())

    def test_usage_errors(self):
        r = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Usage:", r.stderr)
        for bad in (["--cards"], ["--cards", "four"], ["--cards", "0"]):
            r = self.run_script(*bad)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("--cards needs a number of cards per task", r.stderr)
        r = subprocess.run([sys.executable, SCRIPT, "/nonexistent/jobs.csv"], capture_output=True, text=True,
                           check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/jobs.csv: No such file or directory", r.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("policy,job_id,tasks\np,a,two\n")
        try:
            r = subprocess.run([sys.executable, SCRIPT, f.name], capture_output=True, text=True, check=False)
        finally:
            os.unlink(f.name)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(":2: not a hyperaccel-sim job log line", r.stderr)
        self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()
