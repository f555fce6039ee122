# p2psip_summary.py: median and range over several runs of bench/bench_p2psip.sh.
#
#   python3 bench/p2psip_summary.py OUT1 OUT2 OUT3 ...
#
# Each OUT is a file holding a run's standard output (its last line is the run's JSON
# object, whose keys are "system.step.figure").  Prints one markdown table: every
# figure as "median [min - max]" over the runs, p2psipd beside kamailio, with the
# ratio of the two computed per run.  Reading and the median are overlay_summary.py's
# (the median of an even number of runs is the mean of the two middle ones).  Never
# asserts anything.
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overlay_summary import load, stat  # noqa: E402

ROWS = [
    # (label, p2psipd key, kamailio key, decimals, target)
    ("call setup INVITE-180 p50 (ms)", "p2psipd.call.p50", "kamailio.call.p50", 2, ""),
    ("call setup INVITE-180 p99 (ms)", "p2psipd.call.p99", "kamailio.call.p99", 2,
     "p2psipd <= 10 ms"),
    ("calls failed", "p2psipd.call.failed", "kamailio.call.failed", 0, "0"),
    ("calls whose 180 came first", "p2psipd.call.got_180_first",
     "kamailio.call.got_180_first", 0, ""),
    ("caller node: INVITE in to 18x out, p99 bucket (ms)", "p2psipd.call.node_p99_le", None, 0,
     ""),
    ("caller node: DHT get, p99 bucket (ms)", "p2psipd.call.get_p99_le", None, 1, ""),
    ("REGISTER-200 p50 (ms)", "p2psipd.register.p50", "kamailio.register.p50", 2, ""),
    ("REGISTER-200 p99 (ms)", "p2psipd.register.p99", "kamailio.register.p99", 2,
     "p2psipd <= 3 ms"),
    ("REGISTERs failed", "p2psipd.register.failed", "kamailio.register.failed", 0, "0"),
    ("registrar node: REGISTER in to 200 out, p99 bucket (ms)", "p2psipd.register.node_p99_le",
     None, 0, ""),
    ("registrar node: its quorum put, p99 bucket (ms)", "p2psipd.register.put_p99_le", None, 0,
     ""),
    ("flood: REGISTERs failed", "p2psipd.flood.failed", "kamailio.flood.failed", 0,
     "p2psipd 0"),
    ("flood: of which answered 503", "p2psipd.flood.answered_503",
     "kamailio.flood.answered_503", 0, ""),
    ("flood: achieved REGISTER/s", "p2psipd.flood.rate", "kamailio.flood.rate", 0, ""),
    ("flood: sipp run (s)", "p2psipd.flood.seconds", "kamailio.flood.seconds", 1, ""),
    ("flood: flooded node's puts attempted", "p2psipd.flood.node_puts", None, 0, ""),
    ("flood: of which failed after starting", "p2psipd.flood.node_puts_failed", None, 0, ""),
    ("flood: flooded node's put p50 bucket (ms)", "p2psipd.flood.put_p50_le", None, 0, ""),
    ("flood: flooded node's put p99 bucket (ms)", "p2psipd.flood.put_p99_le", None, 0, ""),
    ("CPU per call (ms): caller + callee node / proxy", "p2psipd.call.cpu_ms",
     "kamailio.call.cpu_ms", 3, "<= 1.0 x"),
    ("CPU per call ratio", "ratio.cpu", None, 2, "<= 1.00"),
    ("CPU per call, all nodes of the ring (ms)", "p2psipd.call.ring_cpu_ms", None, 3, ""),
    ("idle CPU, caller + callee node / proxy (% of a core)", "p2psipd.idle_cpu_pct",
     "kamailio.idle_cpu_pct", 1, ""),
    ("idle CPU, all nodes of the ring (% of a core)", "p2psipd.ring_idle_cpu_pct", None, 1, ""),
    ("ring grown in (s)", "p2psipd.ring_seconds", None, 0, ""),
]


def num(r, key):
    v = r.get(key)
    if v == "inf":
        return float("inf")
    return v if isinstance(v, (int, float)) else None


def main():
    runs = [load(p) for p in sys.argv[1:]]
    for r in runs:
        p, k = num(r, "p2psipd.call.cpu_ms"), num(r, "kamailio.call.cpu_ms")
        r["ratio.cpu"] = p / k if p is not None and k else None
    print("%d runs" % len(runs))
    print()
    print("| measure | p2psipd | kamailio | target |")
    print("|---|---:|---:|---|")
    for label, pk, kk, nd, target in ROWS:
        pv = stat([num(r, pk) for r in runs], nd)
        kv = stat([num(r, kk) for r in runs], nd) if kk else "-"
        print("| %s | %s | %s | %s |" % (label, pv, kv, target))


if __name__ == "__main__":
    main()
