#!/usr/bin/env python3
"""prom_check.py: checks a Prometheus text exposition (format 0.0.4), as p2psipd
writes it for `p2psipctl metrics` and GET /metrics, and compares it with what the
test expects.  Used by test_metrics.sh; no dependency beyond python3.

    prom_check.py FILE [--expect 'NAME{LABELS}=VALUE' ...]
        [--counters-from CTL DATA_DIR]

Checks of the format (any failure: a message on stderr, exit status 1):
  - every line is blank, a comment, or a sample `name{label="value",...} value`
    with a valid metric name, label names, escaped label values and a number;
  - every sample belongs to a family with a `# TYPE` line before it (a histogram's
    _bucket, _sum and _count belong to the histogram) and the family has a
    `# HELP` line; TYPE is given once per family; a family's samples are
    contiguous; no sample (name and labels) appears twice;
  - for each histogram and label set: `le` buckets in increasing order with
    non-decreasing (cumulative) counts, ending in le="+Inf", whose count equals
    _count; a _sum is present.
--expect: the sample NAME{LABELS} exists and has exactly VALUE (labels in any order).
--counters-from: the exposition's counters equal the daemon's `counters` (read with
  `CTL --data-dir DATA_DIR --json counters` and `... metrics`, until two
  readings of the counters taken around one of metrics agree, at most 50 times):
  every DHT per-type count (p2psip_dht_messages_total and _bytes_total by type and
  direction) and every other number outside "control" (which counts these very
  requests).  FILE is ignored for this comparison (the text read in the loop is
  used).
"""
import json
import math
import re
import subprocess
import sys

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Bad(Exception):
    pass


def parse_labels(text, lineno):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m or m.end() == pos:
            raise Bad("line %d: bad labels {%s}" % (lineno, text))
        if m.group(1) in labels:
            raise Bad("line %d: label %s twice" % (lineno, m.group(1)))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
        if m.group(3) == "" and pos < len(text):
            raise Bad("line %d: bad labels {%s}" % (lineno, text))
    return labels


def parse_value(v, lineno):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(v)
    except ValueError:
        raise Bad("line %d: value %r is not a number" % (lineno, v)) from None


def parse(text):
    """Returns {(name, frozenset(labels.items())): value} after checking the format."""
    types, helps, samples = {}, {}, {}
    done, current = set(), None
    for lineno, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.match(name):
                    raise Bad("line %d: bad metric name %r" % (lineno, name))
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise Bad("line %d: bad TYPE line" % lineno)
                    if name in types:
                        raise Bad("line %d: TYPE of %s given twice" % (lineno, name))
                    types[name] = parts[3]
                else:
                    if name in helps:
                        raise Bad("line %d: HELP of %s given twice" % (lineno, name))
                    helps[name] = parts[3] if len(parts) == 4 else ""
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise Bad("line %d: not a sample: %r" % (lineno, line))
        name, ltext, vtext = m.groups()
        labels = parse_labels(ltext or "", lineno)
        value = parse_value(vtext, lineno)
        family = name
        if name not in types:
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[: -len(suffix)]
                if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
                    family = base
                    break
            else:
                raise Bad("line %d: %s has no TYPE line before it" % (lineno, name))
        if family not in helps:
            raise Bad("line %d: %s has no HELP line" % (lineno, family))
        if family != current:
            if family in done:
                raise Bad("line %d: samples of %s are not together" % (lineno, family))
            if current is not None:
                done.add(current)
            current = family
        if types[family] == "histogram" and name.endswith("_bucket") and "le" not in labels:
            raise Bad("line %d: a bucket without le" % lineno)
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise Bad("line %d: sample %s{%s} twice" % (lineno, name, ltext))
        samples[key] = value
    check_histograms(types, samples)
    return samples


def check_histograms(types, samples):
    for family, t in types.items():
        if t != "histogram":
            continue
        series = {}
        for (name, labels), value in samples.items():
            if name != family + "_bucket":
                continue
            d = dict(labels)
            le = parse_value(d.pop("le"), 0)
            series.setdefault(frozenset(d.items()), []).append((le, value))
        if not series:
            raise Bad("histogram %s has no buckets" % family)
        for labels, buckets in series.items():
            shown = "%s{%s}" % (family, ",".join("%s=%s" % kv for kv in sorted(labels)))
            buckets.sort()
            if not math.isinf(buckets[-1][0]):
                raise Bad("%s: no le=\"+Inf\" bucket" % shown)
            for (le0, c0), (le1, c1) in zip(buckets, buckets[1:]):
                if le0 == le1:
                    raise Bad("%s: bucket le=%g twice" % (shown, le0))
                if c1 < c0:
                    raise Bad("%s: bucket le=%g holds %g < %g below it" % (shown, le1, c1, c0))
            count = samples.get((family + "_count", labels))
            if count is None or (family + "_sum", labels) not in samples:
                raise Bad("%s: _count or _sum missing" % shown)
            if buckets[-1][1] != count:
                raise Bad("%s: +Inf bucket %g != _count %g" % (shown, buckets[-1][1], count))


def parse_expect(e):
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?=(\S+)$", e)
    if not m:
        raise Bad("bad --expect %r" % e)
    return (m.group(1), frozenset(parse_labels(m.group(2) or "", 0).items())), float(m.group(3))


def expected_from_counters(c):
    """The samples the counters object must appear as (metrics.c's naming)."""
    want = {}
    for t, v in c.get("types", {}).items():
        for d in ("sent", "recv"):
            lab = frozenset({"type": t, "dir": d}.items())
            want[("p2psip_dht_messages_total", lab)] = v[d]
            want[("p2psip_dht_message_bytes_total", lab)] = v[d + "_bytes"]
    for k, v in c.items():
        if isinstance(v, int) and not isinstance(v, bool):
            want[("p2psip_overlay_%s_total" % k, frozenset())] = v
        elif isinstance(v, dict) and k not in ("types", "control"):
            for k2, v2 in v.items():
                if isinstance(v2, int) and not isinstance(v2, bool):
                    want[("p2psip_%s_%s_total" % (k, k2), frozenset())] = v2
    return want


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=20).stdout


def compare_counters(ctl, data_dir):
    base = [ctl, "--data-dir", data_dir]
    for _ in range(50):
        c1 = json.loads(run(base + ["--json", "counters"]))
        text = run(base + ["metrics"])
        c2 = json.loads(run(base + ["--json", "counters"]))
        c1.pop("control", None)
        c2.pop("control", None)
        if c1 != c2:
            continue  # something moved in between: read again
        samples = parse(text)
        want = expected_from_counters(c1)
        if not any(k[0] == "p2psip_dht_messages_total" for k in want):
            raise Bad("the counters have no DHT message types")
        for key, v in want.items():
            got = samples.get(key)
            if got != v:
                raise Bad("%s{%s}: counters say %d, metrics %r" % (key[0], dict(key[1]), v, got))
        return len(want)
    raise Bad("the counters never held still for one reading")


def main(argv):
    try:
        if not argv:
            raise Bad(__doc__)
        with open(argv[0], encoding="utf-8") as f:
            samples = parse(f.read())
        i = 1
        while i < len(argv):
            if argv[i] == "--expect" and i + 1 < len(argv):
                key, v = parse_expect(argv[i + 1])
                got = samples.get(key)
                if got != v:
                    raise Bad("%s{%s} is %r, want %g" % (key[0], dict(key[1]), got, v))
                i += 2
            elif argv[i] == "--counters-from" and i + 2 < len(argv):
                n = compare_counters(argv[i + 1], argv[i + 2])
                print("prom_check: %d counters match" % n)
                i += 3
            else:
                raise Bad("bad argument %r" % argv[i])
    except Bad as e:
        print("prom_check: %s" % e, file=sys.stderr)
        return 1
    print("prom_check: %s: %d samples, format good" % (argv[0], len(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
