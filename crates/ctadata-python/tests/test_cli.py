"""The ``cta-data`` and ``cta-data-direct`` console scripts the package installs."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import ctadata
from ctadata import _cli


def _script(name: str) -> str:
    here = pathlib.Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"the console script {name} is not installed next to {sys.executable}"
    return found


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=dict(os.environ))


@pytest.mark.parametrize("name", ["cta-data", "cta-data-direct"])
def test_version(name):
    r = _run(_script(name), "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"cta-data {ctadata.__version__}"


def test_cta_data_lists_a_profile(door):
    door.put_file("cta/DL1/run.h5", b"z" * 42)
    r = _run(_script("cta-data"), "--config", str(door.config_file), "--profile", "door", "list", "cta/DL1")
    assert r.returncode == 0, r.stderr
    assert "run.h5" in r.stdout
    assert door.token not in r.stdout + r.stderr


def test_cta_data_direct_uses_the_cta_profile(door, monkeypatch):
    monkeypatch.setenv("CTADATA_PROFILES__CTA__URL", door.url)
    monkeypatch.setenv("CTADATA_PROFILES__CTA__CA_FILE", str(door.ca_file))
    door.put_file("cta/only-direct.txt", b"d")
    r = _run(_script("cta-data-direct"), "list", "cta")
    assert r.returncode == 0, r.stderr
    assert "only-direct.txt" in r.stdout


def test_a_failure_gives_the_cli_exit_code_and_message(door):
    r = _run(_script("cta-data"), "--config", str(door.config_file), "--profile", "door", "list", "cta/nope")
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert "error:" in r.stderr and "cta/nope" in r.stderr and "hint:" in r.stderr
    assert door.token not in r.stderr


def test_main_exits_with_the_code(capsys):
    with pytest.raises(SystemExit) as info:
        _cli.main(["/some/bin/cta-data", "--version"])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        _cli.main(["cta-data", "no-such-command"])
    assert info.value.code == 2
