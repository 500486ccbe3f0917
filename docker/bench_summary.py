"""Summarizes docker/bench-pgbench.sh's runs: per workload, the median TPS of each target,
the ratios to direct and to PgBouncer, and the proxies' median CPU µs per transaction.

Input lines: workload target tps transactions cpu_ticks (ticks of the proxy process
during the run; 0 for direct)."""
import statistics
import sys
from collections import defaultdict


def main(path, ticks_per_second):
    runs = defaultdict(list)
    for line in open(path):
        workload, target, tps, txns, ticks = line.split()
        cpu_us = int(ticks) / ticks_per_second * 1e6 / max(int(txns), 1)
        runs[workload, target].append((float(tps), cpu_us))
    workloads = list(dict.fromkeys(w for w, _ in runs))
    print(f"{'workload':<16} {'direct tps':>10} {'pgshard/direct':>14} {'pgbouncer/direct':>16}"
          f" {'pgshard/pgbouncer':>17} {'pgshard µs/txn':>14} {'pgbouncer µs/txn':>16}")
    for workload in workloads:
        tps, cpu = {}, {}
        for target in ("direct", "pgshard", "pgbouncer"):
            if (workload, target) in runs:
                tps[target] = statistics.median(t for t, _ in runs[workload, target])
                cpu[target] = statistics.median(c for _, c in runs[workload, target])
        d, p, b = tps.get("direct"), tps.get("pgshard"), tps.get("pgbouncer")
        fmt = lambda x, y: f"{x / y:.2f}" if x and y else "—"
        us = lambda t: f"{cpu[t]:.1f}" if t in cpu else "—"
        print(f"{workload:<16} {d or 0:>10.0f} {fmt(p, d):>14} {fmt(b, d):>16} {fmt(p, b):>17}"
              f" {us('pgshard'):>14} {us('pgbouncer'):>16}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
