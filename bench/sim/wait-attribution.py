#!/usr/bin/env python3
"""Who took the cards while jobs of one pod size waited: reads the job log of hyperaccel-sim
(--job-log) and prints, per policy, for the jobs of the chosen cards per task that waited (started
after they arrived): how many waited, their mean wait, the share of their wait spent by gangs, and
per waiting job the cards started while it waited, by jobs that arrived before it (with more cards
per task than it, and with as many or fewer) and by jobs that arrived after it.
A job started "while it waited" starts strictly after the waiting job's arrival and strictly before
its start. Cards of a job = tasks x cards per task.
Usage: bench/sim/wait-attribution.py JOB_LOG.csv [--cards K]   (K = 4 by default)"""
import bisect
import csv
import sys


def load(path):
    by_policy = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                try:
                    job = {
                        "tasks": int(row["tasks"]),
                        "k": int(row["cards_per_task"]),
                        "arrival": float(row["arrival_s"]),
                        "start": float(row["start_s"]),
                    }
                    policy = row["policy"]
                except (KeyError, TypeError, ValueError) as e:
                    sys.exit(f"{path}:{reader.line_num}: not a hyperaccel-sim job log line ({e!r})")
                by_policy.setdefault(policy, []).append(job)
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    return by_policy


def attribute(jobs, k):
    started = sorted((j for j in jobs if j["start"] >= 0), key=lambda j: j["start"])
    starts = [j["start"] for j in started]
    waiting = [j for j in jobs if j["k"] == k and j["start"] > j["arrival"]]
    out = {"waiting": len(waiting), "mean_wait_s": 0.0, "gang_share": 0.0,
           "older_larger": 0.0, "older_not_larger": 0.0, "newer": 0.0}
    if not waiting:
        return out
    total = gang = 0.0
    for w in waiting:
        wait = w["start"] - w["arrival"]
        total += wait
        if w["tasks"] > 1:
            gang += wait
        lo = bisect.bisect_right(starts, w["arrival"])
        hi = bisect.bisect_left(starts, w["start"])
        for other in started[lo:hi]:
            cards = other["tasks"] * other["k"]
            if other["arrival"] < w["arrival"]:
                out["older_larger" if other["k"] > k else "older_not_larger"] += cards
            else:
                out["newer"] += cards
    n = len(waiting)
    out["mean_wait_s"] = total / n
    out["gang_share"] = gang / total if total > 0 else 0.0
    for key in ("older_larger", "older_not_larger", "newer"):
        out[key] /= n
    return out


def main(argv):
    k = 4
    args = list(argv)
    if "--cards" in args:
        i = args.index("--cards")
        if i + 1 >= len(args) or not args[i + 1].isdigit() or int(args[i + 1]) < 1:
            sys.exit("--cards needs a number of cards per task (1 or more)")
        k = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    print(f"Jobs of {k}-card pods that waited; cards started while each waited (mean per waiting job)")
    print()
    print("| policy | waiting jobs | mean wait (min) | gangs' share of the wait | older jobs, more cards per "
          "task | older jobs, as many or fewer | newer jobs |")
    print("|---|---|---|---|---|---|---|")
    for policy, jobs in load(args[0]).items():
        a = attribute(jobs, k)
        print(f"| {policy} | {a['waiting']} | {a['mean_wait_s'] / 60:.2f} | {100 * a['gang_share']:.1f} % | "
              f"{a['older_larger']:.1f} | {a['older_not_larger']:.1f} | {a['newer']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
