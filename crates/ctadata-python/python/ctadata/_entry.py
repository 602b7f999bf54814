"""The entries ``list_dir`` returns: the path as a string, with the listing's fields."""

from __future__ import annotations

from typing import Any, Dict, Tuple


class Entry(str):
    """One entry of a listing: a ``str`` (its path, ``href``: what the old ``ctadata.direct``
    listing gave and what the old README's loop uses, as in ``'.h5' in url``,
    ``url.split("/")``, ``fetch_and_save_file(url)``) that also answers like the
    downloadservice's dicts: ``e["type"]``, ``e["size"]``, ``e.get("mtime")``, ``e.keys()``.

    ``in`` tests the path (``"DL1" in e``); ``e.as_dict()`` gives a plain dict (for JSON).
    Keys: ``href`` (the path, directories with a trailing ``/``), ``type`` (``file`` or
    ``directory``), ``size``, ``mtime`` (HTTP date), ``name``, ``path``.
    """

    _fields: Dict[str, Any]

    def __new__(cls, fields: Dict[str, Any]) -> "Entry":
        self = super().__new__(cls, fields["href"])
        self._fields = dict(fields)
        return self

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self._fields[key]
        return str.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, or ``default``."""
        return self._fields.get(key, default)

    def keys(self) -> Any:
        """The field names."""
        return self._fields.keys()

    def values(self) -> Any:
        """The field values."""
        return self._fields.values()

    def items(self) -> Any:
        """(name, value) pairs of the fields."""
        return self._fields.items()

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict."""
        return dict(self._fields)

    def __repr__(self) -> str:
        return f"Entry({self._fields!r})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (Entry, (self._fields,))
