#!/usr/bin/env python3
"""Turns one bench/run into docs/benchmarks.md, docs/benchmarks.png (gnuplot) and
docs/bench-results/latest.json (stdlib only).

    report.py --results results.jsonl --meta meta.json --out DIR [--workdir SCRATCH]

Aggregation: every figure is the median over rounds of that point on that target. Every ratio is
computed within a round (the two figures were measured minutes apart) and then the median over
rounds is taken; the per-round values are shown next to it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

TARGETS = {
    "hematite-durable": "Hematite, durable",
    "hematite-memory": "Hematite, in-memory",
    "azurite": "Azurite",
    "redis": "Redis, appendfsync always",
    "nginx": "nginx 204 (HTTP ceiling)",
    "sb-durable": "Hematite, durable, AMQP",
    "sb-memory": "Hematite, in-memory, AMQP",
    "rabbitmq": "RabbitMQ, quorum queue, AMQP 1.0",
    "hematite-pg": "Hematite on PostgreSQL, 1 node",
    "hematite-pg2": "Hematite on PostgreSQL, 2 nodes",
    "pgbench": "pgbench, one row per statement",
}
TARGET_ORDER = list(TARGETS)


def k(n):
    """1000 -> 1k, 100000 -> 100k, 1000000 -> 1M."""
    if n is None:
        return "?"
    n = int(n)
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def num(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ms(v):
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f}×"
    if v >= 10:
        return f"{v:.1f}×"
    return f"{v:.2f}×"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Run:
    def __init__(self, records, meta):
        self.records = records
        self.meta = meta
        self.rounds = sorted({r["round"] for r in records})
        s = meta["settings"]
        self.small, self.deep, self.huge = s["backlog_small"], s["backlog_deep"], s["backlog_huge"]
        self.az_deep = s["backlog_azurite_deep"]

    def rec(self, rnd, target, point):
        for r in self.records:
            if r["round"] == rnd and r["target"] == target and r["point"] == point:
                return r
        return None

    def ok(self, target, point):
        return [
            r for r in self.records
            if r["target"] == target and r["point"] == point and r["status"] == "ok"
        ]

    def measured(self, target, point):
        return any(r["target"] == target and r["point"] == point for r in self.records)

    def value(self, rnd, target, point, field="ops_per_s"):
        r = self.rec(rnd, target, point)
        if r is None or r["status"] != "ok":
            return None
        if field in ("p50", "p99", "p999", "max"):
            return (r["result"].get("latency_ms") or {}).get(field)
        if field == "warmup_p99":
            return ((r["result"].get("warmup") or {}).get("latency_ms") or {}).get("p99")
        if field in ("steal_ms", "worst_steal_ms"):
            return (r["result"].get("host") or {}).get(field)
        return r["result"].get(field)

    def med(self, target, point, field="ops_per_s"):
        return median(self.value(n, target, point, field) for n in self.rounds)

    def spread(self, target, point):
        vals = [self.value(n, target, point) for n in self.rounds]
        vals = [v for v in vals if v is not None]
        if len(vals) < 2:
            return "—"
        return f"{num(min(vals))} – {num(max(vals))}"

    def ratio(self, num_tp, den_tp, num_field="ops_per_s", den_field="ops_per_s"):
        """Per-round ratios and their median."""
        per = []
        for n in self.rounds:
            a = self.value(n, *num_tp, num_field)
            b = self.value(n, *den_tp, den_field)
            per.append(a / b if a is not None and b else None)
        return median(per), per


def point_label(point, run, target=None):
    backlog = None
    for r in run.records:
        if r["point"] == point and (target is None or r["target"] == target):
            backlog = r["backlog"]
            break
    labels = {
        "put-c1": "put, 1 client",
        "put-c16": "put, 16 clients",
        "put-c16-halfrate": "put, 16 clients, paced at ½ the durable max rate",
        "cycle-c1-small": f"receive+delete, 1 client, {k(backlog)} backlog",
        "cycle-c16-small": f"receive+delete, 16 clients, {k(backlog)} backlog",
        "cycle-c16-small-halfrate": f"receive+delete, 16 clients, {k(backlog)} backlog, paced at ½ the durable max rate",
        "cycle-c16-deep": f"receive+delete, 16 clients, {k(backlog)} backlog",
        "cycle-c16-azdeep": f"receive+delete, 16 clients, {k(backlog)} backlog",
        "cycle-c16-huge": f"receive+delete, 16 clients, {k(backlog)} backlog",
        "cycle-c16-huge-norefill": f"receive+delete, 16 clients, {k(backlog)} backlog, no refill",
        "sb-send-c16": "AMQP send, 16 links, 1 in flight",
        "sb-send-c16-if8": "AMQP send, 16 links, 8 in flight",
        "sb-send-c16-halfrate": "AMQP send, 16 links, paced at ½ the durable max rate",
        "sb-cycle-c16-small": f"AMQP receive+complete, 16 links, {k(backlog)} backlog",
        "sb-cycle-c16-huge": f"AMQP receive+complete, 16 links, {k(backlog)} backlog",
        "sb-cycle-c16-small-if8": f"AMQP receive+complete, 16 links, {k(backlog)} backlog, refills 8 in flight",
        "sb-rad-c16-small": f"AMQP receive-and-delete, 16 links, {k(backlog)} backlog",
        "pg-put-c16": "put, 16 clients",
        "pg-put-c64": "put, 64 clients",
        "pg-cycle-c16": "receive+delete, 16 clients",
        "pg-cycle-c64": "receive+delete, 64 clients",
    }
    return labels.get(point, point)


def figures_table(run, rows, unit="ops/s"):
    """rows: (target, point) pairs. One line each: median figures plus the spread over rounds."""
    out = [
        f"| target | what | {unit} (median) | range over rounds | p50 ms | p99 ms | p99.9 ms | max ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, point in rows:
        if not run.measured(target, point):
            continue
        oks = run.ok(target, point)
        failed = len([r for r in run.records if r["target"] == target and r["point"] == point]) - len(oks)
        if not oks:
            out.append(f"| {TARGETS[target]} | {point_label(point, run, target)} | failed | | | | | | |")
            continue
        errors = sum(r["result"].get("errors") or 0 for r in oks)
        err = str(errors) + (f" (+{failed} failed round)" if failed else "")
        out.append(
            f"| {TARGETS[target]} | {point_label(point, run, target)} | {num(run.med(target, point))} | "
            f"{run.spread(target, point)} | {ms(run.med(target, point, 'p50'))} | "
            f"{ms(run.med(target, point, 'p99'))} | {ms(run.med(target, point, 'p999'))} | "
            f"{ms(run.med(target, point, 'max'))} | {err} |"
        )
    return "\n".join(out)


def per_round(vals, fmt=ratio):
    return ", ".join(fmt(v) for v in vals)


def build(run):
    D, M, NG, RD, AZ = "hematite-durable", "hematite-memory", "nginx", "redis", "azurite"
    s = run.meta["settings"]
    az_backlog_label = k(run.az_deep)

    # ---- ratios -------------------------------------------------------------------------
    R = {}
    def add(key, label, num_tp, den_tp, num_field="ops_per_s", den_field="ops_per_s"):
        med, per = run.ratio(num_tp, den_tp, num_field, den_field)
        R[key] = {"label": label, "median": med, "per_round": per}

    add("put16_d_ceiling", "durable put ÷ HTTP ceiling (16 clients)", (D, "put-c16"), (NG, "put-c16"), "ops_per_s", "requests_per_s")
    add("put1_d_ceiling", "durable put ÷ HTTP ceiling (1 client)", (D, "put-c1"), (NG, "put-c1"), "ops_per_s", "requests_per_s")
    add("put16_m_ceiling", "in-memory put ÷ HTTP ceiling (16 clients)", (M, "put-c16"), (NG, "put-c16"), "ops_per_s", "requests_per_s")
    add("put16_d_redis", "durable put ÷ Redis-always LPUSH (16 clients)", (D, "put-c16"), (RD, "put-c16"))
    add("put1_d_redis", "durable put ÷ Redis-always LPUSH (1 client)", (D, "put-c1"), (RD, "put-c1"))
    add("put16_d_azurite", "durable put ÷ Azurite put (16 clients)", (D, "put-c16"), (AZ, "put-c16"))
    add("put1_d_azurite", "durable put ÷ Azurite put (1 client)", (D, "put-c1"), (AZ, "put-c1"))
    add("put16_d_m", "durable put ÷ in-memory put (16 clients)", (D, "put-c16"), (M, "put-c16"))
    add("cyc16_d_ceiling", f"durable receive+delete ({k(run.small)} backlog) ÷ HTTP ceiling running the same cycle, cycles/s (16 clients)", (D, "cycle-c16-small"), (NG, "cycle-c16-small"))
    add("cyc16_d_ceiling_req", f"durable receive+delete ({k(run.small)} backlog) cycles/s ÷ HTTP ceiling put requests/s (16 clients; the stricter reading)", (D, "cycle-c16-small"), (NG, "put-c16"), "ops_per_s", "requests_per_s")
    add("cyc16_m_ceiling", f"in-memory receive+delete ({k(run.small)} backlog) ÷ HTTP ceiling running the same cycle (16 clients)", (M, "cycle-c16-small"), (NG, "cycle-c16-small"))
    add("cyc16_d_redis", f"durable receive+delete ÷ Redis-always RPOP (16 clients, {k(run.small)} backlog)", (D, "cycle-c16-small"), (RD, "cycle-c16-small"))
    add("cyc1_d_redis", f"durable receive+delete ÷ Redis-always RPOP (1 client, {k(run.small)} backlog)", (D, "cycle-c1-small"), (RD, "cycle-c1-small"))
    add("cyc16nr_d_ceiling", f"durable receive+delete without refill ({k(run.huge)} backlog) ÷ HTTP ceiling (16 clients)", (D, "cycle-c16-huge-norefill"), (NG, "put-c16"), "ops_per_s", "requests_per_s")
    add("cyc16_d_azurite", f"durable receive+delete ÷ Azurite (16 clients, {k(run.small)} backlog)", (D, "cycle-c16-small"), (AZ, "cycle-c16-small"))
    add("cyc16deep_d_azurite", f"durable receive+delete at {k(run.deep)} ÷ Azurite at {az_backlog_label} (16 clients)", (D, "cycle-c16-deep"), (AZ, "cycle-c16-azdeep"))
    add("cyc16_d_m", f"durable receive+delete ÷ in-memory (16 clients, {k(run.small)} backlog)", (D, "cycle-c16-small"), (M, "cycle-c16-small"))
    add("huge_small_d", f"durable receive+delete: {k(run.huge)} backlog ÷ {k(run.small)} backlog", (D, "cycle-c16-huge"), (D, "cycle-c16-small"))
    add("huge_small_m", f"in-memory receive+delete: {k(run.huge)} backlog ÷ {k(run.small)} backlog", (M, "cycle-c16-huge"), (M, "cycle-c16-small"))
    add("deep_small_d", f"durable receive+delete: {k(run.deep)} backlog ÷ {k(run.small)} backlog", (D, "cycle-c16-deep"), (D, "cycle-c16-small"))
    add("deep_small_m", f"in-memory receive+delete: {k(run.deep)} backlog ÷ {k(run.small)} backlog", (M, "cycle-c16-deep"), (M, "cycle-c16-small"))

    # ---- targets ------------------------------------------------------------------------
    T = []
    def target(name, key, need, check, note=""):
        v = R[key]["median"] if key else None
        T.append({"target": name, "measured": v, "need": need,
                  "result": "NOT MEASURED" if v is None else ("PASS" if check(v) else "MISS"),
                  "per_round": R[key]["per_round"] if key else [], "note": note})

    target("durable put ≥ 0.5× the nginx ceiling (16 clients)", "put16_d_ceiling", "≥ 0.5×", lambda v: v >= 0.5)
    target("durable put above Redis with appendfsync always (16 clients)", "put16_d_redis", "> 1×", lambda v: v > 1)
    target(f"receive+delete ≥ 0.25× the ceiling, cycles/s (durable, 16 clients, {k(run.small)} backlog)",
           "cyc16_d_ceiling", "≥ 0.25×", lambda v: v >= 0.25,
           "the ceiling runs the same cycle against nginx (Get Messages answered with a canned "
           "message, Delete and the refill put with 204); each cycle is 3 requests, 3 durable writes "
           "on Hematite. Against the ceiling's put requests/s instead, the ratio is "
           + ratio(R["cyc16_d_ceiling_req"]["median"]))
    target("≥ 100× Azurite on put (durable, 16 clients)", "put16_d_azurite", "≥ 100×", lambda v: v >= 100)
    lower = run.az_deep < run.deep
    note = ""
    if lower:
        note = (f"Azurite measured at {az_backlog_label}, not {k(run.deep)}: its receive slows as the "
                f"backlog grows, so this is a lower bound of the ratio at {k(run.deep)}")
    target(f"≥ 1000× Azurite on receive+delete at a {k(run.deep)} backlog (durable, 16 clients)",
           "cyc16deep_d_azurite", "≥ 1000×", lambda v: v >= 1000, note)
    if lower and T[-1]["result"] == "MISS":
        T[-1]["result"] = "NOT SHOWN"
    target(f"receive+delete at a {k(run.huge)} backlog within 10% of a {k(run.small)} backlog (durable)",
           "huge_small_d", "≥ 0.90×", lambda v: v >= 0.9)
    # p99 at half the max rate: a latency, not a ratio.
    for point, what in (("put-c16-halfrate", "put"), ("cycle-c16-small-halfrate", "receive+delete")):
        p99 = run.med(D, point, "p99")
        rates = [run.value(n, D, point, "rate") for n in run.rounds]
        per = [run.value(n, D, point, "p99") for n in run.rounds]
        warm = [run.value(n, D, point, "warmup_p99") for n in run.rounds]
        same_pace = [(name, [run.value(n, t, point, "p99") for n in run.rounds])
                     for t, name in ((M, "in-memory Hematite"), (NG, "the nginx ceiling"))]
        pace_parts = [", ".join(ms(v) for v in vals) + f" ms for {name}"
                      for name, vals in same_pace if any(v is not None for v in vals)]
        pace_note = "; at the same pace, p99 was " + " and ".join(pace_parts) if pace_parts else ""
        warm_note = ""
        if any(v is not None for v in warm):
            warm_note = (f"; in the {s.get('warmup_s') or 0:.0f} s warm-up before it (not counted) p99 was "
                         + ", ".join(ms(v) for v in warm) + " ms")
        steal = [(run.value(n, D, point, "steal_ms"), run.value(n, D, point, "worst_steal_ms"))
                 for n in run.rounds]
        steal_note = ""
        if any(t is not None for t, _ in steal):
            fmt = lambda v: "—" if v is None else f"{v:.0f}"
            steal_note = ("; the hypervisor took " + ", ".join(fmt(t) for t, _ in steal)
                          + " ms of CPU during it (worst 100 ms: "
                          + ", ".join(fmt(w) for _, w in steal) + " ms)")
        T.append({
            "target": f"p99 ≤ 5 ms at half the maximum rate (durable {what}, 16 clients)",
            "measured": p99, "need": "≤ 5 ms", "unit": "ms",
            "result": "NOT MEASURED" if p99 is None else ("PASS" if p99 <= 5 else "MISS"),
            "per_round": per,
            "note": "paced at " + ", ".join(num(r) for r in rates if r) + " ops/s (½ of that round's maximum)"
                    + warm_note + pace_note + steal_note,
        })

    return R, T


def build_servicebus(run):
    """Ratios and issue 13's targets for the Service Bus section."""
    D, SD, SM, RQ = "hematite-durable", "sb-durable", "sb-memory", "rabbitmq"
    R = {}
    def add(key, label, num_tp, den_tp):
        med, per = run.ratio(num_tp, den_tp)
        R[key] = {"label": label, "median": med, "per_round": per}
    add("send_rest", "AMQP send ÷ REST put (durable, 16 links / clients, 1 in flight each)", (SD, "sb-send-c16"), (D, "put-c16"))
    add("send8_rest", "AMQP send with 8 in flight per link ÷ REST put (durable, 16)", (SD, "sb-send-c16-if8"), (D, "put-c16"))
    add("send_rabbit", "AMQP send ÷ RabbitMQ quorum send (16 links, 1 in flight)", (SD, "sb-send-c16"), (RQ, "sb-send-c16"))
    add("send8_rabbit", "AMQP send ÷ RabbitMQ quorum send (16 links, 8 in flight)", (SD, "sb-send-c16-if8"), (RQ, "sb-send-c16-if8"))
    add("cycle_rest", f"AMQP receive+complete ÷ REST receive+delete cycle (durable, 16, {k(run.small)} backlog, refills 1 in flight)", (SD, "sb-cycle-c16-small"), (D, "cycle-c16-small"))
    add("cycle8_rest", f"AMQP receive+complete ÷ REST receive+delete cycle (durable, 16, {k(run.small)} backlog, refills 8 in flight)", (SD, "sb-cycle-c16-small-if8"), (D, "cycle-c16-small"))
    add("cycle_rabbit", f"AMQP receive+complete ÷ RabbitMQ quorum (16 links, {k(run.small)} backlog, refills 1 in flight)", (SD, "sb-cycle-c16-small"), (RQ, "sb-cycle-c16-small"))
    add("cycle8_rabbit", f"AMQP receive+complete ÷ RabbitMQ quorum (16 links, {k(run.small)} backlog, refills 8 in flight)", (SD, "sb-cycle-c16-small-if8"), (RQ, "sb-cycle-c16-small-if8"))
    add("rad_rabbit", f"AMQP receive-and-delete ÷ RabbitMQ quorum (16 links, {k(run.small)} backlog)", (SD, "sb-rad-c16-small"), (RQ, "sb-rad-c16-small"))
    add("cycle_huge_small", f"AMQP receive+complete: {k(run.huge)} backlog ÷ {k(run.small)} backlog (durable)", (SD, "sb-cycle-c16-huge"), (SD, "sb-cycle-c16-small"))
    add("send_d_m", "AMQP send: durable ÷ in-memory (16 links)", (SD, "sb-send-c16"), (SM, "sb-send-c16"))
    T = []
    def target(name, key, need, check, note=""):
        v = R[key]["median"]
        T.append({"target": name, "measured": v, "need": need,
                  "result": "NOT MEASURED" if v is None else ("PASS" if check(v) else "MISS"),
                  "per_round": R[key]["per_round"], "note": note})
    # A sender link pipelines (the SDKs' concurrent sends on one sender do), which an HTTP/1.1
    # connection cannot: the targets are read with 8 in flight per link, and the notes give
    # the one-in-flight figures, where both fronts wait for a group commit per message.
    one = lambda key: "with 1 in flight per link: " + ratio(R[key]["median"])
    target("send ≥ 2× Hematite REST put (durable, 16 links, 8 in flight per link)", "send8_rest", "≥ 2×",
           lambda v: v >= 2, one("send_rest"))
    target("send ≥ 2× RabbitMQ's quorum queue (16 links, 8 in flight per link)", "send8_rabbit", "≥ 2×",
           lambda v: v >= 2, one("send_rabbit"))
    target(f"receive+complete ≥ 2× the REST receive+delete cycle (durable, 16, {k(run.small)} backlog, refills 8 in flight)",
           "cycle8_rest", "≥ 2×", lambda v: v >= 2, "with refills 1 in flight: " + ratio(R["cycle_rest"]["median"]))
    target(f"receive+complete ≥ 2× RabbitMQ's quorum queue (16 links, {k(run.small)} backlog, refills 8 in flight)",
           "cycle8_rabbit", "≥ 2×", lambda v: v >= 2, "with refills 1 in flight: " + ratio(R["cycle_rabbit"]["median"]))
    target(f"receive+complete flat from a {k(run.small)} to a {k(run.huge)} backlog (within 10%)", "cycle_huge_small",
           "≥ 0.90×", lambda v: v >= 0.9)
    p99 = run.med(SD, "sb-send-c16-halfrate", "p99")
    rates = [run.value(n, SD, "sb-send-c16-halfrate", "rate") for n in run.rounds]
    per = [run.value(n, SD, "sb-send-c16-halfrate", "p99") for n in run.rounds]
    mem = [run.value(n, SM, "sb-send-c16-halfrate", "p99") for n in run.rounds]
    T.append({
        "target": "p99 ≤ 5 ms at half the maximum rate (durable AMQP send, 16 links)",
        "measured": p99, "need": "≤ 5 ms", "unit": "ms",
        "result": "NOT MEASURED" if p99 is None else ("PASS" if p99 <= 5 else "MISS"),
        "per_round": per,
        "note": "paced at " + ", ".join(num(r) for r in rates if r) + " sends/s; in-memory at the same pace: "
                + ", ".join(ms(v) for v in mem) + " ms",
    })
    return R, T


def build_postgres(run):
    """Ratios and issue 14's targets for the PostgreSQL section."""
    H, H2, PB = "hematite-pg", "hematite-pg2", "pgbench"
    R = {}
    def add(key, label, num_tp, den_tp, num_field="ops_per_s", den_field="ops_per_s"):
        med, per = run.ratio(num_tp, den_tp, num_field, den_field)
        R[key] = {"label": label, "median": med, "per_round": per}
    for c in (16, 64):
        add(f"put{c}", f"Put Message ÷ pgbench put ({c} clients)", (H, f"pg-put-c{c}"), (PB, f"pg-put-c{c}"))
        add(f"cycle{c}", f"receive+delete ÷ pgbench receive+delete ({c} clients)", (H, f"pg-cycle-c{c}"), (PB, f"pg-cycle-c{c}"))
    add("p99_put16", "p99 of Put Message ÷ pgbench's p99 (16 clients)", (H, "pg-put-c16"), (PB, "pg-put-c16"), "p99", "p99")
    add("two_nodes", "two nodes ÷ one node, put (64 clients)", (H2, "pg-put-c64"), (H, "pg-put-c64"))
    T = []
    def target(name, key, need, check):
        v = R[key]["median"]
        T.append({"target": name, "measured": v, "need": need,
                  "result": "NOT MEASURED" if v is None else ("PASS" if check(v) else "MISS"),
                  "per_round": R[key]["per_round"], "note": ""})
    target("Put Message ≥ 1.5× pgbench at 16 clients", "put16", "≥ 1.5×", lambda v: v >= 1.5)
    target("Put Message ≥ 3× pgbench at 64 clients", "put64", "≥ 3×", lambda v: v >= 3)
    target("receive+delete ≥ 1.0× pgbench at 16 clients", "cycle16", "≥ 1.0×", lambda v: v >= 1.0)
    target("receive+delete ≥ 2× pgbench at 64 clients", "cycle64", "≥ 2×", lambda v: v >= 2)
    target("p99 ≤ 2× pgbench's p99 (put, 16 clients)", "p99_put16", "≤ 2×", lambda v: v <= 2)
    target("two nodes together at least as fast as one (put, 64 clients)", "two_nodes", "≥ 1.0×", lambda v: v >= 1.0)
    return R, T


def postgres_section(run, R, T, w):
    w("## PostgreSQL store")
    w("")
    w("Hematite nodes with `--store postgres://…` on one throwaway PostgreSQL cluster (fsync and "
      "synchronous_commit on), driven over Queue REST by `hematite bench`, against pgbench running "
      "the same work one row per statement (`bench/postgres/`) on the same cluster in the same run. "
      "A receive+delete is a receive with a lease, then a delete by receipt (two commits), for "
      "both: each starts from the same backlog, loaded first and followed by VACUUM ANALYZE and a "
      "CHECKPOINT, and nothing is put back while it runs. Two nodes share the clients evenly, and "
      "their figures are added together. Each point starts on a fresh database.")
    w("")
    w("| target (issue 14) | measured (median) | per round | needed | result |")
    w("|---|---:|---|---|---|")
    target_rows(T, w)
    w("")
    w("| ratio | median | per round |")
    w("|---|---:|---|")
    for r in R.values():
        w(f"| {r['label']} | {ratio(r['median'])} | {per_round(r['per_round'])} |")
    w("")
    rows = [(t, p) for p in ("pg-put-c16", "pg-put-c64", "pg-cycle-c16", "pg-cycle-c64")
            for t in ("hematite-pg", "pgbench")]
    rows.append(("hematite-pg2", "pg-put-c64"))
    w(figures_table(run, rows))
    w("")


def servicebus_chart(run, out_png, workdir):
    SD, SM, RQ, D = "sb-durable", "sb-memory", "rabbitmq", "hematite-durable"
    groups = [
        ("send, 16 links\\n1 in flight", "sb-send-c16", "put-c16"),
        ("send, 16 links\\n8 in flight", "sb-send-c16-if8", None),
        (f"receive+complete\\n{k(run.small)} backlog", "sb-cycle-c16-small", "cycle-c16-small"),
        (f"receive+complete\\n{k(run.small)}, refills 8", "sb-cycle-c16-small-if8", None),
        (f"receive-and-delete\\n{k(run.small)} backlog", "sb-rad-c16-small", None),
        (f"receive+complete\\n{k(run.huge)} backlog", "sb-cycle-c16-huge", None),
    ]
    series = [(SD, "Hematite durable, AMQP"), (SM, "Hematite in-memory, AMQP"),
              (D, "Hematite durable, Queue REST (same work)"), (RQ, "RabbitMQ quorum queue, AMQP 1.0")]
    rows = []
    for label, point, rest in groups:
        vals = []
        for t, _ in series:
            p = rest if t == D else point
            v = run.med(t, p) if p else None
            vals.append("?" if v is None else f"{v:.1f}")
        rows.append(f'"{label}" ' + " ".join(vals))
    dat = os.path.join(workdir, "chart-sb.dat")
    with open(dat, "w") as f:
        f.write("\n".join(rows) + "\n")
    colors = ["#a33b0b", "#f0a36b", "#7a5c99", "#3c8d5a"]
    n = len(series)
    plots = [f"'{dat}' using {i + 2}:xtic(1) title '{title}' lc rgb '{colors[i]}'" for i, (_, title) in enumerate(series)]
    labels = []
    for i in range(n):
        off = (i - (n - 1) / 2) / (n + 1.5)
        labels.append(
            f"'{dat}' using ($0+({off:.4f})):(column({i + 2})):(sprintf('%.0f', column({i + 2}))) "
            f"with labels rotate by 90 left offset 0,0.3 font ',8' notitle")
    script = f"""
set terminal pngcairo size 1200,640 font 'DejaVu Sans,10'
set output '{out_png}'
set datafile missing '?'
set style data histogram
set style histogram clustered gap 1.5
set style fill solid 0.9 border -1
set boxwidth 1
set yrange [0:*]
set bmargin 4
set ylabel 'messages per second'
set grid ytics
set key top right
set xtics font ',9'
set title "Service Bus over AMQP 1.0, 1 KiB, 16 links, one run on {run.meta['machine']['cpu']['nproc']} cores (median of {len(run.rounds)} round(s)); missing bar = not measured"
plot {', '.join(plots)}, \\
     {', '.join(labels)}
"""
    gp = os.path.join(workdir, "chart-sb.gp")
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", gp], check=True)


def target_rows(T, w):
    """One table row per target: a ratio, or a latency in ms."""
    for t in T:
        unit_ms = t.get("unit") == "ms"
        meas = (ms(t["measured"]) + " ms") if unit_ms and t["measured"] is not None else ratio(t["measured"]) if not unit_ms else "—"
        per = ", ".join((ms(v) + " ms" if v is not None else "—") for v in t["per_round"]) if unit_ms else per_round(t["per_round"])
        note = f" ({t['note']})" if t.get("note") else ""
        w(f"| {t['target']}{note} | {meas} | {per} | {t['need']} | **{t['result']}** |")


def servicebus_section(run, R, T, w):
    SD, SM, RQ, D = "sb-durable", "sb-memory", "rabbitmq", "hematite-durable"
    if not any(r["target"] in (SD, SM, RQ) for r in run.records):
        return
    w("## Service Bus over AMQP 1.0 (issue 13)")
    w("")
    w("![Service Bus throughput over AMQP 1.0](benchmarks-servicebus.png)")
    w("")
    w("`hematite bench --amqp`, 1 KiB messages, 16 clients, each one AMQP connection with its links, "
      "against Hematite's Service Bus front (durable and in-memory) and against RabbitMQ from Debian's "
      "packages with its AMQP 1.0 plugin and a durable **quorum** queue, in the same run as the Queue REST "
      "points above (which measure Hematite's REST front doing the same work). Same client, same message "
      "size, same links for every broker.")
    w("")
    w("- **send**: an op is one message, from writing it to the broker's outcome; the sender settles on "
      "that outcome (Hematite answers after the fsync; RabbitMQ after the quorum queue confirms). With "
      "*8 in flight* each link keeps eight messages on the wire, which AMQP allows and REST cannot.")
    w("- **receive+complete**: peek-lock receive with 64 messages of prefetch credit, then complete "
      "(`accepted`, sent settled as consumers do on every broker; the op does not wait for the broker's "
      "echo). Each cycle then sends one message back (not in the op's latency), as the REST cycle puts one "
      "back, so the backlog stays at the prefill: its outcome is awaited before the next receive, or, with "
      "*refills 8 in flight*, up to eight refills await their outcomes while receiving goes on. The latency "
      "column measures mostly the prefetch buffer; throughput is the figure to read.")
    w("- **receive-and-delete**: the broker settles each message as it sends it; refilled the same way.")
    w("")
    w("| target (issue 13) | measured (median) | per round | needed | result |")
    w("|---|---:|---|---|---|")
    target_rows(T, w)
    w("")
    w("| ratio | median | per round |")
    w("|---|---:|---|")
    for r in R.values():
        w(f"| {r['label']} | {ratio(r['median'])} | {per_round(r['per_round'])} |")
    w("")
    rows = [(t, p) for p in ("sb-send-c16", "sb-send-c16-if8", "sb-cycle-c16-small", "sb-cycle-c16-small-if8",
                             "sb-rad-c16-small")
            for t in (SD, SM, RQ)]
    rows += [(D, "put-c16"), (D, "cycle-c16-small"), (SD, "sb-cycle-c16-huge"), (SM, "sb-cycle-c16-huge"),
             (SD, "sb-send-c16-halfrate"), (SM, "sb-send-c16-halfrate")]
    w(figures_table(run, rows))
    w("")


def gnuplot_chart(run, out_png, workdir):
    D, M, NG, RD, AZ = "hematite-durable", "hematite-memory", "nginx", "redis", "azurite"
    groups = [
        ("put, 1 client", "put-c1", "put-c1", "put-c1"),
        ("put, 16 clients", "put-c16", "put-c16", "put-c16"),
        (f"recv+del, 1 client\\n{k(run.small)} backlog", "cycle-c1-small", "cycle-c1-small", "cycle-c1-small"),
        (f"recv+del, 16 clients\\n{k(run.small)} backlog", "cycle-c16-small", "cycle-c16-small", "cycle-c16-small"),
        (f"recv+del, 16 clients\\n{k(run.deep)} backlog" + (f"\\n(Azurite: {k(run.az_deep)})" if run.az_deep != run.deep else ""),
         "cycle-c16-deep", "cycle-c16-azdeep", None),
        (f"recv+del, 16 clients\\n{k(run.huge)} backlog", "cycle-c16-huge", None, None),
    ]
    series = [(D, "Hematite durable"), (M, "Hematite in-memory"), (RD, "Redis appendfsync always (LPUSH / RPOP)"),
              (AZ, "Azurite (not durable)"), (NG, "nginx 204: HTTP ceiling")]
    rows = []
    for label, hpoint, azpoint, otherpoint in groups:
        vals = []
        for t, _ in series:
            p = hpoint if t in (D, M) else azpoint if t == AZ else otherpoint
            v = run.med(t, p) if p else None
            vals.append("?" if v is None else f"{v:.3f}")
        rows.append(f'"{label}" ' + " ".join(vals))
    dat = os.path.join(workdir, "chart.dat")
    with open(dat, "w") as f:
        f.write("\n".join(rows) + "\n")
    n = len(series)
    colors = ["#a33b0b", "#f0a36b", "#3c8d5a", "#4a78a8", "#8c8c8c"]
    labels = []
    for i in range(n):
        off = (i - (n - 1) / 2) / (n + 1.5)
        labels.append(
            f"'{dat}' using ($0+({off:.4f})):(column({i + 2})):(sprintf(column({i + 2}) >= 100 ? '%.0f' : column({i + 2}) >= 10 ? '%.1f' : '%.2f', column({i + 2}))) "
            f"with labels rotate by 90 left offset 0,0.3 font ',8' notitle"
        )
    plots = [
        f"'{dat}' using {i + 2}:xtic(1) title '{title}' lc rgb '{colors[i]}'"
        for i, (_, title) in enumerate(series)
    ]
    script = f"""
set terminal pngcairo size 1400,720 font 'DejaVu Sans,10'
set output '{out_png}'
set datafile missing '?'
set style data histogram
set style histogram clustered gap 1.5
set style fill solid 0.9 border -1
set boxwidth 1
set logscale y
set yrange [0.1:{max(1000, (run.med(NG, 'put-c16') or 1000) * 8):.0f}]
set ytics ('0.1' 0.1, '1' 1, '10' 10, '100' 100, '1k' 1000, '10k' 10000, '100k' 100000, '1M' 1000000)
set bmargin 6
set ylabel 'operations per second (log scale): puts, or receive+delete cycles'
set grid ytics
set key top right
set xtics font ',9'
set title "Hematite and its peers, 1 KiB messages, one run on {run.meta['machine']['cpu']['nproc']} cores (median of {len(run.rounds)} round(s)); missing bar = not measured"
plot {', '.join(plots)}, \\
     {', '.join(labels)}
"""
    gp = os.path.join(workdir, "chart.gp")
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", gp], check=True)


def machine_section(meta):
    m, v = meta["machine"], meta["versions"]
    disk = m["disk"]
    disk_s = f"{disk.get('device')} ({disk.get('fstype')}, {disk.get('mount_options')})"
    if disk.get("lsblk_size_rota_model"):
        disk_s += f"; lsblk size/rotational/model: `{disk['lsblk_size_rota_model']}`"
    if disk.get("virtio"):
        disk_s += "; a virtio block device of a VM (the kernel's rotational flag means nothing there)"
    lines = [
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']['model']}, {m['cpu']['nproc']} logical CPUs (nproc){', ' + m['cpu']['mhz'] + ' MHz' if m['cpu'].get('mhz') else ''} |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| OS, kernel | {m['os']}, Linux {m['kernel']} |",
        f"| disk under the scratch dir | {disk_s} |",
        f"| load average at start / end | {meta.get('load_at_start')} / {meta.get('load_at_end')} |",
        f"| run | {meta['started']} to {meta.get('finished')} ({meta.get('elapsed_s', 0) // 60} min {meta.get('elapsed_s', 0) % 60} s of measuring) |",
        "",
        "| software | version |",
        "|---|---|",
        f"| Hematite | {v['hematite']}, commit `{(v['hematite_commit'] or '?')[:12]}`{' (with uncommitted changes in crates/)' if v['hematite_tree_dirty'] else ''} (the checkout's HEAD when the run started; binary built {v.get('hematite_binary_built')}), built with {v['rustc']} (`--release`) |",
        f"| Azurite | {v['azurite']} (npm, pinned), on Node.js {v['node']} |",
        f"| nginx | {v['nginx']} |",
        f"| Redis | {v['redis_server']} |",
        f"| RabbitMQ | {v.get('rabbitmq') or '—'} (Debian), Erlang {v.get('erlang') or '—'}; plugins rabbitmq_amqp1_0 and rabbitmq_management |",
        f"| redis-benchmark | {v['redis_benchmark']} |",
        f"| gnuplot | {v['gnuplot']} |",
        f"| Debian packages | {', '.join((v.get('debian_packages') or '').splitlines())} |",
    ]
    return "\n".join(lines)


def headline(run, R, T):
    D, M, NG, RD, AZ = "hematite-durable", "hematite-memory", "nginx", "redis", "azurite"
    r = lambda key: ratio(R[key]["median"])
    out = []
    passed = sum(t["result"] == "PASS" for t in T)
    out.append(f"**{passed} of {len(T)} performance targets met in this run** (table below).")
    out.append(
        f"Durable put, 16 clients: **{num(run.med(D, 'put-c16'))}/s**, {r('put16_d_ceiling')} the HTTP "
        f"ceiling ({num(run.med(NG, 'put-c16'))} req/s), {r('put16_d_redis')} Redis with appendfsync "
        f"always ({num(run.med(RD, 'put-c16'))}/s), {r('put16_d_azurite')} Azurite "
        f"({num(run.med(AZ, 'put-c16'))}/s). In-memory: {num(run.med(M, 'put-c16'))}/s, "
        f"{r('put16_m_ceiling')} the ceiling.")
    out.append(
        f"Durable receive+delete, 16 clients, {k(run.small)} backlog: **{num(run.med(D, 'cycle-c16-small'))} "
        f"cycles/s** ({r('cyc16_d_ceiling')} the ceiling, {r('cyc16_d_azurite')} Azurite); at a "
        f"{k(run.deep)} backlog {num(run.med(D, 'cycle-c16-deep'))}/s against Azurite's "
        f"{num(run.med(AZ, 'cycle-c16-azdeep'))}/s at {k(run.az_deep)} ({r('cyc16deep_d_azurite')}); at "
        f"{k(run.huge)} {num(run.med(D, 'cycle-c16-huge'))}/s ({r('huge_small_d')} of the {k(run.small)} figure).")
    out.append(
        f"Durability costs: durable ÷ in-memory is {r('put16_d_m')} on put and {r('cyc16_d_m')} on "
        f"receive+delete (16 clients).")
    return out


def render(run, R, T, RS=None, TS=None, RP=None, TP=None):
    D, M, NG, RD, AZ = "hematite-durable", "hematite-memory", "nginx", "redis", "azurite"
    meta, s = run.meta, run.meta["settings"]
    out = []
    w = out.append
    w("# Benchmarks: Hematite side by side with its peers")
    w("")
    w(f"Generated by `bench/run` on {meta['started'][:10]} from one run on one machine; do not edit by hand, "
      "run it again (see [bench/README.md](../bench/README.md)). These machines are shared and noisy "
      "(the same run can come out 10 to 60% lower when a neighbour is busy), so **compare ratios "
      "within this run, not absolute figures across runs.**")
    if s["quick"]:
        w("")
        w(f"**This is a `--quick` smoke run: {s['duration_s']:.0f} s points, small backlogs, {len(run.rounds)} "
          "round(s). Its figures are not the project's benchmark results.**")
    w("")
    w("![Throughput of Hematite and its peers, log scale](benchmarks.png)")
    w("")
    w("## Headline")
    w("")
    for line in headline(run, R, T):
        w(f"- {line}")
    w("")
    w("## Performance targets (issue 4)")
    w("")
    w("Computed from this run: durable Hematite, 1 KiB messages, 16 clients; each value is the median "
      "over rounds of a ratio taken within one round.")
    w("")
    w("| target | measured (median) | per round | needed | result |")
    w("|---|---:|---|---|---|")
    target_rows(T, w)
    w("")
    w("## Ratios")
    w("")
    w("| ratio | median | per round |")
    w("|---|---:|---|")
    for key, r in R.items():
        w(f"| {r['label']} | {ratio(r['median'])} | {per_round(r['per_round'])} |")
    w("")
    w("## Put Message, 1 KiB")
    w("")
    w("One op = one Put Message (Redis: one `LPUSH`; nginx: one POST answered 204). Latency per op.")
    w("")
    w(figures_table(run, [(t, p) for p in ("put-c1", "put-c16") for t in TARGET_ORDER]))
    w("")
    w("## Receive+delete, 1 KiB")
    w("")
    w("One op = one cycle: Get Messages (1 message) then Delete Message with its pop receipt, two "
      "requests and two durable writes on Hematite (a receive persists the new visibility deadline and "
      "receipt). `hematite bench` then puts one message back so the backlog stays where the prefill "
      "put it: that put is in the wall time but not in the op's latency, so a cycle costs 3 requests. "
      "Redis: one `RPOP` (one write) on a list prefilled with enough items, so it is the cheaper "
      "operation of the two.")
    w("")
    w(figures_table(run, [(t, p) for p in ("cycle-c1-small", "cycle-c16-small") for t in TARGET_ORDER]))
    w("")
    w("## Deep backlogs")
    w("")
    w(f"Receive+delete with 16 clients after prefilling the queue (64 concurrent puts, not measured). "
      f"The “no refill” line runs right after the {k(run.huge)} line on the same server and queue without "
      f"putting messages back, so it shows the cycle alone (the queue shrinks by the few ten thousand "
      f"messages consumed, a few percent of {k(run.huge)}).")
    w("")
    rows = [(D, "cycle-c16-small"), (D, "cycle-c16-deep"), (D, "cycle-c16-huge"), (D, "cycle-c16-huge-norefill"),
            (M, "cycle-c16-small"), (M, "cycle-c16-deep"), (M, "cycle-c16-huge"), (M, "cycle-c16-huge-norefill"),
            (AZ, "cycle-c16-small"), (AZ, "cycle-c16-azdeep")]
    w(figures_table(run, rows))
    w("")
    w("Prefill and memory (median over rounds):")
    w("")
    w("| target | backlog | prefill puts/s (64 connections) | server peak RSS MiB (VmHWM) | data dir MiB |")
    w("|---|---:|---:|---:|---:|")
    for t, p in [(D, "cycle-c16-deep"), (D, "cycle-c16-huge"), (M, "cycle-c16-deep"), (M, "cycle-c16-huge"), (AZ, "cycle-c16-azdeep")]:
        oks = run.ok(t, p)
        if not oks:
            continue
        pre = median(r["result"].get("prefill_per_s") for r in oks)
        rss = median(r["extra"].get("server_peak_rss_mb") for r in oks)
        dsz = median(r["extra"].get("data_dir_mb") for r in oks)
        w(f"| {TARGETS[t]} | {k(oks[0]['backlog'])} | {num(pre)} | {num(rss)} | {num(dsz)} |")
    if run.az_deep and run.az_deep < run.deep:
        w("")
        w(f"Azurite was measured at a {k(run.az_deep)} backlog, not {k(run.deep)} (`BENCH_AZURITE_DEEP`): "
          "filling it runs at about a thousand puts/s and every receive scans and sorts every message "
          "stored, so it only gets slower with more.")
    elif run.az_deep:
        w("")
        w(f"Azurite's deep point holds {k(run.az_deep)} messages. Each receive there takes seconds and "
          "Node.js runs them one at a time, so in a point of "
          f"{s['duration_s']:.0f} s each of the 16 clients completes only about one cycle; the run lasts "
          "until the last in-flight cycle ends, and the figure is cycles completed ÷ that wall time.")
    w("")
    if RS is not None:
        servicebus_section(run, RS, TS, w)
    if RP is not None and any(r["target"] in ("hematite-pg", "pgbench") for r in run.records):
        postgres_section(run, RP, TP, w)
    w("## Latency at half the maximum rate")
    w("")
    w("Durable Hematite, 16 clients, paced (`hematite bench --rate`) at half the throughput the same "
      "round measured unpaced. The 16 clients' schedules are staggered over one interval. A client "
      "behind its schedule counts latency from the op's scheduled start, so stalls are not hidden (no "
      "coordinated omission); a client on time counts from when its timer woke it, because tokio's "
      "1 ms timer wheel would otherwise add up to a millisecond of the load generator's own delay "
      "to every op. The same paced load also runs against in-memory Hematite and the nginx ceiling: "
      "their tails are the machine's and the load generator's, with no disk in the path. "
      "`hematite bench` also reads the CPU time the hypervisor took from this VM (steal, in "
      "`/proc/stat`) every 100 ms of the window; the *stolen ms* column under *Every measurement* "
      "gives the total and, in brackets, the worst 100 ms. While the host holds a vCPU, every "
      "process here stalls, and the host's fsyncs slow down with it.")
    w("")
    w(figures_table(run, [(t, p) for p in ("put-c16-halfrate", "cycle-c16-small-halfrate") for t in (D, M, NG)]))
    w("")
    w("## Method")
    w("")
    w(f"- **One run, interleaved.** {len(run.rounds)} round(s); each round measures every point on every "
      "target in turn (durable, in-memory, Azurite, nginx, Redis, then the next point), so slow drifts "
      "in the machine's load hit all targets alike. Every server is started fresh, with an empty data "
      f"directory in a scratch dir, for each measurement, and stopped after it. {s['duration_s']:.0f} s "
      "per point.")
    if s.get("warmup_s"):
        w(f"- **Warm-up:** `hematite bench` runs each point for {s['warmup_s']:.0f} s before its measured "
          f"{s['duration_s']:.0f} s (`--warmup`), against every target alike (except Azurite at the deep "
          "backlog, where one cycle takes tens of seconds), and reports those ops apart. "
          "The window then starts with open connections and a server past its start-up work (a fresh "
          "Hematite prepares its first spare segment then). A paced schedule runs on into the window "
          "without a break, so a client still behind at its start still counts its lateness. "
          "`redis-benchmark` has no warm-up.")
    w("- **Load generator:** `hematite bench` (in the Hematite binary) for Hematite, Azurite and nginx: "
      "the same SharedKey-signed HTTP/1.1 requests with a 1 KiB message, one keep-alive connection per "
      "client, HDR latency histograms. It runs on the same 2 cores as the server it measures. Redis is "
      "driven by `redis-benchmark` (`-d 1024`), its own tool, which gives no p99.9.")
    w("- **Hematite durable:** `hematite serve --data-dir <scratch>`: the embedded store with the default "
      "`--durability strict`, every answer waits for its fsync (group commit).")
    w("- **Hematite in-memory:** `hematite serve --in-memory`: nothing survives a restart.")
    w("- **Azurite:** `azurite-queue --queueHost 127.0.0.1 --skipApiVersionCheck --disableTelemetry "
      "--silent --location <scratch>`: its default **disk persistence** (LokiJS metadata serialised to a "
      "JSON file every 5 s, message bodies appended to extent files). It is **not durable**: a `kill -9` "
      "loses the acknowledged writes of the last few seconds (200 of 200 in a test on this project). "
      "Earlier project notes recorded about 120 puts/s for Azurite, measured with an SDK client; the "
      "ratios here use this run's figure, taken with the same lean client as Hematite's.")
    w("- **HTTP ceiling:** nginx from Debian, `worker_processes auto` (= 2 workers here), "
      "`keepalive_requests 1000000000`, `access_log off`: every request answered at once, 204, or for "
      "a Get Messages a canned one-message answer the size of Hematite's. Put and receive+delete run "
      "against it with the same requests as against Hematite, so its figures are the ceiling for any "
      "HTTP server on this machine with this load generator.")
    w("- **Redis, the durable-broker reference:** `appendonly yes`, `appendfsync always` (fsync before "
      "replying, shared by the writes of one event-loop turn), `save \"\"`. `LPUSH` stands for put and "
      "`RPOP` for receive+delete; the RPOP list is first filled by pipelined LPUSH (not measured) with "
      "as many items as the RPOP run takes plus the small backlog.")
    w("- **Figures:** the median over rounds per point and target; ratios are taken within each round and "
      "their median reported, with the per-round values. Latencies are per op (a cycle's two requests "
      "together).")
    w("")
    w("## Machine and versions")
    w("")
    w(machine_section(meta))
    w("")
    w("## Every measurement")
    w("")
    w("Raw records, including the full `hematite bench --json` output: "
      "[bench-results/latest.json](bench-results/latest.json).")
    w("")
    w("| round | target | point | backlog | ops/s | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | stolen ms | wall s |")
    w("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(run.records, key=lambda r: (r["round"], r["point"], TARGET_ORDER.index(r["target"]))):
        if r["status"] != "ok":
            w(f"| {r['round']} | {r['target']} | {r['point']} | {k(r['backlog'])} | FAILED: {str(r['error'])[:120]} | | | | | | | | {r['wall_s']:.0f} |")
            continue
        res = r["result"]
        lat = res.get("latency_ms") or {}
        host = res.get("host")
        stolen = f"{host['steal_ms']:.0f} ({host['worst_steal_ms']:.0f})" if host else "—"
        w(f"| {r['round']} | {r['target']} | {r['point']} | {k(r['backlog'])} | {num(res['ops_per_s'])} | "
          f"{num(res.get('requests_per_s'))} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} | "
          f"{ms(lat.get('p999'))} | {ms(lat.get('max'))} | {res.get('errors', 0)} | {stolen} | {r['wall_s']:.0f} |")
    w("")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results")
    p.add_argument("--meta")
    p.add_argument("--from-json", help="re-render from a bench-results/latest.json instead")
    p.add_argument("--out", required=True)
    p.add_argument("--workdir", default=None)
    a = p.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            saved = json.load(f)
        records, meta = saved["records"], saved["meta"]
    else:
        if not (a.results and a.meta):
            p.error("--results and --meta, or --from-json")
        with open(a.results) as f:
            records = [json.loads(line) for line in f if line.strip()]
        with open(a.meta) as f:
            meta = json.load(f)
    if a.workdir is None:
        import tempfile
        a.workdir = tempfile.mkdtemp(prefix="bench-report.")
    run = Run(records, meta)
    R, T = build(run)
    RS, TS = build_servicebus(run)
    RP, TP = build_postgres(run)
    os.makedirs(os.path.join(a.out, "bench-results"), exist_ok=True)
    with open(os.path.join(a.out, "bench-results", "latest.json"), "w") as f:
        json.dump({"meta": meta, "ratios": R, "targets": T, "servicebus_ratios": RS,
                   "servicebus_targets": TS, "postgres_ratios": RP, "postgres_targets": TP,
                   "records": records}, f, indent=1, sort_keys=True)
        f.write("\n")
    gnuplot_chart(run, os.path.join(a.out, "benchmarks.png"), a.workdir)
    if any(r["target"] in ("sb-durable", "sb-memory", "rabbitmq") for r in records):
        servicebus_chart(run, os.path.join(a.out, "benchmarks-servicebus.png"), a.workdir)
    with open(os.path.join(a.out, "benchmarks.md"), "w") as f:
        f.write(render(run, R, T, RS, TS, RP, TP))
    for t in T + TS + TP:
        print(f"{t['result']:>12}  {t['target']}", file=sys.stderr)


if __name__ == "__main__":
    main()
