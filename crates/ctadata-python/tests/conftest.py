"""pytest fixtures: real test servers for the ``ctadata`` Python package.

The servers are the standalone binaries of ``tests/support`` (``ctadata-platform``,
``ctadata-door``, ``ctadata-nginx``), built by ``tests/run-all.sh`` with
``cargo build -p ctadata-testsupport --bins`` and found in ``$CARGO_TARGET_DIR/debug`` (else
``target/debug`` of the repository). Each prints ``KEY=VALUE`` lines then ``READY=1``, takes
commands on stdin (its fault switches, see the binaries' doc comments) and is stopped with
SIGTERM at teardown (it then removes its temporary directories). Started with
``--stop-at-eof``, a server also stops when its stdin closes: it never outlives pytest.

Fixtures (function scope: every test gets fresh servers):

* ``isolated_env``: ``HOME``, ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, ``XDG_RUNTIME_DIR`` in a
  temporary directory, the current directory a fresh ``work`` directory, and every
  ``CTADATA_*``, ``BEARER_TOKEN*``, ``JUPYTERHUB_*``, ``CTADS_URL``, ``CTACS_URL`` and
  ``X509_*`` variable removed. Gives an object with ``home``, ``work`` and ``tmp`` paths.
* ``platform``: the JupyterHub platform double (hub, downloadservice over nginx,
  certificateservice). Sets ``os.environ`` (on top of ``isolated_env``) so that the
  ``platform`` profile reaches it as Alice: ``env`` holds those variables.
* ``door``: the dCache door double (TLS, a bearer token). ``config_file`` has profile ``door``;
  ``env`` (``BEARER_TOKEN``) is set in ``os.environ``.
* ``nginx``: a plain-http nginx WebDAV server that checks no token. ``config_file`` has
  profile ``dav``; ``env`` holds a dummy ``BEARER_TOKEN`` (a ``dcache`` profile wants one),
  set in ``os.environ`` unless one is already there (e.g. the ``door``'s).

The extension reads the process environment at call time, hence ``os.environ`` (through
``monkeypatch``, undone after the test). A test that needs another token or none changes it
with ``monkeypatch`` itself.
"""

from __future__ import annotations

import json
import os
import pathlib
import select
import signal
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0

#: Variables that could make a test reach a real service or a developer's own settings.
ISOLATED_PREFIXES = ("CTADATA_", "BEARER_TOKEN", "JUPYTERHUB_", "X509_")
ISOLATED_NAMES = ("CTADS_URL", "CTACS_URL")


def bin_dir() -> pathlib.Path:
    """Where cargo put the test servers: ``$CARGO_TARGET_DIR/debug``, else ``target/debug``."""
    target = os.environ.get("CARGO_TARGET_DIR")
    base = pathlib.Path(target) if target else REPO / "target"
    if not base.is_absolute():
        base = REPO / base
    return base / "debug"


class ServerError(RuntimeError):
    """A test server did not start, answered ``ERR``, or died."""


class Server:
    """A running standalone test server: its ``KEY=VALUE`` announcements and its commands."""

    def __init__(self, name: str, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None):
        exe = bin_dir() / name
        if not exe.exists():
            raise ServerError(
                f"{exe} does not exist: build the test servers with "
                "`cargo build -p ctadata-testsupport --bins` (tests/run-all.sh does)"
            )
        self.name = name
        self._stderr = tempfile.TemporaryFile()
        self._buf = b""
        self.proc = subprocess.Popen(
            [str(exe), "--stop-at-eof", *(args or [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env if env is not None else dict(os.environ),
            cwd=REPO,
        )
        self.values: Dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            line = self._readline(deadline)
            if line is None:
                self.stop()
                raise ServerError(f"{name} did not print READY=1 within {START_TIMEOUT:.0f} s{self._stderr_tail()}")
            if line == "READY=1":
                break
            key, sep, value = line.partition("=")
            if not sep:
                self.stop()
                raise ServerError(f"{name} printed '{line}' before READY=1, not KEY=VALUE{self._stderr_tail()}")
            self.values[key] = value

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return f"; its stderr:\n{text[-4000:]}" if text else ""

    def _readline(self, deadline: float) -> Optional[str]:
        """The next stdout line, or None at EOF or past the deadline."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def command(self, *words: object) -> str:
        """Sends one command line; returns the payload of its ``OK`` answer (may be empty)."""
        line = " ".join(str(w) for w in words)
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise ServerError(f"{self.name} is gone (command '{words[0]}'){self._stderr_tail()}") from None
        answer = self._readline(time.monotonic() + COMMAND_TIMEOUT)
        if answer is None:
            raise ServerError(f"{self.name} did not answer '{words[0]}'{self._stderr_tail()}")
        status, _, payload = answer.partition(" ")
        if status != "OK":
            raise ServerError(f"{self.name}: '{words[0]}' failed: {payload}")
        return payload

    def json(self, *words: object):
        """A command whose payload is JSON, decoded."""
        return json.loads(self.command(*words))

    def stop(self) -> int:
        """SIGTERM, then waits (SIGKILL after 10 s); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self._stderr.close()
        return self.proc.returncode


class _Tree:
    """Server-side file helpers over a served directory (``root``)."""

    root: pathlib.Path

    def path(self, rel: str) -> pathlib.Path:
        """The file on disk for a storage path (a leading ``/`` is ignored)."""
        return self.root / rel.lstrip("/")

    def put_file(self, rel: str, data: bytes) -> pathlib.Path:
        """Writes a file into the storage, parents created."""
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def mkdir(self, rel: str) -> pathlib.Path:
        """Creates a directory in the storage, parents included."""
        p = self.path(rel)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def read_file(self, rel: str) -> Optional[bytes]:
        """A file of the storage, or None when it does not exist."""
        p = self.path(rel)
        return p.read_bytes() if p.is_file() else None


class Platform(_Tree):
    """The platform double (``ctadata-platform``) as seen by a test."""

    def __init__(self, server: Server):
        self.server = server
        v = server.values
        self.url = v["URL"]
        self.ds_url = v["CTADS_URL"]
        self.cs_url = v["CTACS_URL"]
        self.root = pathlib.Path(v["ROOT"])
        #: Where Alice's uploads land, relative to ``root`` (``lst/users/alice_smith``).
        self.user_folder = v["USER_FOLDER"]
        self.token = pathlib.Path(v["TOKEN_FILE"]).read_text().strip()
        self.admin_token = pathlib.Path(v["ADMIN_TOKEN_FILE"]).read_text().strip()
        self.noscope_token = pathlib.Path(v["NOSCOPE_TOKEN_FILE"]).read_text().strip()
        #: The grid CA the certificateservice trusts, and a valid proxy file it issued.
        self.grid_ca_file = pathlib.Path(v["GRID_CA_FILE"])
        self.proxy_file = pathlib.Path(v["PROXY_FILE"])
        self.env = {
            "CTADS_URL": self.ds_url,
            "CTACS_URL": self.cs_url,
            "JUPYTERHUB_API_TOKEN": self.token,
        }

    def __repr__(self) -> str:
        return f"Platform(url={self.url!r}, root={str(self.root)!r})"

    def fault(self, name: str, arg: Optional[int] = None) -> None:
        """A one-shot misbehaviour: ``list_not_json``, ``list_html``, ``upload_without_path``,
        ``upload_truncated`` or ``fetch_short`` (with a byte count)."""
        self.server.command("fault", name, *([] if arg is None else [arg]))

    def requests(self) -> List[dict]:
        """Every request so far: service, method, path, authorization, token_in_query, status."""
        return self.server.json("requests")

    def certificates(self) -> List[dict]:
        """Personal certificates stored by the certificateservice: user, key, pem."""
        return self.server.json("certificates")

    def shared_certificate(self) -> Optional[str]:
        """The shared robot certificate's PEM, once uploaded."""
        return self.server.json("shared_certificate")

    def new_proxy_file(self, valid_from: int, valid_to: int) -> pathlib.Path:
        """A new proxy file valid from now+valid_from to now+valid_to seconds (may be < 0)."""
        return pathlib.Path(self.server.command("proxy_file", valid_from, valid_to))


class Door(_Tree):
    """The dCache door double (``ctadata-door``) as seen by a test."""

    def __init__(self, server: Server, config_dir: pathlib.Path):
        self.server = server
        v = server.values
        self.url = v["URL"]
        self.pool_url = v["POOL_URL"]
        self.ca_file = pathlib.Path(v["CA_FILE"])
        self.root = pathlib.Path(v["ROOT"])
        self.token = pathlib.Path(v["TOKEN_FILE"]).read_text().strip()
        self.config_file = config_dir / "door.toml"
        self.config_file.write_text(
            f'[profiles.door]\nbackend = "dcache"\nurl = "{self.url}"\nca_file = "{self.ca_file}"\n'
        )
        self.env = {"BEARER_TOKEN": self.token}

    def __repr__(self) -> str:
        return f"Door(url={self.url!r}, root={str(self.root)!r})"

    def set_token(self, token: Optional[str]) -> None:
        """The door now requires ``token`` (None: no token at all)."""
        self.server.command("set_token", "-" if token is None else token)

    def expire_token(self) -> None:
        """The door stops accepting ``self.token`` (as if it had expired)."""
        self.set_token("expired-" + os.urandom(8).hex())

    def fail_next(self, status: int, count: int = 1) -> None:
        """The door answers ``status`` to the next ``count`` requests."""
        self.server.command("fail_next", status, count)

    def fail_next_pool(self, status: int, count: int = 1) -> None:
        """The pool answers ``status`` to the next ``count`` requests."""
        self.server.command("fail_next_pool", status, count)

    def truncate_next_get(self, nbytes: int) -> None:
        """The next pool GET announces the full length, sends ``nbytes``, then closes."""
        self.server.command("truncate_next_get", nbytes)

    def corrupt_digest(self, on: bool = True) -> None:
        """Checksums (``Digest``, the ``Checksums`` property) lie."""
        self.server.command("corrupt_digest", "on" if on else "off")

    def malformed_propfind(self, on: bool = True) -> None:
        """PROPFIND answers ``207`` with a body that is not XML."""
        self.server.command("malformed_propfind", "on" if on else "off")

    def full(self, on: bool = True) -> None:
        """Every PUT answers ``507 Insufficient Storage``."""
        self.server.command("full", "on" if on else "off")

    def set_locality(self, path: str, locality: str) -> None:
        """``ONLINE``, ``NEARLINE`` or ``ONLINE_AND_NEARLINE`` for a file's ``FileLocality``."""
        self.server.command("locality", path, locality)

    def stats(self) -> dict:
        """door_requests, pool_requests, redirects, pool_saw_authorization, log (side, method,
        path, status)."""
        return self.server.json("stats")

    def reset_stats(self) -> None:
        """Zeroes the counters and clears the request log."""
        self.server.command("reset_stats")


class NginxDav(_Tree):
    """A plain-http nginx WebDAV server (``ctadata-nginx``) as seen by a test."""

    def __init__(self, server: Server, config_dir: pathlib.Path):
        self.server = server
        self.url = server.values["URL"]
        self.root = pathlib.Path(server.values["ROOT"])
        self.config_file = config_dir / "dav.toml"
        self.config_file.write_text(f'[profiles.dav]\nbackend = "dcache"\nurl = "{self.url}"\n')
        #: nginx checks no token, but a ``dcache`` profile wants one.
        self.env = {"BEARER_TOKEN": "nginx-checks-no-token"}

    def __repr__(self) -> str:
        return f"NginxDav(url={self.url!r}, root={str(self.root)!r})"

    def access_log(self) -> List[str]:
        """One line a request: ``METHOD "URI" STATUS range=... auth=auth|- ...``."""
        return self.server.json("access_log")


class IsolatedEnv:
    """The temporary directories of ``isolated_env``."""

    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.work = tmp / "work"


def isolate(monkeypatch: pytest.MonkeyPatch, tmp: pathlib.Path) -> IsolatedEnv:
    """What ``isolated_env`` does, for a test of it."""
    iso = IsolatedEnv(tmp)
    for d in (iso.home, iso.work, iso.home / ".config", iso.home / ".local/share", iso.home / "run"):
        d.mkdir(parents=True, exist_ok=True)
    (iso.home / "run").chmod(0o700)
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) or name in ISOLATED_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(iso.home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(iso.home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(iso.home / ".local/share"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(iso.home / "run"))
    monkeypatch.chdir(iso.work)
    return iso


@pytest.fixture
def isolated_env(monkeypatch, tmp_path) -> IsolatedEnv:
    """A private HOME/XDG directories, a fresh work directory, no ctadata/token variables."""
    return isolate(monkeypatch, tmp_path)


def _start(name: str, args: Optional[List[str]] = None) -> Server:
    try:
        return Server(name, args)
    except ServerError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def platform(isolated_env, monkeypatch):
    """The platform double, reached by the ``platform`` profile through ``os.environ``."""
    server = _start("ctadata-platform")
    try:
        p = Platform(server)
        for k, v in p.env.items():
            monkeypatch.setenv(k, v)
        yield p
    finally:
        server.stop()


@pytest.fixture
def door(isolated_env, monkeypatch):
    """The dCache door double over TLS; profile ``door`` in ``door.config_file``."""
    server = _start("ctadata-door")
    try:
        d = Door(server, isolated_env.tmp)
        for k, v in d.env.items():
            monkeypatch.setenv(k, v)
        yield d
    finally:
        server.stop()


@pytest.fixture
def nginx(isolated_env, monkeypatch):
    """A plain-http nginx WebDAV server; profile ``dav`` in ``nginx.config_file``."""
    server = _start("ctadata-nginx")
    try:
        n = NginxDav(server, isolated_env.tmp)
        for k, v in n.env.items():
            if k not in os.environ:
                monkeypatch.setenv(k, v)
        yield n
    finally:
        server.stop()
