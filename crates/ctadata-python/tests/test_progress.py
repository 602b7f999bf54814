"""The ``progress=`` keyword of the transfer functions."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

import ctadata

SIZE = 3 * 1024 * 1024 + 17


def _checked(calls, size, elapsed):
    assert calls, "the callback was never called"
    assert calls[-1] == (size, size)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert all(0 <= d <= t for d, t in calls)
    # Throttled: one call per 100 ms wake-up at most, plus the last one.
    assert len(calls) <= elapsed / 0.1 + 2


def test_a_callable_hears_done_and_total_for_a_download(platform, isolated_env):
    platform.put_file("lst/big.bin", os.urandom(SIZE))
    calls = []
    started = time.monotonic()
    n = ctadata.fetch_and_save_file("lst/big.bin", progress=lambda d, t: calls.append((d, t)))
    _checked(calls, SIZE, time.monotonic() - started)
    assert n == SIZE


def test_a_callable_hears_an_upload_and_a_tree(platform, isolated_env):
    pathlib.Path("up.bin").write_bytes(os.urandom(SIZE))
    calls = []
    started = time.monotonic()
    ctadata.upload_file("up.bin", platform.user_folder + "/", progress=lambda d, t: calls.append((d, t)))
    _checked(calls, SIZE, time.monotonic() - started)

    platform.put_file("lst/tree/a", b"a" * 100)
    platform.put_file("lst/tree/b/c", b"c" * 50)
    calls = []
    started = time.monotonic()
    ctadata.fetch_and_save_file_or_dir("lst/tree", recursive=True, progress=lambda d, t: calls.append((d, t)))
    _checked(calls, 150, time.monotonic() - started)


def test_progress_false_and_true(platform, isolated_env, capsys):
    platform.put_file("lst/f.bin", b"f" * 5000)
    assert ctadata.fetch_and_save_file("lst/f.bin", progress=False) == 5000
    assert capsys.readouterr().err == ""
    import tqdm  # noqa: F401  (installed by tests/run-all.sh: the bar must be tested, never skipped)

    assert ctadata.fetch_and_save_file("lst/f.bin", "g.bin", progress=True) == 5000
    assert "lst/f.bin" in capsys.readouterr().err  # the bar, named after the file


def test_an_exception_in_the_callback_is_raised(platform, isolated_env):
    platform.put_file("lst/f.bin", b"f" * 5000)

    def broken(done, total):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError):
        ctadata.fetch_and_save_file("lst/f.bin", progress=broken)


def test_a_callable_hears_an_upload_of_a_tree(platform, isolated_env):
    d = isolated_env.work / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "a").write_bytes(b"a" * 1000)
    (d / "sub" / "b").write_bytes(b"b" * 24)
    calls = []
    started = time.monotonic()
    ctadata.upload_dir(d, platform.user_folder + "/tree", progress=lambda d, t: calls.append((d, t)))
    _checked(calls, 1024, time.monotonic() - started)
