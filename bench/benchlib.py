#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3.11 standard library only).

Subcommands:
  size SIZE                      print SIZE (e.g. 2G, 64M, 512K, 1000) in bytes
  freeport                       print a free TCP port on 127.0.0.1
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
  table TSV                      print the results TSV as a Markdown table
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


def cmd_table(tsv: str) -> int:
    cols = ["case", "tool", "command", "runs", "median s", "min–max s", "MiB/s", "CPU s", "peak RSS MiB", "status"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    with open(tsv) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (len(cols) - len(parts))
            parts = [p.replace("|", "\\|") for p in parts[: len(cols)]]
            parts[2] = f"`{parts[2]}`" if parts[2] else ""
            print("| " + " | ".join(parts) + " |")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "size":
        print(parse_size(args[0]))
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
        return cmd_table(args[0])
    else:
        print(f"unknown subcommand {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
