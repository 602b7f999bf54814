"""The ``cta-data`` and ``cta-data-direct`` console scripts: the Rust command line."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

from ctadata import _native


def _run(argv: List[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    return int(_native.run_cli(argv))


def main(argv: Optional[List[str]] = None) -> None:
    """``cta-data``: the command line, on the profile its options choose."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        args = ["cta-data"]
    args[0] = os.path.basename(args[0]) or "cta-data"
    sys.exit(_run(args))


def main_direct(argv: Optional[List[str]] = None) -> None:
    """``cta-data-direct``: the command line on the ``cta`` profile (dCache directly)."""
    args = list(sys.argv if argv is None else argv)
    sys.exit(_run(["cta-data-direct"] + args[1:]))
