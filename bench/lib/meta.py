#!/usr/bin/env python3
"""Machine, versions and settings of a bench/run (stdlib only).

    meta.py META.json start --bin HEMATITE --azurite-dir DIR --root REPO --work SCRATCH [settings]
    meta.py META.json end   (same flags; adds the end time and load average)
"""

import argparse
import datetime
import json
import os
import platform
import subprocess


def run(*cmd, cwd=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=cwd)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return None


def first_line(s):
    return s.splitlines()[0].strip() if s else None


def cpu():
    models, flags = [], ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                models.append(line.split(":", 1)[1].strip())
    mhz = run("sh", "-c", "grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2")
    return {
        "nproc": os.cpu_count(),
        "model": models[0] if models else platform.processor(),
        "logical_cpus": len(models),
        "mhz": mhz.strip() if mhz else None,
    }


def memory_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def disk(path):
    src = run("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", path) or ""
    parts = src.split()
    device = parts[0] if parts else None
    info = {
        "path": path,
        "device": device,
        "fstype": parts[1] if len(parts) > 1 else None,
        "mount_options": parts[2] if len(parts) > 2 else None,
    }
    if device and device.startswith("/dev/"):
        lsblk = run("lsblk", "-dno", "SIZE,ROTA,MODEL", device)
        info["lsblk_size_rota_model"] = lsblk
        name = os.path.basename(device)
        try:
            with open(f"/sys/block/{name}/queue/rotational") as f:
                info["rotational"] = f.read().strip()
        except OSError:
            pass
        info["virtio"] = name.startswith("vd")
    return info


def os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def versions(a):
    azurite = None
    try:
        with open(os.path.join(a.azurite_dir, "node_modules/azurite/package.json")) as f:
            azurite = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    commit = run("git", "rev-parse", "HEAD", cwd=a.root)
    dirty = run("git", "status", "--porcelain", "--", "crates", "Cargo.lock", "Cargo.toml", cwd=a.root)
    return {
        "hematite": first_line(run(a.bin, "--version")),
        "hematite_binary_built": datetime.datetime.fromtimestamp(
            os.path.getmtime(a.bin), datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "hematite_commit": commit,
        "hematite_tree_dirty": bool(dirty),
        "rustc": first_line(run("rustc", "--version")),
        "nginx": first_line(run("nginx", "-v")),
        "redis_server": first_line(run("redis-server", "--version")),
        "redis_benchmark": first_line(run("redis-benchmark", "--version")),
        "azurite": azurite,
        "node": first_line(run("node", "--version")),
        "gnuplot": first_line(run("gnuplot", "--version")),
        "rabbitmq": first_line(run("dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server")),
        "erlang": first_line(run("dpkg-query", "-W", "-f", "${Version}", "erlang-base")),
        "python": platform.python_version(),
        "debian_packages": run(
            "dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
            "nginx", "redis-server", "redis-tools", "gnuplot-nox", "nodejs", "rabbitmq-server",
        ),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("phase", choices=["start", "end"])
    for flag in ("bin", "azurite-dir", "root", "work"):
        p.add_argument("--" + flag, required=True)
    for flag in ("quick", "duration", "warmup", "rounds", "small", "deep", "huge", "azurite-deep", "point-timeout"):
        p.add_argument("--" + flag, type=float)
    a = p.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    if a.phase == "start":
        meta = {
            "started": now.isoformat(),
            "load_at_start": loadavg(),
            "machine": {
                "cpu": cpu(),
                "memory_gib": memory_gib(),
                "kernel": platform.release(),
                "os": os_name(),
                "disk": disk(a.work),
            },
            "versions": versions(a),
            "settings": {
                "quick": bool(a.quick),
                "duration_s": a.duration,
                "warmup_s": a.warmup,
                "rounds": int(a.rounds),
                "backlog_small": int(a.small),
                "backlog_deep": int(a.deep),
                "backlog_huge": int(a.huge),
                "backlog_azurite_deep": int(a.azurite_deep),
                "point_timeout_s": a.point_timeout,
                "message_size": 1024,
            },
        }
    else:
        with open(a.file) as f:
            meta = json.load(f)
        meta["finished"] = now.isoformat()
        meta["load_at_end"] = loadavg()
        start = datetime.datetime.fromisoformat(meta["started"])
        meta["elapsed_s"] = int((now - start).total_seconds())
    with open(a.file, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
