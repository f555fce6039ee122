# overlay_summary.py: median and range over several runs of bench/bench_overlay.sh.
#
#   python3 bench/overlay_summary.py OUT1 OUT2 OUT3 ...
#
# Each OUT is a file holding a run's standard output (its last line is the run's JSON
# object).  Prints one markdown table: every figure as "median [min - max]" over the
# runs, p2psipd beside dhtnode.  The median of an even number of runs is the mean of
# the two middle ones.  Never asserts anything.
import json, sys


def load(path):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit("%s: no JSON line (did the run end?)" % path)
    return json.loads(lines[-1])


def get(r, path):
    v = r
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def stat(vals, nd):
    v = sorted(x for x in vals if x is not None)
    if not v:
        return "-"
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0
    f = "%." + str(nd) + "f"
    if v[0] == v[-1]:
        return f % med
    return (f + " [" + f + " - " + f + "]") % (med, v[0], v[-1])


ROWS = [
    # (label, p2psipd path, dhtnode path, decimals, target)
    ("get p50, no churn (ms)", "p2psipd.get_p50", "dhtnode.get_p50", 2, ""),
    ("get p99, no churn (ms)", "p2psipd.get_p99", "dhtnode.get_p99", 2, "<= 0.5 x dhtnode"),
    ("get p99 ratio p2psipd / dhtnode", "ratio.get_p99", None, 2, "<= 0.50"),
    ("gets failed of 3000, no churn", "p2psipd.get_failed", "dhtnode.get_failed", 0, ""),
    ("control-socket ping p50 (ms)", "p2psipd.ctl_ping_p50", None, 2, ""),
    ("control-socket ping p99 (ms)", "p2psipd.ctl_ping_p99", None, 2, ""),
    ("put p50, no churn (ms)", "p2psipd.put_p50", "dhtnode.put_p50", 2, ""),
    ("put p99, no churn (ms)", "p2psipd.put_p99", "dhtnode.put_p99", 2, "<= 3 ms"),
    ("puts failed of 500, no churn", "p2psipd.put_failed", "dhtnode.put_failed", 0, ""),
    ("RSS per node, median (MiB)", "p2psipd.rss_mib_median", "dhtnode.rss_mib_median", 2,
     "<= 4 MiB"),
    ("PSS per node, median (MiB)", "p2psipd.pss_mib_median", "dhtnode.pss_mib_median", 2, ""),
    ("USS per node, median (MiB)", "p2psipd.uss_mib_median", "dhtnode.uss_mib_median", 2, ""),
    ("idle, sent per node on the wire (B/s)", "p2psipd.idle_wire_Bps_mean",
     "dhtnode.idle_wire_Bps_mean", 0, ""),
    ("idle, UDP payload sent per node (B/s)", "p2psipd.idle_bytes_out_Bps", None, 0,
     "<= 300 B/s"),
    ("idle, of which DHT maintenance (B/s)", "p2psipd.idle_maint_Bps", None, 0, ""),
    ("idle, frames sent per node per s", "p2psipd.idle_frames_out_per_s", None, 2, ""),
    ("failure out of every leaf set (s)", "p2psipd.detect.all_s", None, 2, "<= 10 s"),
    ("churn: nodes killed and replaced", "p2psipd.churn_kills", "dhtnode.churn_kills", 0, ""),
    ("churn: gets succeeded (%)", "p2psipd.churn_get_ok_pct", "dhtnode.churn_get_ok_pct", 2,
     ">= 99.9 %"),
    ("churn: get p50 (ms)", "p2psipd.churn_get_p50", "dhtnode.churn_get_p50", 2, ""),
    ("churn: get p99 (ms)", "p2psipd.churn_get_p99", "dhtnode.churn_get_p99", 2, "<= 300 ms"),
    ("churn: puts failed of 240", "p2psipd.churn_put_failed", "dhtnode.churn_put_failed", 0, ""),
    ("churn: put p99 (ms)", "p2psipd.churn_put_p99", "dhtnode.churn_put_p99", 0, ""),
    ("CPU, steady p2psipd phase (% of a core)", "cpu_steady_p2psipd.p2psipd",
     "cpu_steady_p2psipd.dhtnode", 1, ""),
    ("CPU, steady dhtnode phase (% of a core)", "cpu_steady_dhtnode.p2psipd",
     "cpu_steady_dhtnode.dhtnode", 1, ""),
    ("CPU, idle (% of a core)", "cpu_idle.p2psipd", "cpu_idle.dhtnode", 1, ""),
    ("CPU, churn (% of a core)", "cpu_churn.p2psipd", "cpu_churn.dhtnode", 1, ""),
    ("CPU of others on the machine, steady p2psipd phase (% of a core)",
     "cpu_steady_p2psipd.others", None, 0, ""),
    ("CPU of others on the machine, steady dhtnode phase (% of a core)",
     "cpu_steady_dhtnode.others", None, 0, ""),
    ("CPU of others on the machine, churn (% of a core)", "cpu_churn.others", None, 0, ""),
    ("CPU of the driver, churn (% of a core)", "cpu_churn.driver", None, 1, ""),
]


def main():
    runs = [load(p) for p in sys.argv[1:]]
    for r in runs:
        p, d = get(r, "p2psipd.get_p99"), get(r, "dhtnode.get_p99")
        r["ratio"] = {"get_p99": p / d if p is not None and d else None}
    print("%d runs" % len(runs))
    print()
    print("| measure | p2psipd | dhtnode 2.4.12 | target |")
    print("|---|---:|---:|---|")
    for label, pp, dp, nd, target in ROWS:
        pv = stat([get(r, pp) for r in runs], nd)
        dv = stat([get(r, dp) for r in runs], nd) if dp else "-"
        print("| %s | %s | %s | %s |" % (label, pv, dv, target))


if __name__ == "__main__":
    main()
