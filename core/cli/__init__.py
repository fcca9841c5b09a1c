"""The ``heartseg`` sub-commands that need no window (:mod:`.main` parses, :mod:`.commands` runs,
:mod:`.progress` reports)."""

from core.cli.main import main

__all__ = ["main"]
