"""The ``progress=`` keyword of the transfer functions.

``None`` (the default): a tqdm bar when tqdm is importable and someone watches (stderr is a
terminal, or we run in Jupyter); ``False``: nothing; ``True``: a tqdm bar whatever; a
callable: called as ``progress(done_bytes, total_bytes)`` at most every 100 ms and once at
the end, on the calling thread (the transfer itself never holds the GIL).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

Callback = Callable[[int, int], Any]


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython  # type: ignore
    except Exception:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _watched() -> bool:
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except Exception:
        pass
    return _in_jupyter()


@contextmanager
def callback(progress: Any, desc: str) -> Iterator[Optional[Callback]]:
    """The callable to hand to the engine for ``progress`` (None: no reports)."""
    if progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    if progress is None and not _watched():
        yield None
        return
    try:
        from tqdm.auto import tqdm  # type: ignore
    except Exception:
        yield None
        return
    bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)

    def update(done: int, total: int) -> None:
        if total != bar.total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
