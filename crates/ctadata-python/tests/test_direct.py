"""Other profiles: ``ctadata.open(profile, config=)`` and ``ctadata.direct`` (the ``cta``
profile) against the dCache door double and plain nginx WebDAV."""

from __future__ import annotations

import pathlib

import pytest

import ctadata
import ctadata.direct


@pytest.fixture
def cta_is_the_door(door, monkeypatch):
    """The built-in ``cta`` profile pointed at the door double through the environment."""
    monkeypatch.setenv("CTADATA_PROFILES__CTA__URL", door.url)
    monkeypatch.setenv("CTADATA_PROFILES__CTA__CA_FILE", str(door.ca_file))
    return door


def test_open_a_profile_from_a_config_file(door, isolated_env):
    door.put_file("cta/DL1/run.h5", b"r" * 5000)
    client = ctadata.open("door", config=str(door.config_file))
    assert client.profile == "door" and "door" in repr(client)
    [e] = client.list_dir("cta/DL1")
    assert (e["href"], e["type"], e["size"]) == ("cta/DL1/run.h5", "file", 5000)
    assert client.fetch_and_save_file("cta/DL1/run.h5", "here.h5") == 5000
    assert (isolated_env.work / "here.h5").read_bytes() == b"r" * 5000
    pathlib.Path("latest.txt").write_text("new")
    r = client.upload_file("latest.txt", "cta/users/me/")
    assert r["path"] == "cta/users/me/latest.txt" and r["total_written"] == 3
    assert door.read_file("cta/users/me/latest.txt") == b"new"


def test_ctadata_direct_uses_the_cta_profile(cta_is_the_door, isolated_env):
    door = cta_is_the_door
    door.put_file("cta/a.txt", b"A")
    door.put_file("cta/sub/b.txt", b"BB")
    hrefs = sorted(e["href"] for e in ctadata.direct.list_dir("cta"))
    assert hrefs == ["cta/a.txt", "cta/sub/"]
    assert ctadata.direct.APIClient().profile == "cta"
    ctadata.direct.fetch_and_save_file_or_dir("cta", recursive=True)
    assert (isolated_env.work / "cta/sub/b.txt").read_bytes() == b"BB"
    pathlib.Path("x.txt").write_text("x")
    ctadata.direct.upload_file("x.txt", "cta/up/")
    assert door.read_file("cta/up/x.txt") == b"x"
    d = isolated_env.work / "tree"
    (d / "in").mkdir(parents=True)
    (d / "in" / "y.txt").write_text("yy")
    assert ctadata.direct.upload_dir(d, "cta/tree")["transferred"] == 1
    assert door.read_file("cta/tree/in/y.txt") == b"yy"


def test_the_platform_functions_do_not_reach_the_direct_profile(cta_is_the_door, monkeypatch):
    # No platform variables: the module functions fail on their own profile, not on `cta`.
    door = cta_is_the_door
    door.reset_stats()
    with pytest.raises(ctadata.CtaDataError):
        ctadata.list_dir("cta")
    assert door.stats()["door_requests"] == 0


def test_open_plain_webdav(nginx, isolated_env):
    nginx.put_file("data/n.txt", b"nginx")
    client = ctadata.open("dav", config=nginx.config_file)
    assert [e["name"] for e in client.list_dir("data")] == ["n.txt"]
    assert client.fetch_and_save_file("data/n.txt") == 5
    assert (isolated_env.work / "n.txt").read_bytes() == b"nginx"
