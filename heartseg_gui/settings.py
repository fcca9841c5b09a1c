"""Where the window keeps its settings (layout, last folder, recent files, brush radius ...).

``QSettings`` under the organisation / application name ``heartseg``. Setting ``HEARTSEG_SETTINGS_DIR`` stores
them in an INI file in that folder instead (tests use a temporary folder so they never touch the user's settings).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANISATION = "heartseg"
APPLICATION = "heartseg"
SETTINGS_DIR_ENV = "HEARTSEG_SETTINGS_DIR"
MAX_RECENT = 10


def make_settings() -> QSettings:
    """The settings store: an INI file in ``$HEARTSEG_SETTINGS_DIR`` when set, else the platform default."""
    folder = os.environ.get(SETTINGS_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "heartseg.ini"), QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value("recent_files", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent_file(settings: QSettings, path: str | Path) -> list[str]:
    """Put ``path`` first in the recent-files list (at most :data:`MAX_RECENT`); returns the new list."""
    path = str(Path(path))
    items = [p for p in recent_files(settings) if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    settings.setValue("recent_files", items)
    return items


def last_folder(settings: QSettings) -> str:
    return str(settings.value("last_folder", "") or "")


def set_last_folder(settings: QSettings, path: str | Path) -> None:
    p = Path(path)
    settings.setValue("last_folder", str(p if p.is_dir() else p.parent))
