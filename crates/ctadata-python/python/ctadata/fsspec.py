"""The storage as an fsspec filesystem: ``cta://<profile>/<path>`` for pandas, pyarrow, h5py, Dask.

With the package installed, fsspec finds the protocol ``cta`` through the ``fsspec.specs``
entry point, so plain strings work::

    import pandas as pd
    df = pd.read_parquet("cta://cta/lst/DL2/run1/x.parquet", columns=["energy"])

    import fsspec, h5py
    with fsspec.open("cta://cta/lst/DL1/run1.h5") as f:
        print(h5py.File(f)["dl1/event"].shape)

A path is ``<profile>/<path in that profile's storage>``: the first segment names any profile
``cta-data`` knows (``cta``, ``platform``, ``grid``, one of your config file), so one
filesystem reaches every auth mode. ``storage_options={"config": "site.toml"}`` adds a
config file, as ``cta-data --config`` does. Every operation runs in the Rust engine with the
GIL released: reads are ranged GETs, ``get``/``put`` are the verified transfers of
``cta-data get``/``put`` (a temporary file renamed when complete), and a file written with
``fs.open(path, "wb")`` is spooled locally and sent as one verified upload when it is
closed (nothing is sent if the ``with`` block fails).

The filesystem pickles to its options (the config file's path), never to a token: a Dask
worker that unpickles it opens its own backend, with its own token refresh and connection
pool.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Dict, List, Optional, Tuple

import fsspec
from fsspec.caching import BaseCache, register_cache
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from ctadata import _native
from ctadata.errors import UsageError

__all__ = ["CtaFileSystem", "CtaFile", "ProfileFileSystem"]

#: Reads of at least this many bytes bypass the read-ahead (fetched exactly, not kept).
BLOCK_SIZE = 1 << 20
#: The least a small read fetches, and the first read-ahead of a sequential reader.
READ_AHEAD_MIN = 64 << 10
#: The largest read-ahead.
READ_AHEAD_MAX = 64 << 20


class _AdaptiveReadAhead(BaseCache):
    """A read-ahead that follows the reader, for columnar files, HDF5 and plain reading.

    - A read of ``blocksize`` bytes or more is fetched exactly and not kept: a Parquet
      column chunk costs its own bytes.
    - A small read where the last one did not end (a jump: HDF5 metadata, a Parquet page
      index) fetches at least 64 KiB from where it starts, nothing more; so small column
      chunks are not dragged along with their neighbours.
    - Reads that continue where the last one ended double the window each time it runs out
      (64 KiB up to 64 MiB), so reading a file through in small pieces needs few requests.
    """

    name = "cta-readahead"

    def __init__(self, blocksize: int, fetcher: Any, size: int) -> None:
        super().__init__(blocksize, fetcher, size)
        self.cache = b""
        self.start = 0
        self.end = 0
        self.last_end = 0
        self.window = READ_AHEAD_MIN

    def _fetch(self, start: Optional[int], end: Optional[int]) -> bytes:
        start = 0 if start is None else start
        end = self.size if end is None or end > self.size else end
        if start >= end:
            return b""
        sequential = start == self.last_end
        self.last_end = end
        if self.start <= start and end <= self.end:
            self.hit_count += 1
            return self.cache[start - self.start : end - self.start]
        self.miss_count += 1
        if end - start >= self.blocksize:
            self.total_requested_bytes += end - start
            return self.fetcher(start, end)
        self.window = min(self.window * 2, READ_AHEAD_MAX) if sequential else READ_AHEAD_MIN
        stop = min(self.size, max(end, start + self.window))
        kept = b""
        if self.start <= start < self.end:
            # The part already here is not fetched again.
            kept = self.cache[start - self.start :]
        self.total_requested_bytes += stop - start - len(kept)
        self.cache = kept + self.fetcher(start + len(kept), stop)
        self.start, self.end = start, start + len(self.cache)
        return self.cache[: end - start]


register_cache(_AdaptiveReadAhead, clobber=True)


def _split(path: str) -> Tuple[str, str]:
    """``profile/rest`` into (profile, rest); a path without a profile is refused."""
    profile, _, rest = path.strip("/").partition("/")
    if not profile:
        raise UsageError(
            f"'cta://{path}' names no profile",
            hint="a cta:// URL starts with a profile name, as in cta://cta/lst/DL2/run1.parquet "
            "(`cta-data config profiles` lists them)",
        )
    return profile, rest


class CtaFileSystem(AbstractFileSystem):
    """The storage of every ``cta-data`` profile as one fsspec filesystem (protocol ``cta``).

    Paths are ``<profile>/<path>``; ``config`` adds a config file (as ``--config``). See the
    module's documentation.
    """

    protocol = ("cta",)
    root_marker = ""
    #: Reads of at least this size bypass the read-ahead of files opened for reading.
    blocksize = BLOCK_SIZE
    default_cache_type = "cta-readahead"

    def __init__(self, config: Optional[str] = None, listing_jobs: int = 8, **kwargs: Any) -> None:
        """``config``: an extra config file. ``listing_jobs``: listings in flight in ``find``.
        Listings are cached for ``listings_expiry_time`` seconds (default 10; fsspec's
        ``use_listings_cache=False`` turns the cache off), so the files a dataset scan found
        are opened without asking the server about each again; this filesystem's own writes
        drop what they change."""
        kwargs.setdefault("listings_expiry_time", 10)
        super().__init__(**kwargs)
        self.config = None if config is None else os.fspath(config)
        self.listing_jobs = listing_jobs
        self._clients: Dict[str, Any] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # --- paths and clients ------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = fsspec.utils.stringify_path(path)
        if path.startswith("cta://"):
            path = path[len("cta://") :]
        elif path.startswith("cta::"):
            path = path[len("cta::") :]
        return path.rstrip("/")

    def client(self, profile: str) -> Any:
        """The engine's client of ``profile``, opened at its first use in this process."""
        with self._lock:
            if os.getpid() != self._pid:
                # A forked child: the parent's connections are not ours.
                self._clients = {}
                self._pid = os.getpid()
            c = self._clients.get(profile)
            if c is None:
                c = _native.NativeClient(profile, self.config)
                self._clients[profile] = c
            return c

    def _resolve(self, path: str) -> Tuple[Any, str, str]:
        profile, rest = _split(self._strip_protocol(path))
        return self.client(profile), profile, rest

    @staticmethod
    def _named(profile: str, info: Dict[str, Any]) -> Dict[str, Any]:
        rel = info["name"].strip("/")
        info["name"] = f"{profile}/{rel}" if rel else profile
        return info

    # --- metadata --------------------------------------------------------------------

    @staticmethod
    def _as_given(path: Any, entries: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Names as URLs when the caller gave a URL (``fs.find("cta://p/x")`` answers
        ``cta://p/x/...``, which pyarrow's ``dataset("cta://...", filesystem=fs)`` needs);
        paths otherwise, as fsspec's own calls, which strip the protocol first, expect."""
        if isinstance(path, str) and path.startswith("cta://"):
            for e in entries:
                e["name"] = "cta://" + e["name"]
        return entries

    def _from_listings(self, stripped: str) -> Optional[Dict[str, Any]]:
        """The entry of ``stripped`` from its parent's cached listing, if there is one."""
        parent = stripped.rpartition("/")[0]
        try:
            listing = self.dircache[parent]
        except KeyError:
            return None
        for e in listing:
            if e["name"] == stripped:
                return dict(e)
        return None

    def _remember(self, directory: str, entries: List[Dict[str, Any]]) -> None:
        if self.dircache.use_listings_cache:
            self.dircache[directory] = [dict(e) for e in entries]

    def invalidate_cache(self, path: Optional[str] = None) -> None:
        """Forgets the cached listings of ``path``, of everything below it and of its parents
        (all listings without ``path``)."""
        if path is None:
            self.dircache.clear()
            return
        p = self._strip_protocol(path)
        for key in list(self.dircache):
            if key == p or key.startswith(p + "/") or p.startswith(key + "/"):
                self.dircache.pop(key, None)

    def info(self, path: str, **kwargs: Any) -> Dict[str, Any]:
        """The entry of a file or directory: name, size, type, mtime, and etag/checksums/locality when the server gives them."""
        stripped = self._strip_protocol(path)
        cached = None if kwargs.get("refresh") else self._from_listings(stripped)
        if cached is not None:
            return self._as_given(path, [cached])[0]
        c, profile, rest = self._resolve(path)
        return self._as_given(path, [self._named(profile, c.info(rest))])[0]

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> List[Any]:
        """The entries of a directory (a file: its own entry), from the listing cache when fresh."""
        stripped = self._strip_protocol(path)
        entries = None
        if not refresh:
            try:
                entries = [dict(e) for e in self.dircache[stripped]]
            except KeyError:
                pass
        if entries is None:
            c, profile, rest = self._resolve(path)
            entries = [self._named(profile, e) for e in c.ls(rest)]
            entries.sort(key=lambda e: e["name"])
            if not (len(entries) == 1 and entries[0]["name"] == stripped and entries[0]["type"] == "file"):
                self._remember(stripped, entries)
        entries = self._as_given(path, entries)
        return entries if detail else [e["name"] for e in entries]

    def find(
        self,
        path: str,
        maxdepth: Optional[int] = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every file below ``path`` (directories too with ``withdirs``), listed by the engine's parallel walk."""
        if maxdepth is not None:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        c, profile, rest = self._resolve(path)
        try:
            found = [self._named(profile, e) for e in c.walk(rest, self.listing_jobs)]
        except FileNotFoundError:
            found = []
        if not (len(found) == 1 and found[0]["type"] == "file" and found[0]["name"] == self._strip_protocol(path)):
            # A whole tree was walked: every directory's listing is known now.
            top = self._strip_protocol(path)
            children: Dict[str, List[Dict[str, Any]]] = {top: []} if found else {}
            for e in found:
                if e["type"] == "directory":
                    children.setdefault(e["name"], [])
            for e in found:
                parent = e["name"].rpartition("/")[0]
                if parent in children:
                    children[parent].append(e)
            for d, entries in children.items():
                self._remember(d, sorted(entries, key=lambda e: e["name"]))
        if withdirs and rest and found and not (len(found) == 1 and found[0]["type"] == "file"):
            # fsspec counts the directory itself among what it finds with `withdirs`.
            found.append(self._named(profile, c.info(rest)))
        out = {e["name"]: e for e in self._as_given(path, [dict(e) for e in found]) if withdirs or e["type"] != "directory"}
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether ``path`` exists (a missing path, not another failure, gives False)."""
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def modified(self, path: str) -> Any:
        """The modification time, as an aware UTC datetime."""
        import datetime

        mtime = self.info(path).get("mtime")
        if mtime is None:
            raise NotImplementedError(f"the server gives no modification time for {path}")
        return datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)

    def checksum(self, path: str) -> int:
        """A number that changes when the file does (from its ETag or the server's checksum)."""
        info = self.info(path)
        sums = info.get("checksums") or {}
        key = info.get("etag") or next(iter(sorted(sums.values())), None)
        if key is None:
            return super().checksum(path)
        return int(fsspec.utils.tokenize(info["name"], info["size"], key), 16)

    def ukey(self, path: str) -> str:
        """A key that changes when the file does."""
        return fsspec.utils.tokenize(self.checksum(path))

    # --- reading ---------------------------------------------------------------------

    def cat_file(self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any) -> bytes:
        """The bytes of a file, or of ``start:end`` (negative values count from the end) in one ranged read."""
        c, _, rest = self._resolve(path)
        if start is None and end is None:
            return c.read(rest)
        size = None
        if (start is not None and start < 0) or (end is not None and end < 0) or start:
            size = c.info(rest)["size"]
        begin = start or 0
        if begin < 0:
            begin = max(0, size + begin)
        stop = end
        if stop is not None and stop < 0:
            stop = max(0, size + stop)
        if size is not None:
            stop = size if stop is None else min(stop, size)
            if begin >= stop:
                return b""
        return c.read(rest, begin, stop)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        """Downloads one file (verified, through a ``.part`` renamed when complete)."""
        c, _, rest = self._resolve(rpath)
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return None
        if outfile is not None:
            outfile.write(c.read(rest))
            return None
        c.fetch_and_save_file(rest, os.fspath(lpath), None)
        return None

    # --- writing ---------------------------------------------------------------------

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        """Uploads one local file (verified); ``mode="create"`` refuses an existing one."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        c, _, rest = self._resolve(rpath)
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(rpath)
        try:
            c.upload_file(os.fspath(lpath), rest, None)
        finally:
            self.invalidate_cache(rpath)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Writes ``value`` as the whole file, in one verified upload."""
        with self.open(path, "wb") as f:
            f.write(value)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Creates a directory (and its parents with ``create_parents``)."""
        c, _, rest = self._resolve(path)
        self.invalidate_cache(path)
        c.mkdir(rest, create_parents)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Creates a directory and its parents; an existing one is an error unless ``exist_ok``."""
        c, _, rest = self._resolve(path)
        if not exist_ok and self.exists(path):
            raise FileExistsError(f"{path} exists (makedirs with exist_ok=False)")
        self.invalidate_cache(path)
        c.mkdir(rest, True)

    def rmdir(self, path: str) -> None:
        """Deletes an empty directory."""
        c, _, rest = self._resolve(path)
        if self.ls(path, detail=False):
            raise OSError(f"{path} is not empty: fs.rm(path, recursive=True) deletes it with its contents")
        self.invalidate_cache(path)
        c.delete(rest, False)

    def rm_file(self, path: str) -> None:
        """Deletes a file."""
        c, _, rest = self._resolve(path)
        self.invalidate_cache(path)
        c.delete(rest, False)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: Optional[int] = None) -> None:
        """Deletes files, or directories with their contents with ``recursive``."""
        if maxdepth is not None:
            return super().rm(path, recursive=recursive, maxdepth=maxdepth)
        paths = path if isinstance(path, list) else [path]
        for p in paths:
            for one in self.expand_path(p, recursive=False) if any(c in p for c in "*?[") else [p]:
                c, _, rest = self._resolve(one)
                self.invalidate_cache(one)
                c.delete(rest, recursive)
        return None

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: Optional[int] = None, **kwargs: Any) -> None:
        """Renames on the server within a profile (no data moves); across profiles, copies then deletes."""
        c1, p1, r1 = self._resolve(path1)
        _, p2, r2 = self._resolve(path2)
        if p1 != p2:
            # Across profiles: copy through this machine, then delete.
            super().mv(path1, path2, recursive=True, maxdepth=maxdepth, **kwargs)
            return
        self.invalidate_cache(path1)
        self.invalidate_cache(path2)
        c1.rename(r1, r2, True)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copies a file through this machine (download, then verified upload)."""
        with tempfile.TemporaryDirectory(prefix="ctadata-cp-") as tmp:
            local = os.path.join(tmp, "file")
            self.get_file(path1, local)
            self.put_file(local, path2)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Optional[int] = None,
        autocommit: bool = True,
        cache_options: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> "CtaFile":
        kwargs.setdefault("cache_type", self.default_cache_type)
        return CtaFile(
            self,
            path,
            mode=mode,
            block_size=block_size or self.blocksize,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    def __repr__(self) -> str:
        extra = f", config={self.config!r}" if self.config else ""
        return f"CtaFileSystem(profiles={sorted(self._clients)!r}{extra})"


class CtaFile(AbstractBufferedFile):
    """A file of the storage: ranged reads through a read-ahead cache, or, opened for
    writing, a local spool sent as one verified upload at ``close()``."""

    fs: CtaFileSystem

    def __init__(self, fs: CtaFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        if mode not in ("rb", "wb", "xb"):
            raise NotImplementedError(f"mode {mode!r}: a cta:// file is read (rb) or written whole (wb, xb)")
        if mode == "xb" and fs.exists(path):
            raise FileExistsError(f"{path} exists (opened with mode 'xb')")
        self._spool: Any = None
        super().__init__(fs, path, mode="wb" if mode == "xb" else mode, **kwargs)
        self._client, _, self._rest = fs._resolve(self.path)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._client.read(self._rest, start, end, self.size)

    def _initiate_upload(self) -> None:
        self._spool = tempfile.NamedTemporaryFile(prefix="ctadata-upload-", suffix=".spool", delete=False)

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._spool is None:
            self._initiate_upload()
        self._spool.write(self.buffer.getvalue())
        if final:
            self._spool.close()
            try:
                self._client.upload_file(self._spool.name, self._rest, None)
            finally:
                self._discard_spool()
                self.fs.invalidate_cache(self.path)
        return True

    def _discard_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            try:
                os.unlink(self._spool.name)
            except FileNotFoundError:
                pass
            self._spool = None

    def discard(self) -> None:
        """Drops what was written: nothing is sent."""
        self._discard_spool()
        self.buffer = None
        self.closed = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.mode == "wb" and not self.closed:
            # A failed `with` block must not replace the remote file with a partial one.
            self.discard()
            return None
        self.close()
        return None

    def __del__(self) -> None:
        if getattr(self, "mode", None) == "wb" and not getattr(self, "closed", True):
            # Garbage-collected without close(): nothing is sent (a partial file could
            # replace a good one).
            self._discard_spool()
            self.closed = True


class ProfileFileSystem(DirFileSystem):
    """One profile's storage with paths from its root (``fs.ls("/")``, ``fs.ls("lst/DL1")``):
    what ``ctadata.webdav4_client()`` returns in place of the old webdav4 client.

    An fsspec filesystem (a :class:`~fsspec.implementations.dirfs.DirFileSystem` over
    :class:`CtaFileSystem`), with the webdav4 client's method names for old notebooks:
    ``upload_file`` (also spelled ``uploadFile``), ``download_file``, ``remove``, ``move``.
    """

    def __init__(self, profile: str, config: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(path=profile, fs=CtaFileSystem(config=config), **kwargs)
        self.profile = profile

    def upload_file(self, from_path: str, to_path: str, overwrite: bool = False, **kwargs: Any) -> None:
        """Uploads a local file (verified); an existing one is replaced only with ``overwrite``,
        as in webdav4."""
        if not overwrite and self.exists(to_path):
            raise FileExistsError(f"{to_path} exists: upload_file(..., overwrite=True) replaces it")
        self.put_file(os.fspath(from_path), to_path)

    uploadFile = upload_file

    def download_file(self, from_path: str, to_path: str, **kwargs: Any) -> None:
        """Downloads a file (verified, through a ``.part`` renamed when complete)."""
        self.get_file(from_path, os.fspath(to_path))

    def remove(self, path: str, recursive: bool = False) -> None:
        """Deletes a file, or a directory with ``recursive``."""
        self.rm(path, recursive=recursive)

    def move(self, from_path: str, to_path: str, overwrite: bool = False) -> None:
        """Renames on the server."""
        if not overwrite and self.exists(to_path):
            raise FileExistsError(f"{to_path} exists: move(..., overwrite=True) replaces it")
        self.mv(from_path, to_path)

    def __repr__(self) -> str:
        return f"ProfileFileSystem(profile={self.profile!r})"
