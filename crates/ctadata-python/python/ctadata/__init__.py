"""ctadata: the CTAO-CH data center storage from Python, on the cta-data engine.

A drop-in for the old ``ctadata`` client's notebooks::

    import ctadata
    for r in ctadata.list_dir("lst/DL1/"):
        if r["type"] == "file":
            print("stored", ctadata.fetch_and_save_file(r["href"]) / 1024 / 1024, "Mb")
    ctadata.upload_file("latest.txt", "your-folder/")

The module functions use the ``platform`` profile (the JupyterHub downloadservice, read
from ``CTADS_URL``, ``CTACS_URL``, ``JUPYTERHUB_API_TOKEN`` as before); ``ctadata.direct``
has the same functions on the ``cta`` profile (dCache directly), and
``ctadata.open("grid")`` any profile the ``cta-data`` command knows (``config=`` adds a
config file, like ``--config``). Failures raise subclasses of :class:`CtaDataError`.
``cta://<profile>/<path>`` URLs work in pandas, pyarrow, h5py (through ``fsspec.open``) and
Dask: see :mod:`ctadata.fsspec`.
Transfers run in Rust with the GIL released; Ctrl-C raises KeyboardInterrupt and keeps
the ``.part`` file for the next run.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

from ctadata import _native, _progress
from ctadata._entry import Entry
from ctadata.errors import (
    AuthenticationError,
    CertificateError,
    ConfigError,
    ConflictError,
    CtaDataError,
    IntegrityError,
    LocalIOError,
    NotFoundError,
    PartialFailure,
    TapeError,
    PermissionDeniedError,
    ProtocolError,
    StorageException,
    TransportError,
    UnsupportedError,
    UsageError,
)

__version__ = _native.version()

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_PROFILE = "platform"


class APIClient:
    """A storage on one profile, with the old client's functions as methods.

    ``APIClient()`` uses the ``platform`` profile; ``APIClient("grid")`` another one;
    ``config`` adds a config file (like ``cta-data --config``). The profile is resolved
    (and checked) at the first call.
    """

    __export_functions__ = [
        "list_dir",
        "fetch_and_save_file",
        "upload_file",
        "upload_dir",
        "fetch_and_save_file_or_dir",
        "upload_personal_certificate",
        "upload_shared_certificate",
        "upload_certificate",
        "webdav4_client",
    ]

    #: The old client's per-call settings, accepted by the constructor and by every module
    #: function as keywords (``ctadata.list_dir(path, token=...)``).
    __class_args__ = ["token", "downloadservice", "certificateservice", "chunk_size"]

    def __init__(
        self,
        profile: Optional[str] = None,
        config: Optional[PathLike] = None,
        *,
        token: Optional[str] = None,
        downloadservice: Optional[str] = None,
        certificateservice: Optional[str] = None,
        chunk_size: Optional[int] = None,
    ) -> None:
        """``token``, ``downloadservice``, ``certificateservice``: what the old client took
        from ``JUPYTERHUB_API_TOKEN``, ``CTADS_URL``, ``CTACS_URL``, for this client only.
        ``chunk_size`` is accepted and ignored (the engine sizes its own buffers)."""
        self._profile_name = profile or DEFAULT_PROFILE
        self._config = None if config is None else os.fspath(config)
        env: Dict[str, str] = {}
        if token is not None:
            env["JUPYTERHUB_API_TOKEN"] = env["CTADATA_TOKEN"] = token
        if downloadservice is not None:
            env["CTADS_URL"] = downloadservice
        if certificateservice is not None:
            env["CTACS_URL"] = certificateservice
        self._env = env or None
        self._native: Optional[Any] = None

    @property
    def profile(self) -> str:
        """The name of the profile this client uses."""
        return self._profile_name

    def _client(self) -> Any:
        if self._native is None:
            self._native = _native.NativeClient(self._profile_name, self._config, self._env)
        return self._native

    def __repr__(self) -> str:
        return f"APIClient(profile={self._profile_name!r})"

    def list_dir(self, path: str, recursive: bool = False, n_threads: int = 4) -> List[Dict[str, Any]]:
        """The entries of a directory (everything below it with ``recursive``, ``n_threads``
        listings at once), or the entry of a file, as :class:`Entry`: each is its path (a
        ``str``, as the old direct client's listing) and answers ``e["type"]``
        (``file``/``directory``), ``e["size"]``, ``e["mtime"]``, ``e["href"]``, ``e["name"]``,
        ``e["path"]`` as the downloadservice's dicts did."""
        return [Entry(e) for e in self._client().list_dir(path, recursive, n_threads)]

    def fetch_and_save_file(
        self,
        path: str,
        save_to: Optional[PathLike] = None,
        save_to_fn: Optional[PathLike] = None,
        *,
        progress: Any = None,
    ) -> int:
        """Downloads a file to ``save_to`` (default: its name in the current directory),
        checked and put in place only when complete; returns its size in bytes.
        ``progress``: see :mod:`ctadata._progress` (False: none; a callable gets
        ``(done_bytes, total_bytes)``)."""
        target = save_to if save_to is not None else save_to_fn
        client = self._client()
        with _progress.callback(progress, path) as cb:
            return client.fetch_and_save_file(path, None if target is None else os.fspath(target), cb)

    def fetch_and_save_file_or_dir(self, path: str, recursive: bool = False, *, progress: Any = None) -> Any:
        """A file as :meth:`fetch_and_save_file` (its size); with ``recursive``, a directory
        saved under ``./<path>`` (a dict of counts: transferred, skipped, failed, bytes...)."""
        client = self._client()
        with _progress.callback(progress, path) as cb:
            return client.fetch_and_save_file_or_dir(path, recursive, cb)

    def upload_file(self, local: PathLike, remote: str, *, progress: Any = None) -> Dict[str, Any]:
        """Uploads a file; a ``remote`` ending in ``/`` takes the local name, an existing file
        is replaced. Returns ``{"path", "status", "total_written"}``."""
        client = self._client()
        local = os.fspath(local)
        with _progress.callback(progress, os.path.basename(local)) as cb:
            return client.upload_file(local, remote, cb)

    def upload_dir(self, local_dir: PathLike, remote: str, *, progress: Any = None) -> Dict[str, Any]:
        """Uploads the tree below ``local_dir`` onto ``remote``; returns a dict of counts."""
        client = self._client()
        local_dir = os.fspath(local_dir)
        with _progress.callback(progress, local_dir) as cb:
            return client.upload_dir(local_dir, remote, cb)

    def upload_personal_certificate(
        self, certificate_file_path: PathLike, certificate_key: str, user: Optional[str] = None
    ) -> Any:
        """Checks a proxy certificate and delegates it under ``certificate_key`` (e.g.
        ``cta``, ``lst``); returns the service's answer."""
        return self._client().upload_personal_certificate(
            os.fspath(certificate_file_path), certificate_key, user
        )

    def upload_certificate(self, certificate_file_path: PathLike, certificate_key: str = "cta") -> Any:
        """The older name of :meth:`upload_personal_certificate`."""
        return self.upload_personal_certificate(certificate_file_path, certificate_key)

    def upload_shared_certificate(self, certificate_file_path: PathLike) -> Any:
        """Checks a certificate and stores it as the shared one (admins)."""
        return self._client().upload_shared_certificate(os.fspath(certificate_file_path))

    def webdav4_client(self) -> Any:
        """The storage of this client's profile as an fsspec filesystem, in place of the old
        webdav4 client.

        Returns :class:`ctadata.fsspec.ProfileFileSystem`: paths from the profile's root
        (``fs.ls("/")``, ``fs.open("lst/DL1/run1.h5")``), every fsspec method, and the
        webdav4 names old notebooks call (``upload_file``/``uploadFile``, ``download_file``,
        ``remove``, ``move``). The same files as URLs, for pandas and Dask:
        ``cta://<profile>/<path>`` (:class:`ctadata.fsspec.CtaFileSystem`).
        """
        from ctadata.fsspec import ProfileFileSystem

        if self._env:
            raise UsageError(
                "webdav4_client() of a client made with token=, downloadservice= or "
                "certificateservice= is not available",
                hint="set JUPYTERHUB_API_TOKEN, CTADS_URL, CTACS_URL in the environment (or use "
                "a profile of a config file) so that the filesystem, which pickles without "
                "any secret, finds them",
            )
        return ProfileFileSystem(self._profile_name, config=self._config)


def open(profile: Optional[str] = None, config: Optional[PathLike] = None) -> APIClient:  # noqa: A001
    """A client on ``profile`` (any profile ``cta-data`` knows; default ``platform``),
    with ``config`` as an extra config file (like ``--config``). Checked now: a profile
    that does not exist raises :class:`ConfigError`."""
    client = APIClient(profile, config)
    client._client()
    return client


def _module_function(name: str, profile: str) -> Any:
    method = getattr(APIClient, name)

    def f(*args: Any, **kwargs: Any) -> Any:
        settings = {k: kwargs.pop(k) for k in APIClient.__class_args__ if k in kwargs}
        return method(APIClient(profile, **settings), *args, **kwargs)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = method.__doc__
    return f


list_dir = _module_function("list_dir", DEFAULT_PROFILE)
fetch_and_save_file = _module_function("fetch_and_save_file", DEFAULT_PROFILE)
fetch_and_save_file_or_dir = _module_function("fetch_and_save_file_or_dir", DEFAULT_PROFILE)
upload_file = _module_function("upload_file", DEFAULT_PROFILE)
upload_dir = _module_function("upload_dir", DEFAULT_PROFILE)
upload_personal_certificate = _module_function("upload_personal_certificate", DEFAULT_PROFILE)
upload_certificate = _module_function("upload_certificate", DEFAULT_PROFILE)
upload_shared_certificate = _module_function("upload_shared_certificate", DEFAULT_PROFILE)
webdav4_client = _module_function("webdav4_client", DEFAULT_PROFILE)

from ctadata import direct  # noqa: E402  (needs the names above)

__all__ = [
    "APIClient",
    "Entry",
    "open",
    "direct",
    "list_dir",
    "fetch_and_save_file",
    "fetch_and_save_file_or_dir",
    "upload_file",
    "upload_dir",
    "upload_personal_certificate",
    "upload_certificate",
    "upload_shared_certificate",
    "webdav4_client",
    "CtaDataError",
    "StorageException",
    "CertificateError",
    "UsageError",
    "ConfigError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "IntegrityError",
    "TransportError",
    "ProtocolError",
    "UnsupportedError",
    "LocalIOError",
    "PartialFailure",
    "TapeError",
]
