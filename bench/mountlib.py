#!/usr/bin/env python3
"""Helpers for bench/mount.sh (standard library only, except the subcommands marked [h5py],
which mount.sh runs with its venv's Python).

Subcommands:
  gen-h5 PATH BYTES DATASETS SEED   [h5py] an HDF5 file of DATASETS float64 datasets d0, d1,
                                    ... (contiguous, uncompressed) of BYTES/DATASETS bytes
                                    each, pseudo-random; prints "NAME NBYTES SHA256" of every
                                    dataset, one a line
  h5read PATH NAME SHA256           [h5py] open PATH, read dataset NAME whole; prints the
                                    seconds of open + read; exit 1 if the bytes' sha256
                                    differs from SHA256 (checked after the timing)
  randread PATH SOURCE N SEED       open PATH, N preads of 4 KiB at pseudo-random offsets
                                    (os.pread), timed from the open; prints "SECONDS
                                    READS_PER_S MS_PER_READ";
                                    exit 1 if a read differs from the same range of SOURCE
                                    (checked after the timing)
  alog LOG FROM_LINE                requests of an nginx access log (format "METHOD STATUS
                                    BODY_BYTES_SENT URI") from line FROM_LINE (0-based) on:
                                    prints "REQUESTS PROPFINDS GET_BYTES"
  table RESULTS COND                the Markdown table of one condition (RESULTS: lines
                                    "COND<TAB>TOOL<TAB>KEY<TAB>VALUE")
  goals RESULTS                     the goals of issue 19, each met / not met / n/a, computed
                                    from RESULTS
"""

import hashlib
import os
import random
import statistics
import sys
import time

RSS_GOAL_MIB = 256.0
TOOLS = ["cta-data get", "cta-data mount", "rclone off", "rclone full", "davfs2"]
PEERS = ["rclone off", "rclone full", "davfs2"]
MOUNT = "cta-data mount"
SIBLING = {"h5_x": "h5_s", "ls_req": "ls_s", "rr_ms": "rr_rate", "rss": "seq"}


class NoPeer(Exception):
    """No peer mount has a figure for the compared measurement."""


def cmd_gen_h5(path: str, nbytes: int, ndatasets: int, seed: int) -> int:
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    per = max(1, nbytes // ndatasets // 8)
    with h5py.File(path, "w") as f:
        f.attrs["about"] = "cta-data mount benchmark"
        for i in range(ndatasets):
            a = rng.random(per)
            f.create_dataset(f"d{i}", data=a)  # contiguous, no filter
            print(f"d{i} {a.nbytes} {hashlib.sha256(a.tobytes()).hexdigest()}")
    return 0


def cmd_h5read(path: str, name: str, sha: str) -> int:
    import h5py

    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        a = f[name][...]
    dt = time.perf_counter() - t0
    print(f"{dt:.3f}")
    got = hashlib.sha256(a.tobytes()).hexdigest()
    if got != sha:
        print(f"h5read: dataset {name} of {path} read wrong bytes (sha256 {got}, expected {sha})", file=sys.stderr)
        return 1
    return 0


def cmd_randread(path: str, source: str, n: int, seed: int) -> int:
    size = os.stat(source).st_size
    rng = random.Random(seed)
    offs = [rng.randrange(0, max(1, size - 4096)) for _ in range(n)]
    got = []
    t0 = time.perf_counter()  # the open counts: davfs2 fetches the whole file in it
    fd = os.open(path, os.O_RDONLY)
    try:
        for o in offs:
            got.append(os.pread(fd, 4096, o))
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
    print(f"{dt:.3f} {n / max(dt, 1e-9):.1f} {dt / n * 1000:.2f}")
    with open(source, "rb") as s:
        for o, b in zip(offs, got):
            s.seek(o)
            if s.read(4096) != b:
                print(f"randread: 4 KiB at offset {o} of {path} differ from {source}", file=sys.stderr)
                return 1
    return 0


def cmd_alog(log: str, start: int) -> int:
    reqs = props = gbytes = 0
    with open(log, errors="replace") as f:
        for i, line in enumerate(f):
            if i < start or not line.strip():
                continue
            parts = line.split(" ", 3)
            reqs += 1
            if parts[0] == "PROPFIND":
                props += 1
            if parts[0] == "GET" and len(parts) > 2 and parts[2].isdigit():
                gbytes += int(parts[2])
    print(f"{reqs} {props} {gbytes}")
    return 0


def aggregate(key: str, values: list[str]) -> str:
    """One value of a key measured once per run: a failure if any run failed, else the
    median (the maximum for peak RSS and for the requests of ls -l)."""
    bad = [v for v in values if v.startswith("FAILED")]
    if bad:
        return bad[0]
    try:
        nums = [float(v) for v in values]
    except ValueError:
        return values[-1]
    if key.startswith("rss") or key.startswith("ls_req") or key.startswith("ls_prop"):
        return repr(max(nums))
    return repr(statistics.median(nums))


def load(results: str) -> dict:
    """{cond: {tool: {key: value}}} in file order, runs aggregated."""
    raw: dict = {}
    with open(results) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                c, t, k, v = parts
                raw.setdefault(c, {}).setdefault(t, {}).setdefault(k, []).append(v)
    return {
        c: {t: {k: aggregate(k, vs) for k, vs in keys.items()} for t, keys in tools.items()}
        for c, tools in raw.items()
    }


def num(d: dict, key: str):
    v = d.get(key, "")
    try:
        return float(v)
    except ValueError:
        return None


def cell(d: dict, key: str, fmt: str) -> str:
    v = num(d, key)
    if v is not None:
        return fmt.format(v)
    return d.get(key, "") or "–"


def cmd_table(results: str, cond: str) -> int:
    rows = load(results).get(cond, {})
    cols = [
        "tool", "command", "dd bs=1M MB/s", "ls -l s", "ls -l requests (PROPFIND)",
        "h5py s", "h5py server bytes ÷ dataset", "4 KiB reads/s (ms each)", "4 KiB reads: requests, server MiB",
        "peak RSS MiB (dd / ls / h5py / 4 KiB)",
        "disk cache MiB",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for tool in TOOLS:
        d = rows.get(tool)
        if d is None:
            continue
        if "na" in d:
            out = [tool, f"`{d.get('cmd', '')}`", f"n/a ({d['na']})"] + [""] * (len(cols) - 3)
        else:
            req = cell(d, "ls_req", "{:.0f}")
            if num(d, "ls_prop") is not None:
                req += f" ({num(d, 'ls_prop'):.0f})"
            rr = cell(d, "rr_rate", "{:.0f}")
            if num(d, "rr_ms") is not None:
                rr += f" ({num(d, 'rr_ms'):.2f})"
            rss = cell(d, "rss", "{:.0f}")
            each = [num(d, f"rss_{k}") for k in ("seq", "ls", "h5", "rr")]
            if any(v is not None for v in each):
                rss += " (" + " / ".join("–" if v is None else f"{v:.0f}" for v in each) + ")"
            out = [
                tool, f"`{d.get('cmd', '')}`", cell(d, "seq", "{:.0f}"), cell(d, "ls_s", "{:.2f}"), req,
                cell(d, "h5_s", "{:.2f}"), cell(d, "h5_x", "{:.2f}×"), rr,
                cell(d, "rr_req", "{:.0f}") + ", " + cell(d, "rr_mib", "{:.0f}"), rss,
                cell(d, "disk", "{:.0f}"),
            ]
            if tool == "cta-data get":
                out = out[:3] + ["–"] * 6 + [cell(d, "rss", "{:.0f}"), "–"]
        print("| " + " | ".join(str(p).replace("|", "\\|") for p in out) + " |")
    return 0


def cmd_goals(results: str) -> int:
    data = load(results)
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    for cond, rows in data.items():
        m = rows.get(MOUNT, {})
        have_mount = bool(m) and "na" not in m
        loop = cond == "loopback"
        label = "loopback" if loop else cond.replace("wan", "") + " ms RTT"

        def goal(text: str, fn):
            if not have_mount:
                lines.append(f"- [{label}] {text}: n/a ({m.get('na', 'cta-data mount not run')})")
                return
            try:
                lines.append(f"- [{label}] {text}: {fn()}")
            except NoPeer:
                lines.append(f"- [{label}] {text}: n/a (no peer mount measured)")
            except LookupError as e:
                lines.append(f"- [{label}] {text}: not met ({e})")

        def need(tool: str, key: str) -> float:
            d = rows.get(tool, {})
            v = num(d, key)
            if v is None:
                # a derived figure is missing when its measurement failed: say why
                why = d.get(key) or d.get(SIBLING.get(key, key)) or "not measured"
                raise LookupError(f"no figure for {tool}: {why}")
            return v

        def best_peer(key: str, high: bool):
            vals = [(num(rows[p], key), p) for p in PEERS if p in rows and num(rows[p], key) is not None]
            if not vals:
                raise NoPeer()
            return (max if high else min)(vals)

        def seq_get():
            x = need(MOUNT, "seq") / need("cta-data get", "seq")
            return f"{verdict(x >= 0.8)} ({x:.2f}× cta-data get)"

        goal("sequential read ≥ 0.8× cta-data get", seq_get)
        if loop:
            def seq_peers():
                v, p = best_peer("seq", True)
                x = need(MOUNT, "seq") / v
                return f"{verdict(x > 1.0)} ({x:.2f}× the best peer, {p} {v:.0f} MB/s)"

            goal("sequential read ahead of every peer mount", seq_peers)
        else:
            def seq_2x():
                v, p = best_peer("seq", True)
                x = need(MOUNT, "seq") / v
                return f"{verdict(x >= 2.0)} ({x:.2f}× the best peer, {p} {v:.0f} MB/s)"

            goal("sequential read ≥ 2× the best peer mount", seq_2x)

        def h5_bytes():
            x = need(MOUNT, "h5_x")
            return f"{verdict(x <= 1.3)} ({x:.2f}× the dataset's bytes)"

        goal("h5py fetches ≤ 1.3× the dataset's bytes", h5_bytes)

        def h5_fast():
            v, p = best_peer("h5_s", False)
            t = need(MOUNT, "h5_s")
            return f"{verdict(t < v)} ({t:.2f} s; fastest peer {p} {v:.2f} s)"

        goal("h5py read faster than every peer", h5_fast)

        def ls_one():
            n = need(MOUNT, "ls_req")
            return f"{verdict(n == 1)} ({n:.0f} request(s) during ls -l)"

        goal("ls -l in one listing request", ls_one)

        def rss():
            r = need(MOUNT, "rss")
            return f"{verdict(r <= RSS_GOAL_MIB)} (peak {r:.0f} MiB, default cache settings)"

        goal(f"peak RSS ≤ {RSS_GOAL_MIB:.0f} MiB", rss)
    print("\n".join(lines))
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "gen-h5":
        return cmd_gen_h5(args[0], int(args[1]), int(args[2]), int(args[3]))
    if cmd == "h5read":
        return cmd_h5read(args[0], args[1], args[2])
    if cmd == "randread":
        return cmd_randread(args[0], args[1], int(args[2]), int(args[3]))
    if cmd == "alog":
        return cmd_alog(args[0], int(args[1]))
    if cmd == "table":
        return cmd_table(args[0], args[1])
    if cmd == "goals":
        return cmd_goals(args[0])
    print(f"unknown subcommand {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
