"""The old client's functions, in their old calling forms, against the platform double
(the ``platform`` profile: downloadservice + certificateservice)."""

from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

import ctadata


def _tree(platform):
    platform.put_file("lst/DL1/run1.h5", b"a" * 1000)
    platform.put_file("lst/DL1/run2.h5", b"b" * 2048)
    platform.put_file("lst/DL1/sub/deep.h5", b"c" * 10)


def test_list_dir_gives_the_old_dicts(platform):
    _tree(platform)
    entries = ctadata.list_dir("lst/DL1")
    by_href = {e["href"]: e for e in entries}
    assert set(by_href) == {"lst/DL1/run1.h5", "lst/DL1/run2.h5", "lst/DL1/sub/"}
    f = by_href["lst/DL1/run1.h5"]
    assert f["type"] == "file"
    assert int(f["size"]) == 1000
    assert f["name"] == "run1.h5"
    assert f["mtime"].endswith("GMT")
    assert by_href["lst/DL1/sub/"]["type"] == "directory"


def test_list_dir_of_a_file_gives_its_entry_and_recursive_gives_the_tree(platform):
    _tree(platform)
    [only] = ctadata.list_dir("lst/DL1/run2.h5")
    assert (only["href"], only["size"]) == ("lst/DL1/run2.h5", 2048)
    hrefs = sorted(e["href"] for e in ctadata.list_dir("lst/DL1/", recursive=True))
    assert sorted(e["href"] for e in ctadata.list_dir("lst/DL1/", True, 1)) == hrefs  # old direct form
    assert hrefs == ["lst/DL1/run1.h5", "lst/DL1/run2.h5", "lst/DL1/sub/", "lst/DL1/sub/deep.h5"]


def test_the_readme_loop_fetches_every_file(platform, isolated_env):
    _tree(platform)
    stored = {}
    for r in ctadata.list_dir("lst/DL1/"):
        if r["type"] == "file":
            stored[r["href"]] = ctadata.fetch_and_save_file(r["href"]) / 1024 / 1024
    assert stored == {"lst/DL1/run1.h5": 1000 / 1024 / 1024, "lst/DL1/run2.h5": 2048 / 1024 / 1024}
    assert (isolated_env.work / "run1.h5").read_bytes() == b"a" * 1000
    assert (isolated_env.work / "run2.h5").read_bytes() == b"b" * 2048
    assert not list(isolated_env.work.glob("*.part"))


def test_fetch_and_save_file_saves_where_told(platform, isolated_env):
    _tree(platform)
    assert ctadata.fetch_and_save_file("lst/DL1/run1.h5", "positional.h5") == 1000
    assert ctadata.fetch_and_save_file("lst/DL1/run1.h5", save_to="kw.h5") == 1000
    assert ctadata.fetch_and_save_file("lst/DL1/run1.h5", save_to_fn=pathlib.Path("old.h5")) == 1000
    for name in ("positional.h5", "kw.h5", "old.h5"):
        assert (isolated_env.work / name).read_bytes() == b"a" * 1000


def test_fetch_and_save_file_or_dir(platform, isolated_env):
    _tree(platform)
    assert ctadata.fetch_and_save_file_or_dir("lst/DL1/run2.h5") == 2048
    assert (isolated_env.work / "run2.h5").stat().st_size == 2048
    summary = ctadata.fetch_and_save_file_or_dir("lst/DL1", recursive=True)
    assert summary["transferred"] == 3 and summary["failed"] == 0
    assert summary["bytes"] == 1000 + 2048 + 10
    assert (isolated_env.work / "lst/DL1/sub/deep.h5").read_bytes() == b"c" * 10
    assert (isolated_env.work / "lst/DL1/run1.h5").read_bytes() == b"a" * 1000


def test_upload_file_to_a_folder_takes_the_local_name(platform, isolated_env):
    pathlib.Path("latest.txt").write_text("hello")
    folder = platform.user_folder
    r = ctadata.upload_file("latest.txt", folder + "/")
    assert r == {"path": f"{folder}/latest.txt", "status": "uploaded", "total_written": 5}
    assert platform.read_file(f"{folder}/latest.txt") == b"hello"
    # A full name, and an existing file replaced, as before.
    pathlib.Path("latest.txt").write_text("hello again")
    r = ctadata.upload_file(pathlib.Path("latest.txt"), f"{folder}/new-file-name.md")
    assert r["total_written"] == 11
    r = ctadata.upload_file("latest.txt", f"{folder}/latest.txt")
    assert platform.read_file(f"{folder}/latest.txt") == b"hello again"


def test_upload_dir_mirrors_the_tree(platform, isolated_env):
    d = isolated_env.work / "results"
    (d / "plots").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"1")
    (d / "plots" / "b.png").write_bytes(b"22")
    summary = ctadata.upload_dir(str(d), platform.user_folder + "/results")
    assert summary["transferred"] == 2 and summary["failed"] == 0
    assert platform.read_file(platform.user_folder + "/results/a.txt") == b"1"
    assert platform.read_file(platform.user_folder + "/results/plots/b.png") == b"22"


def test_apiclient_has_the_functions_as_methods(platform, isolated_env):
    _tree(platform)
    client = ctadata.APIClient()
    assert client.profile == "platform"
    assert [e["href"] for e in client.list_dir("lst/DL1/sub")] == ["lst/DL1/sub/deep.h5"]
    assert client.fetch_and_save_file("lst/DL1/sub/deep.h5") == 10
    assert set(ctadata.APIClient.__export_functions__) <= set(dir(ctadata))


def test_certificate_uploads(platform, monkeypatch):
    answer = ctadata.upload_personal_certificate(str(platform.proxy_file), "cta")
    assert isinstance(answer, dict)
    stored = platform.certificates()
    assert [(c["key"]) for c in stored] == ["cta"]
    ctadata.upload_certificate(platform.proxy_file, "lst")
    assert sorted(c["key"] for c in platform.certificates()) == ["cta", "lst"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", platform.admin_token)
    ctadata.upload_shared_certificate(platform.proxy_file)
    assert platform.shared_certificate()


def test_an_expired_certificate_is_a_certificate_error(platform):
    expired = platform.new_proxy_file(-7200, -3600)
    with pytest.raises(ctadata.CertificateError) as info:
        ctadata.upload_personal_certificate(expired, "cta")
    assert isinstance(info.value, ctadata.CtaDataError)
    assert platform.certificates() == []
    assert platform.token not in str(info.value) + repr(info.value)


def test_calls_work_inside_a_running_asyncio_loop(platform, isolated_env):
    _tree(platform)

    async def notebook_cell():
        # A Jupyter cell runs inside a live loop: the call must not need it or block it.
        ticks = []

        async def ticker():
            for _ in range(3):
                ticks.append(1)
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        entries = ctadata.list_dir("lst/DL1")
        size = ctadata.fetch_and_save_file("lst/DL1/run1.h5")
        await t
        return entries, size, ticks

    entries, size, ticks = asyncio.run(notebook_cell())
    assert len(entries) == 3 and size == 1000 and ticks == [1, 1, 1]


def test_calls_from_several_threads_at_once(platform, isolated_env):
    from concurrent.futures import ThreadPoolExecutor

    _tree(platform)
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda i: ctadata.fetch_and_save_file("lst/DL1/run2.h5", f"copy{i}.h5"), range(8)))
    assert sizes == [2048] * 8
    assert all(os.path.getsize(f"copy{i}.h5") == 2048 for i in range(8))


def test_a_refused_certificate_upload_is_a_certificate_error_of_its_category(platform, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", platform.noscope_token)
    with pytest.raises(ctadata.CertificateError) as info:
        ctadata.upload_personal_certificate(platform.proxy_file, "cta")
    e = info.value
    assert isinstance(e, (ctadata.PermissionDeniedError, ctadata.AuthenticationError)), type(e).__mro__
    assert e.hint
    assert platform.noscope_token not in str(e) + repr(e)
    assert platform.certificates() == []


def test_other_python_threads_run_while_a_transfer_moves(door, isolated_env):
    import threading
    import time

    door.put_file("data/big.bin", os.urandom(48 << 20))
    client = ctadata.open("door", config=door.config_file)
    ticks = [0]
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    started = time.monotonic()
    try:
        client.fetch_and_save_file("data/big.bin", progress=False)
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        t.join()
    # Held GIL: the ticker would only get the few windows of the 100 ms signal checks.
    assert ticks[0] > elapsed * 200, (ticks[0], elapsed)
