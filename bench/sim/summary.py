#!/usr/bin/env python3
"""Markdown summary of several hyperaccel-sim JSON results (one per seed): per policy the mean and
standard deviation over the seeds, and each policy's mean wait relative to binpack's on the same
seed. Usage: bench/sim/summary.py seed-1.json seed-2.json ..."""
import json
import statistics
import sys


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    policies = [p["policy"] for p in runs[0]["policies"]]
    by = {name: [next(p for p in r["policies"] if p["policy"] == name) for r in runs] for name in policies}

    def stat(values, scale=1.0, fmt="{:.1f}"):
        values = [v * scale for v in values]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return (fmt + " ± " + fmt).format(statistics.mean(values), sd)

    print("| policy | linked pods | gangs in one link domain (of those that fit one) | gangs in one rack "
          "| mean wait (min) | p95 wait (min) | mean gang wait (min) | mean wait vs binpack | fragmentation |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = by.get("binpack")
    for name in policies:
        rs = by[name]
        rel = "reference" if name == "binpack" else ""
        if base and name != "binpack":
            ratios = [r["wait_mean_s"] / b["wait_mean_s"] - 1 for r, b in zip(rs, base) if b["wait_mean_s"] > 0]
            if ratios:
                rel = "{:+.0f} % (from {:+.0f} to {:+.0f} %)".format(
                    100 * statistics.mean(ratios), 100 * min(ratios), 100 * max(ratios))
        print("| {} | {} % | {} % | {} % | {} | {} | {} | {} | {} % |".format(
            name,
            stat([r["linked_rate"] for r in rs], 100),
            stat([r["gang_fit_domain_rate"] for r in rs], 100),
            stat([r["gang_rack_rate"] for r in rs], 100),
            stat([r["wait_mean_s"] for r in rs], 1 / 60),
            stat([r["wait_p95_s"] for r in rs], 1 / 60),
            stat([r["gang_wait_mean_s"] for r in rs], 1 / 60),
            rel,
            stat([r["fragmentation_mean"] for r in rs], 100)))
    print()
    print("Mean ± standard deviation over {} seeds ({}).".format(
        len(runs), ", ".join(str(r["run"]["seed"]) for r in runs)))


if __name__ == "__main__":
    main(sys.argv[1:])
