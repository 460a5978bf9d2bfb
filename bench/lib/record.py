#!/usr/bin/env python3
"""Results file of bench/run: one JSON object per measured point and round (stdlib only).

    record.py FILE bench --round R --target T --point P --scenario S --clients C --backlog B
                         --rc RC --wall SECONDS --out BENCH_JSON --err STDERR [--set k=v]...
    record.py FILE redis  (same flags; --out is redis-benchmark's --csv output)
    record.py FILE pgbench (same flags; --out is pgbench's output, --log-dir its -l logs)
    record.py FILE note   --round R --target T --point P --set k=v...   (adds fields to a record)
    record.py FILE show   --round R --target T --point P                (one-line summary)
    record.py FILE get    --round R --target T --point P --field F      (a result field, or None)

A record: {"round", "target", "point", "scenario", "clients", "backlog", "tool", "status"
("ok" | "failed"), "wall_s", "error", "extra": {...}, "result": {ops_per_s, requests_per_s,
latency_ms: {p50, p99, p999, max}, ...}}. For `hematite bench` the result is its --json object
unchanged; for redis-benchmark it is built from the CSV (no p99.9 there: null).
"""

import argparse
import csv
import json
import sys


def parse_set(items):
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def find(records, a):
    for r in records:
        if r["round"] == a.round and r["target"] == a.target and r["point"] == a.point:
            return r
    return None


def tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return ""


def base(a, tool):
    return {
        "round": a.round,
        "target": a.target,
        "point": a.point,
        "scenario": a.scenario,
        "clients": a.clients,
        "backlog": a.backlog,
        "tool": tool,
        "wall_s": a.wall,
        "extra": parse_set(a.set),
        "status": "failed",
        "error": None,
        "result": None,
    }


def from_bench(a):
    rec = base(a, "hematite bench")
    text = tail(a.out, 10**6)
    try:
        result = json.loads(text.splitlines()[-1]) if text else None
    except ValueError:
        result = None
    if a.rc == 0 and isinstance(result, dict):
        rec["status"] = "ok"
        rec["result"] = result
    else:
        reason = "timed out" if a.rc == 124 else f"exit status {a.rc}"
        rec["error"] = f"{reason}: {tail(a.err)}" if tail(a.err) else reason
        rec["result"] = result
    return rec


def from_redis(a):
    rec = base(a, "redis-benchmark")
    rows = []
    try:
        with open(a.out) as f:
            rows = list(csv.DictReader(f))
    except OSError:
        pass
    if a.rc == 0 and rows:
        row = rows[0]
        n = rec["extra"].get("requests_sent")
        rps = float(row["rps"])
        rec["status"] = "ok"
        rec["result"] = {
            "scenario": a.scenario,
            "clients": a.clients,
            "message_size": 1024,
            "ops": n,
            "ops_per_s": rps,
            "requests_per_s": rps,
            "duration_s": (n / rps) if n and rps else None,
            "errors": 0,
            "latency_ms": {
                "p50": float(row["p50_latency_ms"]),
                "p99": float(row["p99_latency_ms"]),
                "p999": None,
                "max": float(row["max_latency_ms"]),
            },
            "redis_test": row["test"],
        }
    else:
        rec["error"] = f"exit status {a.rc}: {tail(a.err)}"
    return rec


def from_pgbench(a):
    """pgbench's tps, and latency percentiles from its per-transaction logs (-l: the third
    field is the latency in µs)."""
    import glob
    import os

    rec = base(a, "pgbench")
    text = tail(a.out, 10**6)
    tps = None
    for line in text.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
    lat = []
    for path in glob.glob(os.path.join(a.log_dir or "", "*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else None
    if a.rc == 0 and tps:
        per = rec["extra"].get("messages_per_transaction", 1)
        rec["status"] = "ok"
        rec["result"] = {
            "scenario": a.scenario,
            "clients": a.clients,
            "message_size": 1024,
            "ops": len(lat) * per,
            "ops_per_s": tps * per,
            "requests_per_s": tps,
            "errors": 0,
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
                           "max": lat[-1] if lat else None},
        }
    else:
        rec["error"] = f"exit status {a.rc}: {tail(a.err) or tail(a.out)}"
    return rec


def summary(r):
    if r is None:
        return "no record"
    if r["status"] != "ok":
        return f"FAILED ({r['error']})"
    res = r["result"]
    lat = res.get("latency_ms") or {}
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    s = f"{res['ops_per_s']:.1f} ops/s, p50 {fmt(lat.get('p50'))} ms, p99 {fmt(lat.get('p99'))} ms"
    if res.get("errors"):
        s += f", {res['errors']} errors"
    if res.get("prefill_per_s"):
        s += f" (prefill {res['prefill']} at {res['prefill_per_s']:.0f}/s)"
    return s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("cmd", choices=["bench", "redis", "pgbench", "note", "show", "get"])
    p.add_argument("--log-dir")
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--point", required=True)
    p.add_argument("--scenario")
    p.add_argument("--clients", type=int)
    p.add_argument("--backlog", type=int)
    p.add_argument("--rc", type=int, default=0)
    p.add_argument("--wall", type=float)
    p.add_argument("--out")
    p.add_argument("--err")
    p.add_argument("--field")
    p.add_argument("--set", action="append")
    a = p.parse_args()

    records = read(a.file)
    if a.cmd in ("bench", "redis", "pgbench"):
        rec = {"bench": from_bench, "redis": from_redis, "pgbench": from_pgbench}[a.cmd](a)
        with open(a.file, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    elif a.cmd == "note":
        rec = find(records, a)
        if rec is None:
            sys.exit(f"record.py: no record for {a.round}/{a.target}/{a.point}")
        rec["extra"].update(parse_set(a.set))
        write(a.file, records)
    elif a.cmd == "show":
        print(summary(find(records, a)))
    elif a.cmd == "get":
        rec = find(records, a)
        ok = rec is not None and rec["status"] == "ok"
        print(rec["result"].get(a.field) if ok else None)


if __name__ == "__main__":
    main()
