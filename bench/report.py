#!/usr/bin/env python3
"""Parse memcaslap (memaslap) or bench/loadgen output and summarise bench/run trials.

Used by bench/run; it generates no load itself.

  report.py parse FILE          one memcaslap or loadgen output -> key=value lines
  report.py summary TRIALS.TSV  all trials of a run -> the comparison tables

Percentiles: memcaslap prints no percentiles, only a base-2 histogram per
command type ("Log2 Dist"). Its bucket i counts the requests whose latency t
(microseconds, send of the request to end of the reply) has
2^(i-1) < t <= 2^i (bucket 0: t <= 1). A row "   8:  a b c d" holds buckets
8, 9, 10 and 11. The p-th percentile is taken in the bucket where the
cumulative count reaches p% of all requests, interpolating linearly inside
the bucket, whose bounds are first narrowed to the run's observed Min and Max.
The true value lies in the same bucket, so the estimate is off by less than
a factor of 2 and is mainly good for comparing two runs of equal shape.

bench/loadgen computes its percentiles itself from a finer histogram (32
sub-buckets per power of two) and prints them on a "Latency us:" line; those
are taken as they are.
"""

import math
import statistics
import sys

SECTIONS = ("Get", "Set", "Total")
QUANTILES = ((0.50, "p50"), (0.99, "p99"), (0.999, "p99.9"))
NOISY_PCT = 10  # 'other cpu' above this (% of one CPU) marks a trial as disturbed


def parse_memaslap(text):
    """Return a dict with the run totals and, per section, min/max/avg and histogram."""
    out = {"sections": {}}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        # "Get Statistics (427888 events)" starts a final summary block.
        head = line.split(" Statistics (")
        if len(head) == 2 and head[0] in SECTIONS and line.endswith("events)"):
            name = head[0]
            sec = {"events": int(head[1].split()[0]), "dist": {}}
            i += 1
            while i < len(lines) and lines[i].strip():
                field = lines[i].strip()
                key, _, rest = field.partition(":")
                if key in ("Min", "Max", "Avg", "Geo", "Std"):
                    sec[key.lower()] = float(rest)
                elif key == "Log2 Dist":
                    i += 1
                    while i < len(lines) and lines[i].strip():
                        label, _, counts = lines[i].strip().partition(":")
                        base = int(label)
                        for k, c in enumerate(counts.split()):
                            sec["dist"][base + k] = int(c)
                        i += 1
                    break
                i += 1
            out["sections"][name] = sec
        elif line.startswith("Run time:"):
            # memcaslap: "Run time: 3.0s Ops: 475479 TPS: 158371 Net_rate: 177.2M/s"
            # loadgen:   "Run time: 3.00s Ops: 475479 TPS: 158371 Misses: 0 Errors: 0"
            f = line.split()
            out["runtime"] = float(f[2].rstrip("s"))
            out["ops"] = int(f[4])
            out["tps"] = int(float(f[6]))
            if len(f) >= 9 and f[7] == "Misses:":
                out["get_misses"] = int(f[8])
        elif line.startswith("Latency us:"):
            # loadgen: "Latency us: min=12.0 p50=45.1 ... p99.9=800.1 max=5000.0 avg=50.3"
            out["latency"] = {k: float(v) for k, _, v in
                              (kv.partition("=") for kv in line.split()[2:])}
        elif line.startswith(("cmd_get:", "cmd_set:", "get_misses:")):
            key, _, val = line.partition(":")
            out[key] = int(val)
        i += 1
    return out


def percentile(sec, q):
    """Estimate the q-quantile (0<q<1) in microseconds from a Log2 histogram.

    Returns (estimate, bucket_low, bucket_high)."""
    dist = sec["dist"]
    total = sum(dist.values())
    if total == 0:
        return None
    target = q * total
    cum = 0
    for b in sorted(dist):
        n = dist[b]
        if n == 0:
            continue
        if cum + n >= target:
            lo = 0.0 if b == 0 else float(2 ** (b - 1))
            hi = float(2 ** b)
            lo_eff = max(lo, sec.get("min", lo))
            hi_eff = min(hi, sec.get("max", hi))
            if hi_eff < lo_eff:
                hi_eff = lo_eff
            frac = (target - cum) / n
            return (lo_eff + frac * (hi_eff - lo_eff), lo, hi)
        cum += n
    return None


# Which histogram gives a workload's latency: all requests, except for
# multi-get workloads, where it is the multi-get requests alone.
def latency_section(workload, parsed):
    if workload.startswith("mget") and "Get" in parsed["sections"]:
        return "Get"
    return "Total"


def cmd_parse(path):
    with open(path, errors="replace") as fh:
        p = parse_memaslap(fh.read())
    for k in ("runtime", "ops", "tps", "cmd_get", "cmd_set", "get_misses"):
        if k in p:
            print(f"{k}={p[k]}")
    for name, sec in p["sections"].items():
        for q, label in QUANTILES:
            r = percentile(sec, q)
            if r:
                print(f"{name.lower()}_{label}={r[0]:.0f} bucket=({r[1]:.0f},{r[2]:.0f}]")
        print(f"{name.lower()}_events={sec['events']} avg={sec.get('avg')} max={sec.get('max')}")
    for k, v in p.get("latency", {}).items():
        print(f"latency_{k}={v}")


def fmt_int(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_us(x):
    return "-" if x is None else f"{x:,.0f} us"


def fmt_mib(kb):
    return "-" if kb is None else f"{kb / 1024:,.1f} MiB"


def latencies(workload, p):
    """p50, p99, p99.9 in microseconds for one parsed output (None where unknown)."""
    if "latency" in p:
        lat = p["latency"]
        return tuple(lat.get(label) for _, label in QUANTILES)
    sec = p["sections"].get(latency_section(workload, p))
    if not sec or not sec["dist"]:
        return (None,) * len(QUANTILES)
    return tuple(percentile(sec, q)[0] for q, _ in QUANTILES)


def fmt_ratio(a, b):
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.2f}x"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def median_ci(xs, conf=0.95):
    """The median of xs and a distribution-free confidence interval for it (the sign test's
    order statistics): (median, low, high), or (median, None, None) when there are too few
    values for the interval (fewer than 6 at 95%)."""
    xs = sorted(x for x in xs if x is not None)
    n = len(xs)
    if n == 0:
        return (None, None, None)
    m = statistics.median(xs)
    # Largest k with P(Binomial(n, 1/2) < k) <= (1 - conf) / 2: then the true median lies
    # in [xs[k-1], xs[n-k]] with probability at least conf.
    tail = (1 - conf) / 2
    k, cdf = 0, 0.0
    while k < n:
        nxt = cdf + math.comb(n, k) / 2 ** n
        if nxt > tail:
            break
        cdf, k = nxt, k + 1
    if k == 0:
        return (m, None, None)
    return (m, xs[k - 1], xs[n - k])


def fmt_ci(ci):
    m, lo, hi = ci
    if m is None:
        return "-"
    if lo is None:
        return f"{m:.2f}x"
    return f"{m:.2f}x [{lo:.2f}-{hi:.2f}]"


def verdict(ci, higher_is_better):
    """'better' when the whole interval is on the better side of 1.00, 'worse' when on the
    worse side, 'level' when it holds 1.00 (or is too short to tell: '-')."""
    _, lo, hi = ci
    if lo is None:
        return "-"
    # On the bounds as printed, so a row never reads "[1.00-...] better".
    lo, hi = round(lo, 2), round(hi, 2)
    if lo > 1.0:
        return "better" if higher_is_better else "worse"
    if hi < 1.0:
        return "worse" if higher_is_better else "better"
    return "level"


def table(header, rows):
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]
    def line(r):
        cells = []
        for c, v in enumerate(r):
            cells.append(str(v).ljust(widths[c]) if c == 0 else str(v).rjust(widths[c]))
        return "| " + " | ".join(cells) + " |"
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def cmd_summary(tsv):
    # columns: workload side round outfile server_cpu_ticks clk_tck other_cpu_pct status
    # [peak_rss_kb] (older runs have no RSS column)
    trials = []
    with open(tsv) as fh:
        for raw in fh:
            if not raw.strip() or raw.startswith("#"):
                continue
            cols = raw.rstrip("\n").split("\t")
            w, side, rnd, path, ticks, hz, other, status = cols[:8]
            rss = cols[8] if len(cols) > 8 else "-"
            t = {"workload": w, "side": side, "round": int(rnd), "status": status,
                 "other": None if other in ("", "-") else int(other),
                 "rss": None if rss in ("", "-") else int(rss)}
            try:
                with open(path, errors="replace") as fh2:
                    p = parse_memaslap(fh2.read())
            except OSError:
                p = {"sections": {}}
            t["tps"] = p.get("tps")
            t["p50"], t["p99"], t["p999"] = latencies(w, p)
            t["misses"] = p.get("get_misses")
            ops = p.get("ops")
            cpu_s = int(ticks) / int(hz) if ticks not in ("", "-") else None
            t["cpu_us_op"] = cpu_s * 1e6 / ops if cpu_s is not None and ops else None
            if status != "ok" or t["tps"] is None:
                t["tps"] = t["p50"] = t["p99"] = t["p999"] = t["cpu_us_op"] = None
            trials.append(t)

    workloads = []
    for t in trials:
        if t["workload"] not in workloads:
            workloads.append(t["workload"])

    print("Per trial (in the order run):")
    rows = []
    for t in trials:
        rows.append([t["workload"], t["side"], t["round"], fmt_int(t["tps"]), fmt_us(t["p50"]),
                     fmt_us(t["p99"]), fmt_us(t["p999"]), fmt_mib(t["rss"]),
                     "-" if t["cpu_us_op"] is None else f"{t['cpu_us_op']:.2f}",
                     "-" if t["other"] is None else f"{t['other']}%",
                     fmt_int(t["misses"]), t["status"]])
    print(table(["workload", "server", "round", "ops/s", "p50", "p99", "p99.9", "peak RSS",
                 "srv cpu us/op", "other cpu", "get misses", "status"], rows))
    rerun = [t for t in trials if t["status"] == "noisy"]
    if rerun:
        print(f"{len(rerun)} trial(s) were disturbed (status noisy) and run again; the summary"
              " leaves them out")
    # Disturbed trials that were run again take no part in what follows.
    trials = [t for t in trials if t["status"] != "noisy"]
    noisy = [t for t in trials if t["other"] is not None and t["other"] > NOISY_PCT]
    if noisy:
        print(f"warning: in {len(noisy)} trial(s) other programs used more than {NOISY_PCT}% of a CPU"
              " ('other cpu'); their numbers are skewed, rerun on a quiet machine")
    print()

    main_rows, res_rows, pair_rows = [], [], []
    failed = False
    for w in workloads:
        agg = {}
        for side in ("ours", "C"):
            ts = [t for t in trials if t["workload"] == w and t["side"] == side]
            if any(t["status"] != "ok" for t in ts):
                failed = True
            agg[side] = {k: med([t[k] for t in ts])
                         for k in ("tps", "p50", "p99", "p999", "cpu_us_op")}
            agg[side]["best"] = max([t["tps"] for t in ts if t["tps"] is not None], default=None)
            # peak RSS: the largest over the trials (each trial's server is a new process)
            agg[side]["rss"] = max([t["rss"] for t in ts if t["rss"] is not None], default=None)
        o, c = agg["ours"], agg["C"]
        # Each round ran ours and then C back to back, so the ratio within a round is
        # the least disturbed by slow drifts of the machine.
        by_round = {}
        for t in trials:
            if t["workload"] == w and t["tps"] is not None:
                by_round.setdefault(t["round"], {})[t["side"]] = t
        def per_round(key):
            return [r["ours"][key] / r["C"][key] for r in by_round.values()
                    if "ours" in r and "C" in r and r["ours"][key] is not None
                    and r["C"][key]]
        paired = per_round("tps")
        tps_ci, p99_ci, cpu_ci = median_ci(paired), median_ci(per_round("p99")), \
            median_ci(per_round("cpu_us_op"))
        pair_rows.append([w, str(len(paired)), fmt_ci(tps_ci), verdict(tps_ci, True),
                          fmt_ci(p99_ci), verdict(p99_ci, False),
                          fmt_ci(cpu_ci), verdict(cpu_ci, False)])
        ahead = sum(1 for x in paired if x >= 1.0)
        main_rows.append([w, fmt_int(o["tps"]), fmt_int(c["tps"]), fmt_ratio(o["tps"], c["tps"]),
                          "-" if not paired else f"{med(paired):.2f}x",
                          f"{ahead}/{len(paired)}",
                          fmt_us(o["p50"]), fmt_us(c["p50"]), fmt_us(o["p99"]), fmt_us(c["p99"]),
                          fmt_us(o["p999"]), fmt_us(c["p999"])])
        res_rows.append([w, fmt_int(o["best"]), fmt_int(c["best"]),
                         "-" if o["cpu_us_op"] is None else f"{o['cpu_us_op']:.2f}",
                         "-" if c["cpu_us_op"] is None else f"{c['cpu_us_op']:.2f}",
                         fmt_ratio(o["cpu_us_op"], c["cpu_us_op"]),
                         fmt_mib(o["rss"]), fmt_mib(c["rss"]), fmt_ratio(o["rss"], c["rss"])])

    print("Summary (median over rounds; ratio = ours/C; for ops/s higher is better; paired:"
          " the median of each round's ours/C; ahead: rounds where ours >= C):")
    print(table(["workload", "ours ops/s", "C ops/s", "ratio", "paired", "ahead",
                 "ours p50", "C p50",
                 "ours p99", "C p99", "ours p99.9", "C p99.9"], main_rows))
    print()
    print("Best ops/s, server CPU time per operation (median) and server peak RSS (VmHWM, the"
          " largest over the rounds); ratios ours/C, lower is better:")
    print(table(["workload", "ours best ops/s", "C best ops/s", "ours cpu us/op", "C cpu us/op",
                 "cpu ratio", "ours peak RSS", "C peak RSS", "RSS ratio"], res_rows))
    print()
    print("Paired by round: the median of the rounds' ratios ours/C with its 95% confidence"
          " interval [low-high] (sign test), and what the interval says: better, worse, or"
          " level when it holds 1.00 ('-': under 6 rounds, too few to tell):")
    print(table(["workload", "rounds", "ops/s ours/C", "ops/s", "p99 ours/C", "p99",
                 "cpu/op ours/C", "cpu/op"], pair_rows))
    return 1 if failed else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "parse":
        cmd_parse(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "summary":
        return cmd_summary(argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
