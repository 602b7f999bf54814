"""``ctadata.direct``: the old functions on the ``cta`` profile (dCache directly, with the
token of ``cta-data login``), as the old ``ctadata.direct`` module."""

from __future__ import annotations

import sys

from ctadata import APIClient as _APIClient
from ctadata import _module_function

PROFILE = "cta"


class APIClient(_APIClient):
    """:class:`ctadata.APIClient` on the ``cta`` profile by default."""

    def __init__(self, profile=None, config=None, **settings) -> None:
        super().__init__(profile or PROFILE, config, **settings)


list_dir = _module_function("list_dir", PROFILE)
fetch_and_save_file = _module_function("fetch_and_save_file", PROFILE)
fetch_and_save_file_or_dir = _module_function("fetch_and_save_file_or_dir", PROFILE)
upload_file = _module_function("upload_file", PROFILE)
upload_dir = _module_function("upload_dir", PROFILE)
webdav4_client = _module_function("webdav4_client", PROFILE)

#: The old README wrote ``from ctadata import direct as ctadata`` and then
#: ``ctadata.direct.upload_file(...)``: this module is also its own ``direct``.
direct = sys.modules[__name__]

__all__ = [
    "APIClient",
    "list_dir",
    "fetch_and_save_file",
    "fetch_and_save_file_or_dir",
    "upload_file",
    "upload_dir",
    "webdav4_client",
]
