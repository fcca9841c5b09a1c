"""Model ▸ Versions…: every registered model version with its validation Dice; activate any of them, or roll
back to the one active before. Activation goes through a callback (the manager), so the window switches models
through its controller."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import HeartsegError
from core.versions.registry import ModelRegistry

COLUMNS = ["Version", "Active", "Parent", "Created", "Val. pooled Dice", "Val. Dice (heart slices)",
           "Corrected slices", "Train / val patients", "Recipe"]


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def local_time(iso: str) -> str:
    """An ISO 8601 time (UTC when it names no zone) as local ``YYYY-MM-DD HH:MM``; ``iso`` itself when unreadable."""
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)[:19].replace("T", " ")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _bundled_created(entry) -> str:
    """v0 is the bundled model, not made by the registry: its date is its model file's (local time)."""
    try:
        stamp = os.stat(entry.model_path).st_mtime
    except (OSError, AttributeError, TypeError):
        return "—"
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _v0_validation(versions: Sequence) -> Optional[dict]:
    """v0's validation Dice: the bundled model scored on the held-out patients when a version fine-tuned from it
    was registered (``parent_validation`` of the first such version; the patients are fixed per registry)."""
    for entry in versions:
        if entry.version != 0 and entry.parent == 0 and entry.record.get("parent_validation"):
            return entry.record["parent_validation"]
    return None


def version_row(entry, active: int, versions: Sequence = ()) -> list[str]:
    r = entry.record
    val = entry.validation or {}
    created = local_time(entry.created)
    if entry.version == 0:
        val = val or _v0_validation(versions) or {}
        created = _bundled_created(entry)
    data = r.get("data") or {}
    recipe = r.get("recipe") or {}
    patients = "—" if not data else f"{len(data.get('train_patients', []))} / {len(data.get('val_patients', []))}"
    how = "bundled model" if entry.version == 0 else \
        f"{r.get('init', '')}, {recipe.get('epochs', '?')} epochs, {recipe.get('image_size', '?')} px"
    return [entry.label, "●" if entry.version == active else "", _fmt(entry.parent if entry.parent is None
                                                                       else f"v{entry.parent}"),
            created, _fmt(val.get("pooled_dice")), _fmt(val.get("nonempty_pooled_dice")),
            _fmt(data.get("corrected_slices")), patients, how]


class VersionsDialog(QDialog):
    """``activate(version) -> None`` and ``rollback() -> None`` do the switching (and may raise
    :class:`HeartsegError`); ``busy_reason()`` returns why switching is not possible now (or None)."""

    def __init__(self, registry: ModelRegistry, activate: Callable[[int], None], rollback: Callable[[], None],
                 busy_reason: Callable[[], Optional[str]] = lambda: None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Model versions")
        self.setObjectName("versionsDialog")
        self.resize(900, 320)
        self.registry = registry
        self._activate = activate
        self._rollback = rollback
        self._busy_reason = busy_reason
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.info = QLabel(f"Registry: {registry.folder}")
        self.info.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.activate_button = QPushButton("Activate")
        self.rollback_button = QPushButton("Roll back")
        close = QPushButton("Close")
        self.activate_button.clicked.connect(self.activate_selected)
        self.rollback_button.clicked.connect(self.rollback)
        close.clicked.connect(self.accept)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        buttons = QHBoxLayout()
        buttons.addWidget(self.activate_button)
        buttons.addWidget(self.rollback_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        try:
            versions = self.registry.versions()
            active = self.registry.active_version()
        except HeartsegError as exc:
            self.message.setText(str(exc))
            versions, active = [], 0
        self.versions = versions
        self.table.setRowCount(len(versions))
        for row, entry in enumerate(versions):
            for col, text in enumerate(version_row(entry, active, versions)):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self._update_buttons()

    def selected_version(self) -> Optional[int]:
        rows = self.table.selectionModel().selectedRows()
        return self.versions[rows[0].row()].version if rows else None

    def _update_buttons(self) -> None:
        reason = self._busy_reason()
        self.activate_button.setEnabled(reason is None and self.selected_version() is not None)
        self.rollback_button.setEnabled(reason is None)
        tip = reason or ""
        self.activate_button.setToolTip(tip)
        self.rollback_button.setToolTip(tip)
        if reason:
            self.message.setText(reason)

    def activate_selected(self) -> None:
        version = self.selected_version()
        if version is None:
            return
        self._run(lambda: self._activate(version), f"v{version} is now the active model")

    def rollback(self) -> None:
        self._run(self._rollback, "rolled back")

    def _run(self, fn, done: str) -> None:
        try:
            fn()
        except HeartsegError as exc:
            self.message.setText(str(exc))
            return
        self.refresh()
        self.message.setText(f"{done} (v{self.registry.active_version()})")
