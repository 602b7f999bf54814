"""The fsspec filesystem ``cta://``: every operation against real servers (nginx with dav-ext,
the dCache door double, the platform double), counted on the server's side."""

from __future__ import annotations

import os
import pickle
import re

import fsspec
import pytest

import ctadata
from ctadata.fsspec import CtaFileSystem


def _fs(server) -> CtaFileSystem:
    return fsspec.filesystem("cta", config=str(server.config_file))


def _gets(nginx, uri: str):
    """(range header, bytes sent) of every GET of ``uri`` in nginx's access log."""
    out = []
    for line in nginx.access_log():
        m = re.match(r'GET "([^"]*)" (\d+) range="([^"]*)" .* sent=(\d+)', line)
        if m and m.group(1) == uri:
            out.append((m.group(3), int(m.group(4))))
    return out


def _methods(nginx, method: str):
    return [line for line in nginx.access_log() if line.startswith(method + " ")]


def test_the_entry_point_makes_cta_urls_plain_strings(nginx):
    nginx.put_file("d/x.txt", b"hello")
    assert fsspec.get_filesystem_class("cta") is CtaFileSystem
    with fsspec.open("cta://dav/d/x.txt", "rb", config=str(nginx.config_file)) as f:
        assert f.read() == b"hello"
    fs, path = fsspec.core.url_to_fs("cta://dav/d/x.txt", config=str(nginx.config_file))
    assert isinstance(fs, CtaFileSystem) and path == "dav/d/x.txt"
    assert fs.unstrip_protocol(path) == "cta://dav/d/x.txt"


def test_ls_info_exists_and_find(nginx):
    nginx.put_file("t/a.bin", b"a" * 10)
    nginx.put_file("t/sub/b.bin", b"b" * 20)
    nginx.put_file("t/sub/deep/c.bin", b"c" * 30)
    fs = _fs(nginx)
    assert fs.ls("dav/t", detail=False) == ["dav/t/a.bin", "dav/t/sub"]
    # A URL given, URLs back (pyarrow's datasets check that what they find is below the base).
    assert fs.ls("cta://dav/t", detail=False) == ["cta://dav/t/a.bin", "cta://dav/t/sub"]
    assert fs.find("cta://dav/t/sub") == ["cta://dav/t/sub/b.bin", "cta://dav/t/sub/deep/c.bin"]
    by_name = {e["name"]: e for e in fs.ls("dav/t")}
    assert by_name["dav/t/a.bin"]["type"] == "file" and by_name["dav/t/a.bin"]["size"] == 10
    assert by_name["dav/t/sub"]["type"] == "directory"
    info = fs.info("dav/t/sub/b.bin")
    assert (info["name"], info["size"], info["type"]) == ("dav/t/sub/b.bin", 20, "file")
    assert isinstance(info["mtime"], float) and info["mtime"] > 1.6e9
    assert fs.info("cta://dav/t/sub/")["type"] == "directory"
    assert fs.isdir("dav/t/sub") and fs.isfile("dav/t/a.bin") and not fs.isfile("dav/t/sub")
    assert fs.exists("dav/t/a.bin") and not fs.exists("dav/t/nothing")
    assert fs.size("dav/t/sub/deep/c.bin") == 30
    assert fs.find("dav/t") == ["dav/t/a.bin", "dav/t/sub/b.bin", "dav/t/sub/deep/c.bin"]
    assert fs.find("dav/t", withdirs=True) == [
        "dav/t",
        "dav/t/a.bin",
        "dav/t/sub",
        "dav/t/sub/b.bin",
        "dav/t/sub/deep",
        "dav/t/sub/deep/c.bin",
    ]
    assert fs.find("dav/t", maxdepth=1) == ["dav/t/a.bin"]
    assert fs.find("dav/t/a.bin") == ["dav/t/a.bin"]
    assert fs.find("dav/t/nothing") == []
    assert fs.glob("dav/t/**/*.bin") == ["dav/t/a.bin", "dav/t/sub/b.bin", "dav/t/sub/deep/c.bin"]
    assert sorted(d for d, _, _ in fs.walk("dav/t")) == ["dav/t", "dav/t/sub", "dav/t/sub/deep"]
    assert fs.du("dav/t") == 60
    with pytest.raises(FileNotFoundError):
        fs.info("dav/t/nothing")
    with pytest.raises(FileNotFoundError):
        fs.ls("dav/t/nothing")


def test_cat_file_reads_exactly_the_range_asked(nginx):
    data = bytes(range(256)) * 400
    nginx.put_file("r/f.bin", data)
    fs = _fs(nginx)
    assert fs.cat_file("dav/r/f.bin") == data
    assert fs.cat_file("dav/r/f.bin", 100, 1100) == data[100:1100]
    assert fs.cat_file("dav/r/f.bin", -50) == data[-50:]
    assert fs.cat_file("dav/r/f.bin", 10, -10) == data[10:-10]
    assert fs.cat_file("dav/r/f.bin", len(data) - 5, len(data) + 100) == data[-5:]
    assert fs.cat_file("dav/r/f.bin", len(data) + 1) == b""
    assert fs.cat("dav/r/f.bin") == data
    ranged = [sent for r, sent in _gets(nginx, "/r/f.bin") if r == "bytes=100-1099"]
    assert len(ranged) == 1 and 1000 <= ranged[0] < 1000 + 1024  # the range and its headers only


def test_a_file_object_seeks_and_reads_ahead_without_dragging_blocks(nginx):
    data = os.urandom(8 << 20)
    nginx.put_file("o/big.bin", data)
    fs = _fs(nginx)
    with fs.open("cta://dav/o/big.bin", "rb") as f:
        assert f.size == len(data)
        f.seek(5 << 20)
        assert f.read(4 << 10) == data[5 << 20 : (5 << 20) + (4 << 10)]
        assert f.read(4 << 10) == data[(5 << 20) + (4 << 10) : (5 << 20) + (8 << 10)]  # from the cache
        f.seek(100)
        assert f.read(3 << 20) == data[100 : 100 + (3 << 20)]  # big: fetched exactly
        f.seek(0)
        whole = b"".join(iter(lambda: f.read(64 << 10), b""))
        assert whole == data
    sent = sum(s for _, s in _gets(nginx, "/o/big.bin"))
    # The three reads above (1 MiB read-ahead, 3 MiB exactly) and the sequential pass
    # (doubling windows): never twice the file.
    assert sent < 2 * len(data) - (2 << 20), sent
    sequential = len(_gets(nginx, "/o/big.bin"))
    assert sequential <= 10, f"{sequential} requests for 8 MiB read sequentially"


def test_writing_a_file_is_one_verified_upload_and_a_failed_block_sends_nothing(nginx):
    fs = _fs(nginx)
    with fs.open("cta://dav/w/new.bin", "wb") as f:
        for _ in range(10):
            f.write(b"x" * (1 << 20))
    assert nginx.read_file("w/new.bin") == b"x" * (10 << 20)
    assert len(_methods(nginx, "PUT")) == 1
    with pytest.raises(RuntimeError, match="boom"):
        with fs.open("dav/w/new.bin", "wb") as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert nginx.read_file("w/new.bin") == b"x" * (10 << 20)
    assert len(_methods(nginx, "PUT")) == 1
    fs.pipe_file("dav/w/small.txt", b"small")
    assert nginx.read_file("w/small.txt") == b"small"
    with pytest.raises(FileExistsError):
        fs.open("dav/w/small.txt", "xb")
    assert not [p for p in os.listdir(os.environ.get("TMPDIR", "/tmp")) if p.startswith("ctadata-upload-")]


def test_get_put_mkdir_mv_rm(nginx, isolated_env):
    fs = _fs(nginx)
    src = isolated_env.tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A" * 100)
    (src / "sub" / "b.txt").write_bytes(b"B" * 200)
    fs.put(str(src), "dav/up", recursive=True)
    assert nginx.read_file("up/a.txt") == b"A" * 100
    assert nginx.read_file("up/sub/b.txt") == b"B" * 200
    fs.put_file(str(src / "a.txt"), "dav/up/copy.txt")
    assert nginx.read_file("up/copy.txt") == b"A" * 100

    dst = isolated_env.tmp / "dst"
    fs.get("dav/up", str(dst), recursive=True)
    assert (dst / "a.txt").read_bytes() == b"A" * 100
    assert (dst / "sub" / "b.txt").read_bytes() == b"B" * 200
    fs.get_file("dav/up/a.txt", str(isolated_env.tmp / "one.txt"))
    assert (isolated_env.tmp / "one.txt").read_bytes() == b"A" * 100
    assert not list(isolated_env.tmp.rglob("*.part"))

    fs.mkdir("dav/made/deeper")
    assert nginx.path("made/deeper").is_dir()
    fs.makedirs("dav/made/deeper", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs("dav/made/deeper")
    fs.mv("dav/up/copy.txt", "dav/made/moved.txt")
    assert nginx.read_file("made/moved.txt") == b"A" * 100 and nginx.read_file("up/copy.txt") is None
    assert not _gets(nginx, "/made/moved.txt")  # a server-side MOVE: no byte came here
    fs.rm("dav/made/moved.txt")
    assert nginx.read_file("made/moved.txt") is None
    fs.rm("dav/up", recursive=True)
    assert not nginx.path("up").exists()
    with pytest.raises(FileNotFoundError):
        fs.rm("dav/up/a.txt")


@pytest.mark.parametrize("chunk_kib", [1024, 512, 128])
def test_one_column_of_parquet_through_pandas_costs_about_that_column(nginx, isolated_env, chunk_kib):
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    n = 1 << 19
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(3)
    table = pa.table({f"c{i}": rng.random(n) for i in range(8)})
    local = isolated_env.tmp / "t.parquet"
    pq.write_table(table, local, compression="none", row_group_size=chunk_kib * 1024 // 8)
    nginx.put_file("pq/run1/t.parquet", local.read_bytes())
    meta = pq.ParquetFile(local).metadata
    column_bytes = sum(meta.row_group(g).column(3).total_compressed_size for g in range(meta.num_row_groups))
    file_size = local.stat().st_size

    df = pd.read_parquet("cta://dav/pq/run1/t.parquet", columns=["c3"], storage_options={"config": str(nginx.config_file)})
    assert df["c3"].equals(table.column("c3").to_pandas())
    sent = sum(s for _, s in _gets(nginx, "/pq/run1/t.parquet"))
    assert sent <= 1.2 * column_bytes + (64 << 10), (sent, column_bytes, file_size)
    assert sent < file_size / 4

    # A directory is a dataset; pyarrow takes the filesystem as it is.
    nginx.put_file("pq/run1/u.parquet", local.read_bytes())
    whole = pd.read_parquet("cta://dav/pq/run1/", columns=["c0"], storage_options={"config": str(nginx.config_file)})
    assert len(whole) == 2 * n
    import pyarrow.dataset as ds

    for source in ("dav/pq/run1", "cta://dav/pq/run1"):
        dataset = ds.dataset(source, filesystem=_fs(nginx), format="parquet")
        assert dataset.count_rows() == 2 * n


def test_h5py_reads_one_dataset_through_fs_open(nginx, isolated_env):
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    local = isolated_env.tmp / "f.h5"
    rng = np.random.default_rng(1)
    wanted = rng.random(1 << 16)
    with h5py.File(local, "w") as f:
        f.create_dataset("dl1/event/image", data=rng.random((64, 1 << 15)))
        f.create_dataset("dl1/event/energy", data=wanted)
        f.attrs["obs_id"] = 42
    nginx.put_file("h5/f.h5", local.read_bytes())
    size = local.stat().st_size
    fs = _fs(nginx)
    with fs.open("cta://dav/h5/f.h5", "rb") as remote, h5py.File(remote, "r") as f:
        assert f.attrs["obs_id"] == 42
        assert np.array_equal(f["dl1/event/energy"][:], wanted)
    sent = sum(s for _, s in _gets(nginx, "/h5/f.h5"))
    assert sent < size / 3, (sent, size)  # the 16 MiB image was not read


def test_the_platform_profile_reads_in_place_too(platform):
    data = os.urandom(300_000)
    platform.put_file("lst/DL2/run1.bin", data)
    fs = fsspec.filesystem("cta")
    assert fs.ls("platform/lst/DL2", detail=False) == ["platform/lst/DL2/run1.bin"]
    assert fs.cat_file("cta://platform/lst/DL2/run1.bin", 1000, 2000) == data[1000:2000]
    before = len(platform.requests())
    with fs.open("platform/lst/DL2/run1.bin") as f:
        f.seek(-10, 2)
        assert f.read() == data[-10:]
        for start in (0, 100_000, 200_000):
            f.seek(start)
            assert f.read(50_000) == data[start : start + 50_000]
    asked = [r["path"] for r in platform.requests()[before:]]
    # The size is known from the open: the reads do not look the file up again.
    assert not [p for p in asked if "/list/" in p], asked
    assert len(asked) == 4, asked  # one ranged read each


def test_the_door_reads_with_its_token_and_pickles_without_it(door):
    data = os.urandom(100_000)
    door.put_file("cta/x.bin", data)
    fs = fsspec.filesystem("cta", config=str(door.config_file))
    assert fs.cat_file("door/cta/x.bin", 5, 50) == data[5:50]
    blob = pickle.dumps(fs)
    assert door.token.encode() not in blob
    assert door.token not in repr(fs)
    again = pickle.loads(blob)
    assert again.cat_file("door/cta/x.bin") == data
    assert door.stats()["pool_saw_authorization"] is False  # the pool got no token


def test_bad_input_gives_the_right_exception_and_keeps_what_was_there(door, isolated_env, monkeypatch):
    door.put_file("cta/x.bin", b"z" * 500_000)
    fs = fsspec.filesystem("cta", config=str(door.config_file))
    with pytest.raises(ctadata.NotFoundError) as e:
        fs.open("door/cta/missing.bin")
    assert isinstance(e.value, FileNotFoundError) and "missing.bin" in str(e.value)
    with pytest.raises(FileNotFoundError):
        fs.cat_file("door/cta/missing.bin")
    with pytest.raises(ctadata.ConfigError, match="nosuchprofile"):
        fs.ls("nosuchprofile/cta")
    with pytest.raises(ctadata.UsageError):
        fs.ls("cta://")

    keep = isolated_env.tmp / "kept.bin"
    keep.write_bytes(b"old")
    door.corrupt_digest(True)
    with pytest.raises(ctadata.IntegrityError) as e:
        fs.get_file("door/cta/x.bin", str(keep))
    assert "x.bin" in str(e.value)
    assert keep.read_bytes() == b"old"
    assert [p.name for p in isolated_env.tmp.iterdir() if p.name.startswith("kept")] == ["kept.bin"]
    door.corrupt_digest(False)
    # A body cut short is resumed by the engine, so the data still arrives whole.
    door.truncate_next_get(1000)
    fs.get_file("door/cta/x.bin", str(keep))
    assert keep.read_bytes() == b"z" * 500_000
    door.truncate_next_get(1000)
    assert fs.cat_file("door/cta/x.bin", 0, 400_000) == b"z" * 400_000

    door.expire_token()
    fresh = CtaFileSystem(config=str(door.config_file), skip_instance_cache=True)
    with pytest.raises(ctadata.AuthenticationError) as e:
        fresh.cat_file("door/cta/x.bin")
    assert e.value.hint
    for text in (str(e.value), repr(e.value), repr(fresh)):
        assert door.token not in text


def _parquet_run(server, rel_dir: str, files: int, rows: int):
    """``files`` Parquet files of ``rows`` rows (columns id, energy, c0..c3) under ``rel_dir``;
    the sum of ``energy`` over all."""
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import io

    rng = np.random.default_rng(7)
    total = 0.0
    for i in range(files):
        energy = rng.random(rows)
        total += float(energy.sum())
        cols = {"id": np.arange(i * rows, (i + 1) * rows), "energy": energy}
        cols.update({f"c{k}": rng.random(rows) for k in range(4)})
        buf = io.BytesIO()
        pq.write_table(pa.table(cols), buf, compression="none")
        server.put_file(f"{rel_dir}/part-{i:03d}.parquet", buf.getvalue())
    return total


def test_dask_reads_on_two_worker_processes_each_with_its_own_backend(door):
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    import dask.dataframe as dd

    total = _parquet_run(door, "cta/lst/DL2/run1", files=4, rows=50_000)
    config = str(door.config_file)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        df = dd.read_parquet(
            "cta://door/cta/lst/DL2/run1/", columns=["energy"], storage_options={"config": config}
        )
        assert df.npartitions == 4
        assert df["energy"].sum().compute() == pytest.approx(total)

        def backends(config=config):
            import os

            from ctadata.fsspec import CtaFileSystem

            fs = CtaFileSystem(config=config)  # fsspec's per-process instance cache
            return os.getpid(), sorted(fs._clients)

        seen = client.run(backends)
        pids = {pid for pid, _ in seen.values()}
        assert len(pids) == 2 and os.getpid() not in pids
        # Every worker that read opened the profile itself (its own token, own pool).
        assert any(profiles == ["door"] for _, profiles in seen.values()), seen

        # What travels to the workers carries no token.
        fs = fsspec.filesystem("cta", config=config)
        assert door.token.encode() not in pickle.dumps(fs)
        graph = pickle.dumps(df.__dask_graph__()) if hasattr(df, "__dask_graph__") else b""
        assert door.token.encode() not in graph


def test_the_dask_example_runs(door):
    pytest.importorskip("distributed")
    import pathlib
    import subprocess
    import sys

    total = _parquet_run(door, "cta/lst/DL2/run2", files=3, rows=20_000)
    example = pathlib.Path(__file__).resolve().parents[3] / "examples" / "dask_read_parquet.py"
    out = subprocess.run(
        [sys.executable, str(example), "cta://door/cta/lst/DL2/run2/", "--config", str(door.config_file),
         "--column", "energy", "--workers", "2"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"sum(energy) = {total:.6f}" in out.stdout, out.stdout
    assert "60000 rows" in out.stdout
    assert door.token not in out.stdout + out.stderr


def test_listings_are_cached_briefly_and_own_writes_forget_them(nginx):
    nginx.put_file("c/a.bin", b"a" * 10)
    nginx.put_file("c/sub/b.bin", b"b" * 20)
    fs = _fs(nginx)
    fs.find("dav/c")
    before = len(nginx.access_log())
    assert fs.info("dav/c/sub/b.bin")["size"] == 20
    assert fs.ls("dav/c/sub", detail=False) == ["dav/c/sub/b.bin"]
    assert fs.isfile("dav/c/a.bin") and fs.size("dav/c/a.bin") == 10
    assert len(nginx.access_log()) == before  # all from the listings the walk brought
    fs.pipe_file("dav/c/a.bin", b"new")
    assert fs.size("dav/c/a.bin") == 3
    fs.rm("dav/c/sub/b.bin")
    assert not fs.exists("dav/c/sub/b.bin") and fs.ls("dav/c/sub") == []
    # Without the cache every question goes to the server.
    fresh = CtaFileSystem(config=str(nginx.config_file), use_listings_cache=False)
    fresh.find("dav/c")
    before = len(nginx.access_log())
    fresh.info("dav/c/a.bin")
    assert len(nginx.access_log()) > before
    # The dataset case: files found by a scan are opened without asking about each again.
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import io

    buf = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(100))}), buf)
    for i in range(5):
        nginx.put_file(f"ds/t{i}.parquet", buf.getvalue())
    before = len(nginx.access_log())
    df = pd.read_parquet("cta://dav/ds/", storage_options={"config": str(nginx.config_file)})
    assert len(df) == 500
    metadata = [line for line in nginx.access_log()[before:] if not line.startswith("GET ")]
    assert len(metadata) <= 10, metadata  # not two questions per file and per open
