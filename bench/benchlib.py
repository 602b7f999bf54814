#!/usr/bin/env python3
"""Helpers for the bench scripts (Python 3.11 standard library only, except the
subcommands marked [pyarrow], which bench/python.sh runs with its venv's Python).

Subcommands:
  size SIZE                      print SIZE (e.g. 2G, 64M, 512K, 1000) in bytes
  freeport                       print a free TCP port on 127.0.0.1
  rate RATE                      print RATE (e.g. 10gbit, 500mbit, 1e9, 0) in bit/s
  gen-file PATH BYTES SEED       write BYTES pseudo-random bytes to PATH
  gen-tree ROOT DIRS FILES BYTES SEED
                                 DIRS directories d00.. under ROOT, FILES files of
                                 BYTES each spread evenly over them
  gen-nested ROOT TOP SUB FILES_PER_DIR
                                 TOP dirs, each with SUB-1 subdirs, FILES_PER_DIR
                                 small files in every dir (listing tree)
  gen-flat ROOT COUNT            COUNT empty files under ROOT
  treecmp SRC DST                compare two trees (paths, sizes, sha256); exit 1 if different
  curlcfg get|put BASEURL REMOTE LOCALDIR OUT [TARGETDIR]
                                 write a curl -K config with one url/output (or
                                 upload-file/url) pair per file of LOCALDIR; for get,
                                 outputs go under TARGETDIR (default LOCALDIR)
  count-lines FILE [--files-only]
  count-propfind FILE            number of <D:response> elements in a PROPFIND answer
  stats VALUES...                print "median min max" of the numbers
  table TSV [CONDITION]          print the results TSV as a Markdown table; with CONDITION
                                 (http, https, wan...), add "× fastest peer" (median over the
                                 fastest non-cta-data row of the same case) and mark cta-data
                                 rows against the goals of issue 13
  table-py TSV                   the same for bench/python.sh: server bytes, × column
                                 and × CLI (median over the case's `cli` row) columns
  gen-parquet PATH BYTES SEED    [pyarrow] about BYTES of Parquet: float64 columns
                                 c0..c7 of pseudo-random values, uncompressed, no
                                 dictionary, 8 row groups
  parquet-info PATH COLUMN       [pyarrow] print "rows=R row_groups=G column_bytes=B
                                 sum=S": B is the sum of total_compressed_size of the
                                 column's chunks, S the sum of its values
  close SUM EXPECTED             exit 0 if the two floats agree to 1e-9 (relative)
"""

import hashlib
import os
import random
import re
import socket
import statistics
import sys
from pathlib import Path
from urllib.parse import quote

CHUNK = 8 << 20


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*", text, re.IGNORECASE)
    if not m:
        raise SystemExit(f"bad size: {text!r} (use e.g. 2G, 256M, 64K or a byte count)")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def write_random(path: Path, nbytes: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = nbytes
        while left > 0:
            n = min(CHUNK, left)
            f.write(rng.randbytes(n))
            left -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk_files(root: Path) -> dict[str, Path]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p
    return out


def cmd_treecmp(src: str, dst: str) -> int:
    s, d = Path(src), Path(dst)
    if not d.is_dir():
        print(f"treecmp: {dst} is not a directory", file=sys.stderr)
        return 1
    sf, df = walk_files(s), walk_files(d)
    missing = sorted(set(sf) - set(df))
    extra = sorted(set(df) - set(sf))
    bad = []
    for rel in sorted(set(sf) & set(df)):
        a, b = sf[rel], df[rel]
        if a.stat().st_size != b.stat().st_size or sha256_file(a) != sha256_file(b):
            bad.append(rel)
    if missing or extra or bad:
        print(
            f"treecmp: {len(sf)} source files, {len(df)} in {dst}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]}), "
            f"{len(bad)} with wrong content (e.g. {bad[:3]})",
            file=sys.stderr,
        )
        return 1
    print(f"treecmp: {len(sf)} files identical")
    return 0


def cmd_curlcfg(mode: str, base: str, remote: str, local: str, out: str, target: str = "") -> int:
    root = Path(local)
    files = sorted(walk_files(root))
    dest = Path(target) if target else root
    with open(out, "w") as f:
        for rel in files:
            url = base.rstrip("/") + quote("/" + remote.strip("/") + "/" + rel)
            lp = str(dest / rel).replace("\\", "\\\\").replace('"', '\\"')
            if mode == "get":
                f.write(f'url = "{url}"\noutput = "{lp}"\n')
            elif mode == "put":
                f.write(f'upload-file = "{lp}"\nurl = "{url}"\n')
            else:
                raise SystemExit(f"curlcfg: mode must be get or put, not {mode}")
    return 0


def cmd_stats(values: list[str]) -> int:
    xs = [float(v) for v in values]
    print(f"{statistics.median(xs):.3f} {min(xs):.3f} {max(xs):.3f}")
    return 0


def goal_for(case: str, cond: str):
    """(limit, reference, text) of issue 13's goal for a cta-data row of CASE, or None.
    reference: "peer" (fastest peer of the case) or a tool name."""
    if case.startswith("1 get"):
        return 0.8, "peer", "≤ 0.8× fastest peer"
    if case.startswith("2 put"):
        return 0.9, "peer", "≤ 0.9× fastest peer"
    if case.startswith("5 get -r"):
        return 0.8, "peer", "≤ 0.8× fastest peer"
    if case.startswith("5 put -r"):
        if cond == "http":
            return 0.8, "curl", "≤ 0.8× curl -Z"
        return 0.8, "peer", "≤ 0.8× fastest peer (\"well ahead\")"
    return None


def rss_limit(case: str):
    if case.startswith(("1 ", "2 ")):
        return 64.0
    if case.startswith("5 "):
        return 128.0
    return None


def cmd_table(tsv: str, cond: str = "") -> int:
    rows = []
    with open(tsv) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                parts = line.split("\t")
                rows.append(parts + [""] * (10 - len(parts)))
    fastest: dict[str, tuple[float, str]] = {}
    tool_best: dict[tuple[str, str], float] = {}
    for r in rows:
        case, tool, med, status = r[0], r[1], r[4], r[9]
        if not med or status != "ok":
            continue
        m = float(med)
        if tool != "cta-data" and (case not in fastest or m < fastest[case][0]):
            fastest[case] = (m, tool)
        key = (case, tool)
        tool_best[key] = min(m, tool_best.get(key, m))
    cols = ["case", "tool", "command", "runs", "median s", "min–max s", "MiB/s", "CPU s", "peak RSS MiB"]
    if cond:
        cols += ["× fastest peer", "goal (issue 13)"]
    cols += ["status"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        case, tool, cmd, runs, med, rng, rate, cpu, rss, status = r[:10]
        out = [case, tool, f"`{cmd}`" if cmd else "", runs, med, rng, rate, cpu, rss]
        if cond:
            ratio = goal = ""
            if med and status == "ok" and case in fastest:
                ratio = f"{float(med) / fastest[case][0]:.2f}×"
                if tool == "cta-data" and float(med) == fastest[case][0]:
                    ratio += " (=)"
            if tool == "cta-data":
                g = goal_for(case, cond)
                if g is None:
                    goal = "–"
                elif not med or status != "ok":
                    goal = "not met (no figure)"
                else:
                    lim, ref, text = g
                    refv = fastest.get(case, (None,))[0] if ref == "peer" else tool_best.get((case, ref))
                    if refv is None:
                        goal = f"no reference ({text})"
                    else:
                        x = float(med) / refv
                        goal = f"{'met' if x <= lim else 'not met'}: {x:.2f}× ({text})"
                    rl = rss_limit(case)
                    if rl is not None and rss and float(rss) > rl:
                        goal += f"; RSS > {rl:g} MiB"
            out += [ratio, goal]
        out += [status]
        print("| " + " | ".join(p.replace("|", "\\|") for p in out) + " |")
    if cond and fastest:
        print()
        print("Fastest peer per case: " + "; ".join(f"{c}: {t} {m:.3f} s" for c, (m, t) in fastest.items()))
    return 0


def cmd_table_py(tsv: str) -> int:
    """Columns of the TSV: case, tool, command, runs, median, range, MiB/s, CPU, RSS,
    status, server bytes, column bytes, in-Python seconds."""
    rows = []
    with open(tsv) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                parts = line.split("\t")
                rows.append(parts + [""] * (13 - len(parts)))
    cli = {r[0]: float(r[4]) for r in rows if r[1] == "cli" and r[4]}
    cols = ["case", "client", "command", "runs", "median s", "min–max s", "× CLI", "MiB/s",
            "CPU s", "peak RSS MiB", "server bytes", "× column", "read_parquet s", "status"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        case, tool, cmd, runs, med, rng, rate, cpu, rss, status, sent, colb, inpy = r[:13]
        vs = ""
        if med and case in cli and tool != "cli":
            vs = f"{float(med) / cli[case]:.2f}×"
        xcol = ""
        if sent and colb and int(colb) > 0:
            xcol = f"{float(sent) / int(colb):.2f}×"
        sent = f"{int(float(sent)):,}" if sent else ""
        out = [case, tool, f"`{cmd}`" if cmd else "", runs, med, rng, vs, rate, cpu, rss, sent, xcol, inpy, status]
        print("| " + " | ".join(p.replace("|", "\\|") for p in out) + " |")
    verdicts = []
    for r in rows:
        case, tool, cmd, med, sent, colb = r[0], r[1], r[2], r[4], r[10], r[11]
        if tool != "python":
            continue
        if case[:1] in "12" and med and case in cli:
            x = float(med) / cli[case]
            verdicts.append(f"- case {case}, `{cmd}`: {x:.2f}× the CLI: {'met' if x <= 1.1 else 'NOT met'} (goal ≤ 1.10×)")
        elif case[:1] == "3" and sent and colb:
            x = float(sent) / int(colb)
            verdicts.append(f"- case {case}, `{cmd}`: {x:.2f}× the column's bytes: {'met' if x <= 1.2 else 'NOT met'} (goal ≤ 1.20×)")
        elif case[:1] == "3":
            verdicts.append(f"- case {case}, `{cmd}`: no measure ({r[9] or 'no byte count'})")
    if verdicts:
        print()
        print("Goals:")
        print()
        print("\n".join(verdicts))
    return 0


def cmd_gen_parquet(path: str, nbytes: int, seed: int) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    ncols = 8
    rows = max(8, nbytes // (8 * ncols))
    rng = np.random.default_rng(seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    per_group = -(-rows // 8)
    schema = pa.schema([(f"c{i}", pa.float64()) for i in range(ncols)])
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as w:
        done = 0
        while done < rows:
            n = min(per_group, rows - done)
            w.write_table(pa.table({f"c{i}": rng.random(n) for i in range(ncols)}, schema=schema),
                          row_group_size=n)
            done += n
    return 0


def cmd_parquet_info(path: str, column: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    md = f.metadata
    idx = md.schema.names.index(column)
    colb = sum(md.row_group(g).column(idx).total_compressed_size for g in range(md.num_row_groups))
    total = pc.sum(f.read(columns=[column]).column(column)).as_py()
    print(f"rows={md.num_rows} row_groups={md.num_row_groups} column_bytes={colb} sum={total!r}")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "size":
        print(parse_size(args[0]))
    elif cmd == "rate":
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)(?:bit|bps|b)?(?:/s)?\s*", args[0], re.IGNORECASE)
        if not m:
            raise SystemExit(f"bad rate: {args[0]!r} (use e.g. 10gbit, 500mbit, 0)")
        mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
        print(int(float(m.group(1)) * mult))
    elif cmd == "freeport":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1])
    elif cmd == "gen-file":
        write_random(Path(args[0]), int(args[1]), random.Random(int(args[2])))
    elif cmd == "gen-tree":
        root, ndirs, nfiles, nbytes, seed = Path(args[0]), int(args[1]), int(args[2]), int(args[3]), int(args[4])
        rng = random.Random(seed)
        for i in range(nfiles):
            write_random(root / f"d{i % ndirs:02d}" / f"f{i:05d}.dat", nbytes, rng)
    elif cmd == "gen-nested":
        root, top, sub, per = Path(args[0]), int(args[1]), int(args[2]), int(args[3])
        for t in range(top):
            dirs = [root / f"t{t:02d}"] + [root / f"t{t:02d}" / f"s{s:02d}" for s in range(sub - 1)]
            for d in dirs:
                d.mkdir(parents=True, exist_ok=True)
                for k in range(per):
                    (d / f"f{k:02d}.txt").write_bytes(f"{d.name}/{k}\n".encode())
    elif cmd == "gen-flat":
        root, count = Path(args[0]), int(args[1])
        root.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / f"entry{i:05d}").touch()
    elif cmd == "treecmp":
        return cmd_treecmp(args[0], args[1])
    elif cmd == "curlcfg":
        return cmd_curlcfg(*args)
    elif cmd == "count-lines":
        lines = [l for l in Path(args[0]).read_text(errors="replace").splitlines() if l.strip()]
        if "--files-only" in args[1:]:
            lines = [l for l in lines if not l.rstrip().endswith("/")]
        print(len(lines))
    elif cmd == "count-propfind":
        print(len(re.findall(r"<(?:\w+:)?response[\s>]", Path(args[0]).read_text(errors="replace"))))
    elif cmd == "stats":
        return cmd_stats(args)
    elif cmd == "table":
        return cmd_table(*args[:2])
    elif cmd == "table-py":
        return cmd_table_py(args[0])
    elif cmd == "gen-parquet":
        return cmd_gen_parquet(args[0], int(args[1]), int(args[2]))
    elif cmd == "parquet-info":
        return cmd_parquet_info(args[0], args[1])
    elif cmd == "close":
        a, b = float(args[0]), float(args[1])
        return 0 if abs(a - b) <= 1e-9 * max(1.0, abs(b)) else 1
    else:
        print(f"unknown subcommand {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
