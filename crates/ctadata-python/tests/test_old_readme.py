"""The old client's README (ctadata 0.6.2), its code unchanged, in a fresh Python process
that has only this package: the platform examples, the direct ones, the webdav4 client and
the certificate upload. Only the README's placeholders (the service URLs and the token of
"From outside") are filled in with the test servers'."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import ctadata


def _run(code: str, cwd: pathlib.Path, env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def _h5(path: pathlib.Path) -> bytes:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.create_dataset("dl1/event/telescope/parameters", data=list(range(100)))
    return path.read_bytes()


def test_the_platform_examples_of_the_old_readme(platform, isolated_env):
    run_dir = "cta/DL1/20241114/v0.1"
    wanted = "dl1_LST-1.Run11111.0100.h5"
    h5 = _h5(isolated_env.tmp / "x.h5")
    for name in (wanted, "datacheck_" + wanted, "dl1_LST-1.Run11111.0101.h5", "dl1_LST-1.Run22222.0100.h5"):
        platform.put_file(f"{run_dir}/{name}", h5)
    platform.put_file("lst/some-data-dir/a.txt", b"A")
    platform.put_file("lst/some-data-dir/sub/b.txt", b"BB")
    shutil.copy(platform.proxy_file, isolated_env.work / "yourcertificate.crt")
    (isolated_env.work / "latest.txt").write_text("the latest files\n")
    (isolated_env.work / "example.txt").write_text("example\n")

    out = _run(
        """
        import h5py  # the notebook's own import
        import ctadata

        for url in ctadata.list_dir("cta/DL1/20241114/v0.1/"):
            if 'datacheck' not in url and '.0100' in url and '11111' in url:
                print("stored", ctadata.fetch_and_save_file(url)/1024/1024, "Mb")
                print("found keys", h5py.File(url.split("/")[-1]).keys())

        ctadata.fetch_and_save_file_or_dir("lst/some-data-dir", recursive=True)

        ctadata.upload_file("latest.txt", "your-folder/new-file-name.md")
        r = ctadata.upload_file("latest.txt", "your-folder/") # will autocomplete to `your-folder/latest.txt`
        print("uploaded", r["path"], r["status"], r["total_written"])
        ctadata.fetch_and_save_file(r["path"])

        client = ctadata.webdav4_client()
        client.ls("/")
        client.uploadFile("example.txt", "remote/example.txt")

        import ctadata
        ctadata.upload_certificate('yourcertificate.crt')
        """,
        isolated_env.work,
        dict(os.environ),
    )
    size_mb = len(h5) / 1024 / 1024
    assert out.stdout.count("stored ") == 1
    assert f"stored {size_mb} Mb" in out.stdout
    assert "found keys <KeysViewHDF5 ['dl1']>" in out.stdout
    assert (isolated_env.work / wanted).read_bytes() == h5
    assert not (isolated_env.work / ("datacheck_" + wanted)).exists()
    assert (isolated_env.work / "lst/some-data-dir/sub/b.txt").read_bytes() == b"BB"
    user = platform.user_folder
    assert platform.read_file(f"{user}/your-folder/new-file-name.md") == b"the latest files\n"
    assert f"uploaded {user}/your-folder/latest.txt uploaded 17" in out.stdout
    assert platform.read_file(f"{user}/remote/example.txt") == b"example\n"  # uploads land there
    assert [c["key"] for c in platform.certificates()] == ["cta"]
    assert platform.token not in out.stdout + out.stderr


def test_from_outside_sets_the_variables_in_the_notebook(platform, isolated_env):
    platform.put_file("cta/DL1/20241114/v0.1/dl1_LST-1.Run11111.0100.h5", b"x" * 2048)
    env = {k: v for k, v in os.environ.items() if k not in platform.env}
    code = f"""
        import os
        os.environ["CTADS_URL"] = "{platform.ds_url}"
        os.environ["CTACS_URL"] = "{platform.cs_url}"
        os.environ["JUPYTERHUB_API_TOKEN"] = open("{isolated_env.tmp / 'tok'}").read().strip()
        import ctadata

        for url in ctadata.list_dir("cta/DL1/20241114/v0.1"):
            if 'datacheck' not in url and '.0100' in url and '11111' in url:
                print("stored", ctadata.fetch_and_save_file(url)/1024/1024, "Mb")
        """
    (isolated_env.tmp / "tok").write_text(platform.token)
    out = _run(code, isolated_env.work, env)
    assert "stored 0.001953125 Mb" in out.stdout


def test_the_direct_examples_of_the_old_readme(door, isolated_env):
    door.put_file("cta/x.txt", b"x")
    door.put_file("lst/some-data-dir/some-data-file", b"data")
    door.put_file("lst/some-data-dir/more/f", b"ff")
    (isolated_env.work / "latest.txt").write_text("latest\n")
    env = dict(os.environ)
    env["CTADATA_PROFILES__CTA__URL"] = door.url
    env["CTADATA_PROFILES__CTA__CA_FILE"] = str(door.ca_file)
    out = _run(
        """
        from ctadata import direct as ctadata

        for path in ctadata.list_dir("cta"):
            print(path)

        # downloading single file
        ctadata.fetch_and_save_file_or_dir("lst/some-data-dir/some-data-file")

        # recursively downloading a directory
        ctadata.fetch_and_save_file_or_dir("lst/some-data-dir", recursive=True)

        from ctadata import direct as ctadata
        ctadata.direct.upload_file("latest.txt", "your-folder/new-file-name.md")
        ctadata.direct.upload_file("latest.txt", "your-folder/") # will autocomplete to `your-folder/latest.txt`
        """,
        isolated_env.work,
        env,
    )
    assert out.stdout.splitlines() == ["cta/x.txt"]
    assert (isolated_env.work / "some-data-file").read_bytes() == b"data"
    assert (isolated_env.work / "lst/some-data-dir/more/f").read_bytes() == b"ff"
    assert door.read_file("your-folder/new-file-name.md") == b"latest\n"
    assert door.read_file("your-folder/latest.txt") == b"latest\n"


def test_list_dir_entries_are_paths_and_the_old_dicts(platform):
    platform.put_file("lst/DL1/run1.0100.h5", b"a" * 10)
    platform.put_file("lst/DL1/sub/x", b"")
    entries = sorted(ctadata.list_dir("lst/DL1"))
    assert entries == ["lst/DL1/run1.0100.h5", "lst/DL1/sub/"]
    f, d = entries
    assert isinstance(f, str) and ".0100" in f and f.split("/")[-1] == "run1.0100.h5"
    assert (f["type"], f["size"], f["name"], f.get("nothing", 7)) == ("file", 10, "run1.0100.h5", 7)
    assert d["type"] == "directory" and d["href"] == "lst/DL1/sub/"
    assert set(f.keys()) == {"href", "type", "size", "mtime", "name", "path"}
    assert f.as_dict()["size"] == 10 and f[0:3] == "lst"
    import json
    import pickle

    assert json.loads(json.dumps([e.as_dict() for e in entries]))[0]["href"] == "lst/DL1/run1.0100.h5"
    assert pickle.loads(pickle.dumps(f))["size"] == 10


def test_the_old_per_call_settings_are_taken(platform, monkeypatch):
    platform.put_file("lst/a.txt", b"a")
    good = platform.token
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-the-token")
    with pytest.raises(ctadata.AuthenticationError) as e:
        ctadata.list_dir("lst")
    assert "not-the-token" not in str(e.value)
    assert "lst/a.txt" in ctadata.list_dir("lst", token=good)
    monkeypatch.delenv("CTADS_URL")
    assert "lst/a.txt" in ctadata.list_dir("lst", token=good, downloadservice=platform.ds_url, chunk_size=1 << 20)
    client = ctadata.APIClient(token=good, downloadservice=platform.ds_url)
    assert good not in repr(client)
    assert "lst/a.txt" in client.list_dir("lst")
