"""Where the window keeps its settings (layout, link zoom, last folders, recent files, brush radius, precision), typed.

:class:`Settings` wraps a ``QSettings`` store under the organisation / application name ``heartseg`` and reads
every key back as its type (``QSettings`` returns strings from INI files). Setting ``HEARTSEG_SETTINGS_DIR``
stores them in an INI file in that folder instead (tests use a temporary folder so they never touch the user's
settings).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "heartseg"
APPLICATION = "heartseg"
SETTINGS_DIR_ENV = "HEARTSEG_SETTINGS_DIR"
MAX_RECENT = 10


class Settings:
    """Typed accessors over one ``QSettings`` store (``store``)."""

    def __init__(self, store: QSettings):
        self.store = store

    # --- files ------------------------------------------------------------------------------------------------
    @property
    def recent_files(self) -> list[str]:
        value = self.store.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent_file(self, path: str | Path) -> list[str]:
        """Put ``path`` first in the recent-files list (at most :data:`MAX_RECENT`); returns the new list."""
        path = str(Path(path))
        items = [p for p in self.recent_files if p != path]
        items.insert(0, path)
        items = items[:MAX_RECENT]
        self.store.setValue("recent_files", items)
        return items

    @property
    def last_folder(self) -> str:
        return str(self.store.value("last_folder", "") or "")

    def set_last_folder(self, path: str | Path) -> None:
        """Remember ``path`` (a folder, or the folder of a file) as where the next file dialog starts."""
        p = Path(path)
        self.store.setValue("last_folder", str(p if p.is_dir() else p.parent))

    @property
    def last_model_folder(self) -> str:
        return str(self.store.value("last_model_folder", "") or "")

    @last_model_folder.setter
    def last_model_folder(self, folder: str | Path) -> None:
        self.store.setValue("last_model_folder", str(folder))

    # --- window -----------------------------------------------------------------------------------------------
    @property
    def geometry(self) -> Optional[QByteArray]:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    @property
    def window_state(self) -> Optional[QByteArray]:
        value = self.store.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    @property
    def brush_radius(self) -> Optional[int]:
        value = self.store.value("brush/radius")
        return None if value is None else int(value)

    @brush_radius.setter
    def brush_radius(self, radius: int) -> None:
        self.store.setValue("brush/radius", int(radius))

    @property
    def full_precision(self) -> bool:
        return str(self.store.value("model/full_precision", "false")).lower() == "true"

    @full_precision.setter
    def full_precision(self, on: bool) -> None:
        self.store.setValue("model/full_precision", bool(on))

    @property
    def layout(self) -> str:
        """The central views' layout: ``"axial"``, ``"three"`` or ``"grid"`` (View ▸ Layout)."""
        value = str(self.store.value("view/layout", "axial") or "axial")
        return value if value in ("axial", "three", "grid") else "axial"

    @layout.setter
    def layout(self, name: str) -> None:
        self.store.setValue("view/layout", str(name))

    @property
    def link_zoom(self) -> bool:
        """View ▸ Link zoom: a zoom or pan in one plane zooms the others to the same mm scale."""
        return str(self.store.value("view/link_zoom", "false")).lower() == "true"

    @link_zoom.setter
    def link_zoom(self, on: bool) -> None:
        self.store.setValue("view/link_zoom", bool(on))

    def sync(self) -> None:
        self.store.sync()


def make_settings() -> Settings:
    """The settings store: an INI file in ``$HEARTSEG_SETTINGS_DIR`` when set, else the platform default."""
    folder = os.environ.get(SETTINGS_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Settings(QSettings(str(Path(folder) / "heartseg.ini"), QSettings.Format.IniFormat))
    return Settings(QSettings(ORGANISATION, APPLICATION))
