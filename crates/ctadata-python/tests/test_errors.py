"""Exceptions: one class per failure category under CtaDataError, the old names still
catching, the CLI's messages with the hint, and never a token."""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time

import pytest

import ctadata
from ctadata import errors


def _no_secret(exc, *tokens):
    text = str(exc) + repr(exc) + repr(exc.args)
    for t in tokens:
        assert t not in text, f"a token leaked into {type(exc).__name__}: {text}"


def test_a_missing_remote_file_is_not_found_and_leaves_nothing(platform, isolated_env):
    with pytest.raises(ctadata.NotFoundError) as info:
        ctadata.fetch_and_save_file("lst/DL1/nope.h5")
    e = info.value
    assert isinstance(e, FileNotFoundError)
    assert isinstance(e, ctadata.StorageException)
    assert e.exit_code == 6 and e.kind == "not_found"
    assert "lst/DL1/nope.h5" in str(e)
    assert e.hint and "hint: " + e.hint in str(e)
    assert list(isolated_env.work.iterdir()) == []
    _no_secret(e, platform.token)


def test_old_except_clauses_still_catch(platform):
    with pytest.raises(ctadata.StorageException):
        ctadata.list_dir("lst/no/such/dir")
    try:
        ctadata.list_dir("lst/no/such/dir")
    except FileNotFoundError:
        pass


def test_an_unknown_profile_is_a_config_error():
    with pytest.raises(ctadata.ConfigError) as info:
        ctadata.open("no-such-profile")
    assert info.value.exit_code == 3
    assert "no-such-profile" in str(info.value) and "ctadata.open" in str(info.value)
    assert "platform" in info.value.hint


def test_no_hub_token_is_an_authentication_error_with_a_hint(platform, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    with pytest.raises(ctadata.CtaDataError) as info:
        ctadata.list_dir("lst")
    assert isinstance(info.value, (ctadata.AuthenticationError, ctadata.ConfigError))
    assert info.value.hint


def test_an_expired_token_is_an_authentication_error_with_the_hint(door):
    client = ctadata.open("door", config=door.config_file)
    assert client.list_dir("") is not None
    door.expire_token()
    with pytest.raises(ctadata.AuthenticationError) as info:
        client.list_dir("")
    e = info.value
    assert e.exit_code == 4 and e.hint
    assert "hint: " in str(e)
    _no_secret(e, door.token)


def test_a_directory_given_to_fetch_and_save_file_is_a_usage_error(platform):
    platform.mkdir("lst/DL1")
    with pytest.raises(ctadata.UsageError) as info:
        ctadata.fetch_and_save_file("lst/DL1")
    assert isinstance(info.value, ValueError)
    assert "fetch_and_save_file_or_dir" in info.value.hint


def test_a_missing_local_file_to_upload_is_not_found(platform, isolated_env):
    with pytest.raises(FileNotFoundError) as info:
        ctadata.upload_file("not-here.txt", platform.user_folder + "/")
    assert isinstance(info.value, ctadata.CtaDataError)
    assert "not-here.txt" in str(info.value)


def test_a_body_cut_short_is_resumed_never_saved_short(door, isolated_env):
    data = os.urandom(100_000)
    door.put_file("data/run.h5", data)
    client = ctadata.open("door", config=door.config_file)
    door.reset_stats()
    door.truncate_next_get(1000)
    assert client.fetch_and_save_file("data/run.h5") == len(data)
    assert (isolated_env.work / "run.h5").read_bytes() == data
    gets = [r for r in door.stats()["log"] if r["method"] == "GET" and r["side"] == "pool"]
    assert len(gets) >= 2, gets  # the cut happened, and the engine went on from it
    assert not list(isolated_env.work.glob("*.part"))


def test_webdav4_client_returns_an_fsspec_filesystem_on_the_profile(platform, isolated_env):
    from fsspec import AbstractFileSystem

    platform.put_file("lst/DL1/run1.h5", b"h" * 50)
    fs = ctadata.webdav4_client()
    assert isinstance(fs, AbstractFileSystem)
    assert "fsspec" in ctadata.webdav4_client.__doc__
    assert "lst" in fs.ls("/", detail=False)
    assert fs.ls("lst/DL1", detail=False) == ["lst/DL1/run1.h5"]
    assert ctadata.open("platform").webdav4_client().cat_file("lst/DL1/run1.h5") == b"h" * 50
    # The webdav4 client's names, for old notebooks.
    (isolated_env.work / "example.txt").write_text("ex")
    fs.upload_file("example.txt", "remote/example.txt")
    landed = f"{platform.user_folder}/remote/example.txt"  # the platform's uploads land there
    assert platform.read_file(landed) == b"ex"
    with pytest.raises(FileExistsError):
        fs.uploadFile("example.txt", landed)
    fs.download_file(landed, "back.txt")
    assert (isolated_env.work / "back.txt").read_text() == "ex"


def test_errors_pickle_and_map_every_category():
    for kind, cls in errors._BY_KIND.items():
        e = errors._from_native(kind, cls.exit_code, "msg", "do this")
        assert type(e) is cls and e.kind == kind
        back = pickle.loads(pickle.dumps(e))
        assert (type(back), str(back), back.exit_code) == (cls, str(e), cls.exit_code)
    cert = errors._from_native("transport", 9, "msg", None, True)
    assert isinstance(cert, ctadata.CertificateError) and isinstance(cert, ConnectionError)
    assert type(pickle.loads(pickle.dumps(cert))) is type(cert)
    assert isinstance(errors._from_native("interrupted", 130, "interrupted", None), KeyboardInterrupt)
    assert str(errors._from_native("usage", 2, "msg", None)) == "msg"


def test_ctrl_c_interrupts_a_call_promptly(door):
    client = ctadata.open("door", config=door.config_file)
    # The door fails for a while: the engine keeps retrying (with back-off) until Ctrl-C.
    door.fail_next(503, 1000)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.list_dir("")
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3.0


def test_ctrl_c_during_a_download_keeps_the_part_file_for_the_next_call(door, isolated_env):
    # Big enough that Ctrl-C, pressed at the first report (~100 ms in), lands mid-transfer.
    data = os.urandom(96 << 20)
    door.put_file("data/big.h5", data)
    client = ctadata.open("door", config=door.config_file)
    seen = []

    def press_ctrl_c_once_data_moves(done, total):
        seen.append((done, total))
        if 0 < done < total and len(seen) < 1000:
            seen.extend([(0, 0)] * 1000)  # once
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        client.fetch_and_save_file("data/big.h5", progress=press_ctrl_c_once_data_moves)
    assert not (isolated_env.work / "big.h5").exists()
    part = isolated_env.work / "big.h5.part"
    assert part.exists(), list(isolated_env.work.iterdir())
    # 96 MiB come in several ranged streams: the .part is sparse, and .part.meta says how
    # much of each chunk is on disk (written when the transfer is dropped).
    meta = isolated_env.work / "big.h5.part.meta"

    def on_disk():
        return sum(json.loads(meta.read_bytes())["chunks"]["done"])

    # The writer threads write what had arrived once the transfer is dropped, then the
    # description is written again and stays.
    sizes = [on_disk()]
    deadline = time.monotonic() + 5
    while (len(sizes) < 3 or sizes[-1] != sizes[-3] or sizes[-1] == 0) and time.monotonic() < deadline:
        time.sleep(0.1)
        sizes.append(on_disk())
    kept = on_disk()
    assert 0 < kept < len(data), sizes
    # The next call resumes from the .part file and the file is whole.
    door.reset_stats()
    assert client.fetch_and_save_file("data/big.h5") == len(data)
    assert (isolated_env.work / "big.h5").read_bytes() == data
    assert not part.exists()
    deadline = time.monotonic() + 5  # the double logs a GET once its body is sent
    while door.stats()["pool_requests"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = door.stats()
    ranges = [r for r in stats["log"] if r["side"] == "pool" and r["method"] == "GET"]
    assert ranges and all(r["status"] == 206 for r in ranges), stats  # resumed with Ranges
    # Only what was not on disk was sent again.
    assert stats["pool_sent_bytes"] == len(data) - kept, stats
