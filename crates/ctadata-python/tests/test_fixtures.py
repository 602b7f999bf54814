"""The fixtures of conftest.py serve what they say: each server answers with its token and
refuses without it, its fault switches bite, its config file and environment reach it with
the ``cta-data`` command, and it cleans up when stopped."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

import conftest

PROPFIND_BODY = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


def request(url, method="GET", token=None, data=None, headers=None, context=None):
    """(status, body) of one request; HTTP errors are answers too."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def no_redirects():
    """An opener that returns a 3xx instead of following it."""

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    return urllib.request.build_opener(Keep)


def cta_data():
    """The cta-data command cargo built next to the test servers."""
    exe = conftest.bin_dir() / "cta-data"
    assert exe.exists(), f"{exe} is missing: `cargo build -p cta-data` (tests/run-all.sh's cargo test does)"
    return str(exe)


def run_cli(*args):
    return subprocess.run([cta_data(), *map(str, args)], capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- isolated_env ----


def test_isolated_env_removes_the_variables_and_moves_home_and_cwd(monkeypatch, tmp_path):
    for name, value in [
        ("CTADATA_PROFILE", "cta"),
        ("CTADATA_TOKEN", "t"),
        ("BEARER_TOKEN", "t"),
        ("BEARER_TOKEN_FILE", "/f"),
        ("JUPYTERHUB_API_TOKEN", "t"),
        ("CTADS_URL", "http://x/"),
        ("CTACS_URL", "http://x/"),
        ("X509_USER_PROXY", "/p"),
        ("X509_CERT_DIR", "/d"),
        ("UNRELATED_SETTING", "kept"),
    ]:
        monkeypatch.setenv(name, value)
    iso = conftest.isolate(monkeypatch, tmp_path)
    left = [
        n for n in os.environ if n.startswith(conftest.ISOLATED_PREFIXES) or n in conftest.ISOLATED_NAMES
    ]
    assert left == []
    assert os.environ["UNRELATED_SETTING"] == "kept"
    assert os.environ["HOME"] == str(iso.home)
    assert os.environ["XDG_CONFIG_HOME"] == str(iso.home / ".config")
    assert os.environ["XDG_DATA_HOME"] == str(iso.home / ".local/share")
    assert os.environ["XDG_RUNTIME_DIR"] == str(iso.home / "run")
    assert pathlib.Path.cwd() == iso.work
    assert iso.work.is_dir() and not any(iso.work.iterdir())


# -------------------------------------------------------------------- platform ----


def test_platform_serves_alice_with_her_token_and_refuses_without(platform):
    assert os.environ["JUPYTERHUB_API_TOKEN"] == platform.token
    assert os.environ["CTADS_URL"] == platform.ds_url
    assert os.environ["CTACS_URL"] == platform.cs_url
    platform.put_file("lst/DL1/run 1.h5", b"first run\n")

    status, body = request(platform.ds_url + "fetch/lst/DL1/run%201.h5", token=platform.token)
    assert (status, body) == (200, b"first run\n")

    status, body = request(platform.ds_url + "list/lst/DL1", token=platform.token)
    assert status == 200
    hrefs = [e["href"] for e in json.loads(body)]
    assert any(h.endswith("run%201.h5") for h in hrefs), hrefs

    status, body = request(
        platform.ds_url + "list/lst/DL1", headers={"Content-Type": "application/json"}
    )
    assert status == 401
    assert json.loads(body) == {"message": "Invalid or missing Bearer token"}
    status, _ = request(platform.ds_url + "list/lst/DL1", token=platform.noscope_token)
    assert status == 403


def test_platform_uploads_land_in_the_user_folder(platform):
    status, body = request(
        platform.ds_url + "upload/new.txt", method="POST", token=platform.token, data=b"12345"
    )
    assert status == 200, body
    assert platform.read_file(platform.user_folder + "/new.txt") == b"12345"


def test_platform_faults_bite_once_and_requests_hold_no_token(platform):
    platform.put_file("lst/a.bin", b"0123456789")
    platform.fault("fetch_short", 3)
    assert request(platform.ds_url + "fetch/lst/a.bin", token=platform.token) == (200, b"012")
    assert request(platform.ds_url + "fetch/lst/a.bin", token=platform.token) == (200, b"0123456789")

    log = platform.requests()
    fetches = [r for r in log if r["service"] == "downloadservice" and r["method"] == "GET"]
    assert len(fetches) == 2 and all(r["authorization"] for r in fetches)
    assert platform.token not in json.dumps(log)

    with pytest.raises(conftest.ServerError, match="fault takes"):
        platform.fault("no_such_fault")


def test_platform_certificateservice_stores_the_proxy_it_trusts_and_refuses_an_expired_one(platform):
    def upload(path):
        body = json.dumps({"certificate": path.read_text(), "certificate_key": "cta"}).encode()
        return request(
            platform.cs_url + "certificate",
            method="POST",
            token=platform.token,
            data=body,
            headers={"Content-Type": "application/json"},
        )

    status, body = upload(platform.proxy_file)
    assert status == 200, body
    stored = platform.certificates()
    assert [(c["user"], c["key"]) for c in stored] == [("Alice.Smith", "cta")]
    assert platform.shared_certificate() is None

    expired = platform.new_proxy_file(-7200, -3600)
    status, body = upload(expired)
    assert status == 400 and b"expired" in body, body


def test_the_platform_profile_reaches_the_platform_through_the_environment(platform):
    platform.put_file("lst/DL1/x.h5", b"x")
    out = run_cli("--profile", "platform", "ls", "lst/DL1")
    assert out.returncode == 0, out.stderr
    assert "x.h5" in out.stdout


# ------------------------------------------------------------------------ door ----


def test_door_answers_propfind_and_get_with_the_token_and_401_without(door):
    ctx = ssl.create_default_context(cafile=str(door.ca_file))
    door.put_file("/cta/run/a.dat", b"door data")
    url = door.url + "/cta/run/"
    status, body = request(
        url, "PROPFIND", door.token, PROPFIND_BODY, {"Depth": "1"}, context=ctx
    )
    assert status == 207 and b"a.dat" in body
    assert request(url, "PROPFIND", None, PROPFIND_BODY, {"Depth": "1"}, context=ctx)[0] == 401
    # GET: the door redirects to the pool (127.0.0.2), which sends the bytes.
    assert request(door.url + "/cta/run/a.dat", token=door.token, context=ctx) == (200, b"door data")
    stats = door.stats()
    assert stats["redirects"] == 1 and stats["pool_requests"] == 1
    door.reset_stats()
    assert door.stats()["door_requests"] == 0


def test_door_fault_switches(door):
    ctx = ssl.create_default_context(cafile=str(door.ca_file))
    door.put_file("/cta/f.dat", b"x" * 1000)
    url = door.url + "/cta/f.dat"

    door.fail_next(503, 1)
    assert request(url, token=door.token, context=ctx)[0] == 503
    assert request(url, token=door.token, context=ctx) == (200, b"x" * 1000)

    door.truncate_next_get(10)
    with pytest.raises(http.client.IncompleteRead):
        request(url, token=door.token, context=ctx)

    old = door.token
    door.expire_token()
    assert request(url, token=old, context=ctx)[0] == 401
    door.set_token(old)
    assert request(url, token=old, context=ctx)[0] == 200

    with pytest.raises(conftest.ServerError, match="unknown command"):
        door.server.command("no_such_command")


def test_the_door_profile_of_the_config_file_reaches_the_door(door):
    door.put_file("/cta/run/a.dat", b"door data")
    out = run_cli("--config", door.config_file, "--profile", "door", "ls", "/cta/run")
    assert out.returncode == 0, out.stderr
    assert "a.dat" in out.stdout
    assert door.token not in out.stdout + out.stderr


# ----------------------------------------------------------------------- nginx ----


def test_nginx_takes_a_put_and_serves_it_back(nginx):
    status, _ = request(nginx.url + "/up.txt", "PUT", data=b"uploaded")
    assert status in (201, 204)
    assert nginx.read_file("/up.txt") == b"uploaded"
    assert request(nginx.url + "/up.txt") == (200, b"uploaded")
    assert request(nginx.url + "/missing.txt")[0] == 404
    log = nginx.access_log()
    assert any(line.startswith('PUT "/up.txt" 201') for line in log), log


def test_the_dav_profile_of_the_config_file_reaches_nginx(nginx):
    nginx.put_file("data/b.txt", b"b")
    out = run_cli("--config", nginx.config_file, "--profile", "dav", "ls", "/data")
    assert out.returncode == 0, out.stderr
    assert "b.txt" in out.stdout


# ---------------------------------------------------------------------- servers ----


@pytest.mark.parametrize("name", ["ctadata-platform", "ctadata-door", "ctadata-nginx"])
def test_a_stopped_server_exits_0_and_removes_its_directories(isolated_env, name):
    server = conftest.Server(name)
    root = pathlib.Path(server.values["ROOT"])
    assert root.is_dir()
    assert server.command("ping") == ""
    assert server.stop() == 0
    assert not root.exists()


def test_a_server_whose_stdin_closes_stops_as_its_parent_is_gone(isolated_env):
    server = conftest.Server("ctadata-door")
    root = pathlib.Path(server.values["ROOT"])
    server.proc.stdin.close()
    assert server.proc.wait(timeout=10) == 0
    assert not root.exists()
    server.stop()
