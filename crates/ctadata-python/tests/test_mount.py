"""``cta-data mount`` seen from Python (issue 19): the analysis stack reading by path.

Each test writes its files straight into the ``nginx`` fixture's served directory, mounts that
directory with ``cta-data mount`` (the ``mount_dav`` fixture of conftest.py, read-only, the
default) and reads through the mountpoint with the library a user would: h5py, PyTables (which
cannot read a Python file object: the reason the mount exists), pandas/pyarrow, and plain
``os``/``open``. Values are checked against the source; where the point is reading a part of
a file, the bytes nginx sent for that file (its access log's ``$bytes_sent``: headers and body
of every request of the file's URI, counted after the mount is stopped so that every request
has ended) are bounded.

``CTA_MOUNT_IMPL=rclone`` runs the same tests on ``rclone mount`` (see conftest.py).
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import random
import stat
import urllib.parse

import numpy as np
import pytest

from conftest import nginx_bytes_sent

MiB = 1024 * 1024

#: Bytes reading one HDF5 dataset may cost beyond 1.3 × its bytes (the issue's goal), for the
#: file's metadata. HDF5 reads it (superblock, root group heap and B-tree, object headers, the
#: chunk index) in 8-9 reads of under 64 KiB, a few KiB in all, but at 1-2 places of the file
#: (measured with strace of h5py on these files); a mount fetches whole blocks and the kernel
#: reads a FUSE file in read-ahead windows, so with blocks of up to 1 MiB that is one block of
#: metadata plus the block-aligned ends of the data: 2 MiB. Not meant for read-ahead overshoot.
METADATA_ALLOWANCE = 2 * MiB

#: 16 MiB of float64 per HDF5 dataset; three of them in a file, one read.
H5_ELEMS = 2 * MiB
#: Elements per HDF5 chunk in the chunked layout (1 MiB chunks).
H5_CHUNK = MiB // 8


def _uri(nginx, rel: str) -> str:
    """The request URI nginx logs for a storage path."""
    base = urllib.parse.urlparse(nginx.url).path.rstrip("/")
    return base + "/" + urllib.parse.quote(rel.lstrip("/"))


#: Access log lines shown in a failure message.
SHOWN = 24


class Traffic:
    """What nginx sent for one file: ``sent`` bytes over ``requests`` (access log lines)."""

    def __init__(self, lines, uri: str):
        self.requests = [line for line in lines if line.split(" ")[1:2] == [f'"{uri}"']]
        self.sent = nginx_bytes_sent(lines, uri)

    def __str__(self) -> str:
        shown = "\n  ".join(self.requests[:SHOWN])
        more = f"\n  ... {len(self.requests) - SHOWN} more" if len(self.requests) > SHOWN else ""
        return f"{self.sent} bytes in {len(self.requests)} requests:\n  {shown}{more}"


def _traffic_after(nginx, mount, mark: int, rel: str) -> Traffic:
    """Stops ``mount`` (checking it unmounted cleanly, so that every request has ended), then
    what nginx sent for ``rel`` in the access log lines after the first ``mark``."""
    mount.check_unmount()
    return Traffic(nginx.access_log()[mark:], _uri(nginx, rel))


@pytest.mark.parametrize("layout", ["contiguous", "chunked"])
def test_h5py_reads_one_dataset_of_three(nginx, mount_dav, layout):
    import h5py

    rng = np.random.default_rng(19)
    data = {name: rng.standard_normal(H5_ELEMS) for name in ("first", "middle", "last")}
    src = nginx.mkdir("mtest") / "run.h5"
    with h5py.File(src, "w") as f:
        for name, values in data.items():
            f.create_dataset(name, data=values, chunks=(H5_CHUNK,) if layout == "chunked" else None)
    m = mount_dav("mtest")
    mark = len(nginx.access_log())

    with h5py.File(m.path / "run.h5", "r") as f:
        assert sorted(f.keys()) == ["first", "last", "middle"]
        assert f["middle"].chunks == ((H5_CHUNK,) if layout == "chunked" else None)
        got = f["middle"][...]
    np.testing.assert_array_equal(got, data["middle"])

    t = _traffic_after(nginx, m, mark, "mtest/run.h5")
    wanted = data["middle"].nbytes
    limit = 1.3 * wanted + METADATA_ALLOWANCE
    print(f"h5py {layout}: {t.sent / wanted:.3f}x the {wanted}-byte dataset; nginx sent {t}")
    assert t.sent >= wanted, f"less than the {wanted} bytes read: the count misses requests; nginx sent {t}"
    assert t.sent <= limit, (
        f"reading one {wanted}-byte dataset of a {src.stat().st_size}-byte file cost {t.sent / wanted:.2f}x "
        f"its bytes, more than 1.3x + {METADATA_ALLOWANCE} = {limit:.0f}; nginx sent {t}"
    )


def test_pytables_reads_one_node(nginx, mount_dav):
    import tables

    rng = np.random.default_rng(1919)
    rows = 256 * 1024
    events = np.zeros(rows, dtype=[("event_id", "<i8"), ("energy", "<f8")])
    events["event_id"] = np.arange(rows) * 7 + 3
    events["energy"] = rng.exponential(1.0, rows)
    before = rng.standard_normal(MiB)  # 8 MiB on each side of the table
    after = rng.standard_normal(MiB)
    src = nginx.mkdir("mtest/dl2") / "events.h5"
    with tables.open_file(str(src), "w") as f:
        f.create_array("/", "before", before)
        f.create_table("/", "events", events)
        f.create_array("/", "after", after)
    m = mount_dav("mtest")
    mark = len(nginx.access_log())

    # PyTables opens by path only: this is the access the mount gives.
    with tables.open_file(str(m.path / "dl2" / "events.h5"), "r") as f:
        node = f.get_node("/events")
        assert node.nrows == rows
        got = node.read()
    np.testing.assert_array_equal(got, events)

    t = _traffic_after(nginx, m, mark, "mtest/dl2/events.h5")
    wanted, size = events.nbytes, src.stat().st_size
    print(f"PyTables: {t.sent / wanted:.3f}x the {wanted}-byte table, {t.sent / size:.3f}x the file; nginx sent {t}")
    assert t.sent >= wanted, f"less than the {wanted} bytes read: the count misses requests; nginx sent {t}"
    assert t.sent <= size / 2, (
        f"reading a {wanted}-byte table of a {size}-byte file cost more than half the file; nginx sent {t}"
    )


def test_pandas_reads_one_parquet_column(nginx, mount_dav):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(42)
    rows = 512 * 1024
    table = pa.table(
        {
            "one": pa.array(np.arange(rows, dtype=np.int32) * 3),
            "two": pa.array(rng.standard_normal(rows)),
            "three": pa.array(rng.standard_normal(rows)),
            "four": pa.array(rng.standard_normal(rows)),
        }
    )
    src = nginx.mkdir("mtest/tables") / "runs.parquet"
    # Two row groups: the column is in two places of the file, as in real files.
    pq.write_table(table, src, row_group_size=rows // 2)
    meta = pq.ParquetFile(src).metadata
    column_bytes = sum(
        meta.row_group(g).column(c).total_compressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema == "one"
    )
    size = src.stat().st_size
    assert column_bytes < size / 5, (column_bytes, size)  # the column is a small part
    m = mount_dav("mtest")
    mark = len(nginx.access_log())

    df = pd.read_parquet(m.path / "tables" / "runs.parquet", columns=["one"])
    assert list(df.columns) == ["one"]
    np.testing.assert_array_equal(df["one"].to_numpy(), np.arange(rows, dtype=np.int32) * 3)

    t = _traffic_after(nginx, m, mark, "mtest/tables/runs.parquet")
    print(
        f"parquet: {t.sent / column_bytes:.3f}x the {column_bytes}-byte column, {t.sent / size:.3f}x "
        f"the file; nginx sent {t}"
    )
    assert t.sent >= column_bytes, f"less than the column's {column_bytes} bytes; nginx sent {t}"
    assert t.sent <= size / 2, (
        f"reading a {column_bytes}-byte column of a {size}-byte Parquet file cost more than half the "
        f"file; nginx sent {t}"
    )


def _plain_tree(nginx) -> dict:
    """A small tree of odd cases under ``mtest/plain``: its files' contents by relative path."""
    rng = random.Random(7)
    files = {
        "empty": b"",
        "small.txt": b"hello, mount\n",
        "name with space.txt": b"spaces\n",
        "\u00e9t\u00e9.txt": "\u00e9t\u00e9\n".encode(),
        "blob.bin": rng.randbytes(8 * MiB + 12345),
        "sub/inner.txt": b"inner\n" * 1000,
    }
    for rel, content in files.items():
        nginx.put_file(f"mtest/plain/{rel}", content)
    nginx.mkdir("mtest/plain/sub/empty-dir")
    return files


def test_listdir_stat_and_read_match_the_source(nginx, mount_dav):
    files = _plain_tree(nginx)
    m = mount_dav("mtest")
    root = m.path / "plain"

    top = ["empty", "small.txt", "name with space.txt", "\u00e9t\u00e9.txt", "blob.bin", "sub"]
    assert sorted(os.listdir(root)) == sorted(top)
    assert sorted(os.listdir(root / "sub")) == ["empty-dir", "inner.txt"]
    assert os.listdir(root / "sub" / "empty-dir") == []
    assert stat.S_ISDIR(os.stat(root / "sub").st_mode)
    for rel, content in files.items():
        st = os.stat(root / rel)
        assert stat.S_ISREG(st.st_mode), rel
        assert st.st_size == len(content), rel
        with open(root / rel, "rb") as f:
            assert f.read() == content, rel
    with pytest.raises(FileNotFoundError):
        os.stat(root / "missing.txt")


def test_several_threads_read_one_file(nginx, mount_dav):
    files = _plain_tree(nginx)
    blob = files["blob.bin"]
    m = mount_dav("mtest")
    path = m.path / "plain" / "blob.bin"
    shared_fd = os.open(path, os.O_RDONLY)

    def reader(seed: int) -> int:
        rng = random.Random(seed)
        # Half the threads share one descriptor (as HDF5 does), half open their own.
        fd = shared_fd if seed % 2 else os.open(path, os.O_RDONLY)
        try:
            checked = 0
            for _ in range(40):
                offset = rng.randrange(0, len(blob))
                length = rng.choice([1, 4096, 65536, 300_000])
                got = os.pread(fd, length, offset)
                assert got == blob[offset : offset + length], f"thread {seed}: pread({length}, {offset}) differs"
                checked += len(got)
            assert os.pread(fd, 10, len(blob)) == b""
            return checked
        finally:
            if fd != shared_fd:
                os.close(fd)

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(reader, range(8), timeout=300))
    finally:
        os.close(shared_fd)
    assert all(r > 0 for r in results)

    # A whole sequential read by several threads at once, each of its own copy.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        copies = list(pool.map(lambda _: path.read_bytes(), range(4), timeout=300))
    assert all(c == blob for c in copies)


def test_the_mount_is_read_only_by_default(nginx, mount_dav):
    _plain_tree(nginx)
    m = mount_dav("mtest")
    for attempt in (
        lambda: open(m.path / "plain" / "new.txt", "wb"),
        lambda: open(m.path / "plain" / "small.txt", "r+b"),
        lambda: os.mkdir(m.path / "plain" / "newdir"),
        lambda: os.unlink(m.path / "plain" / "small.txt"),
    ):
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), info.value
    assert nginx.read_file("mtest/plain/new.txt") is None
    assert not nginx.path("mtest/plain/newdir").exists()
    assert nginx.read_file("mtest/plain/small.txt") == b"hello, mount\n"


# The tests' own instruments: the byte count and the unmount guard.


def test_the_byte_count_is_what_nginx_sent(nginx):
    import urllib.request

    body = os.urandom(100_000)
    nginx.put_file("mtest/count.bin", body)
    mark = len(nginx.access_log())
    url = nginx.url.rstrip("/") + "/mtest/count.bin"
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.read() == body
    req = urllib.request.Request(url, headers={"Range": "bytes=1000-1999"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.read() == body[1000:2000]
    t = Traffic(nginx.access_log()[mark:], _uri(nginx, "mtest/count.bin"))
    assert len(t.requests) == 2, t
    # The bodies plus two response headers (a few hundred bytes each).
    assert 101_000 < t.sent < 101_000 + 2_000, t


def test_the_guard_unmounts_a_mount_whose_process_died(nginx, tmp_path, monkeypatch):
    import conftest

    # rclone (in the test venv) stands in for any mount process that dies without unmounting.
    monkeypatch.setenv("CTA_MOUNT_IMPL", "rclone")
    monkeypatch.delenv("CTA_MOUNT_EXTRA_ARGS", raising=False)
    nginx.put_file("mtest/a.txt", b"a")
    mountpoint = tmp_path / "guarded dir"  # mountinfo escapes the space as \040
    mountpoint.mkdir()
    env = dict(os.environ)
    m = conftest.Mount(conftest.mount_command(nginx, "mtest", mountpoint, env), mountpoint, env, tmp_path / "g.log")
    try:
        m.wait_ready()
        assert (mountpoint / "a.txt").read_bytes() == b"a"
        m.proc.kill()
        m.proc.wait()
        assert conftest.mount_entry(mountpoint) is not None  # left behind, as after a crash
    finally:
        problem = m.stop()
    assert problem is not None and "still mounted" in problem, problem
    assert conftest.mount_entry(mountpoint) is None
    assert os.listdir(mountpoint) == []


def test_h5py_through_the_dcache_door(door, mount_door):
    import h5py

    rng = np.random.default_rng(2019)
    data = {name: rng.standard_normal(H5_ELEMS) for name in ("first", "middle", "last")}
    src = door.mkdir("cta/mtest") / "run.h5"
    with h5py.File(src, "w") as f:
        for name, values in data.items():
            f.create_dataset(name, data=values)
    door.put_file("cta/mtest/notes.txt", b"door notes\n")
    m = mount_door("cta/mtest")
    door.reset_stats()

    assert sorted(os.listdir(m.path)) == ["notes.txt", "run.h5"]
    assert os.stat(m.path / "run.h5").st_size == src.stat().st_size
    assert (m.path / "notes.txt").read_bytes() == b"door notes\n"
    with h5py.File(m.path / "run.h5", "r") as f:
        got = f["middle"][...]
    np.testing.assert_array_equal(got, data["middle"])

    m.check_unmount()
    stats = door.stats()
    assert stats["pool_requests"] > 0, stats["log"][:20]
    # The door redirects every GET to its pool (another host): the token must not follow.
    assert not stats["pool_saw_authorization"], "the bearer token reached the pool"
    sent, wanted = stats["pool_sent_bytes"], data["middle"].nbytes
    limit = 1.3 * wanted + METADATA_ALLOWANCE + len(b"door notes\n")
    print(f"door h5py: the pool sent {sent / wanted:.3f}x the {wanted}-byte dataset, {stats['pool_requests']} requests")
    assert wanted <= sent <= limit, (
        f"the pool sent {sent} bytes for one {wanted}-byte dataset (and an 11-byte file), more than "
        f"1.3x + {METADATA_ALLOWANCE}; requests: {stats['log'][:SHOWN]}"
    )


def test_ctrl_c_unmounts(nginx, mount_dav):
    import conftest
    import signal
    import subprocess

    nginx.put_file("mtest/a.txt", b"a")
    m = mount_dav("mtest")
    assert (m.path / "a.txt").read_bytes() == b"a"
    # The console script runs the command inside Python, whose own SIGINT handler only sets a
    # flag: the mount must still take Ctrl-C as the end, as it does in the Rust binary.
    m.proc.send_signal(signal.SIGINT)
    try:
        code = m.proc.wait(timeout=conftest.UNMOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        code = None
    assert code is not None, f"the mount did not exit within {conftest.UNMOUNT_TIMEOUT:.0f} s of SIGINT"
    assert conftest.mount_entry(m.path) is None, "SIGINT ended the mount process but left the mount"
    assert code in conftest.CLEAN_EXITS, f"exit status {code} after SIGINT; output:\n{m.output()}"
