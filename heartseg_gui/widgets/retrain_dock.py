"""The Retraining dock: stage, epoch and batch progress, ETA, live loss / Dice curves (pyqtgraph), Cancel.

It only displays :class:`core.types.Progress` items handed to :meth:`RetrainPanel.show_progress` and emits
``cancelRequested``; it never touches the job.
"""

from __future__ import annotations

import math
from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.types import format_duration

STAGE_TEXT = {"read": "Reading slices", "train": "Training", "epoch": "Training", "evaluate": "Validating",
              "register": "Registering the new version"}


def format_eta(seconds: Optional[float]) -> str:
    """``m:ss`` or ``h:mm:ss`` (:func:`core.cli.progress` formats it), "—" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    return format_duration(round(seconds))


class _Curves:
    """One plot with named curves (x = epoch or fractional epoch)."""

    def __init__(self, title: str, y_label: str):
        self.widget = pg.PlotWidget(title=title)
        self.widget.setBackground("w")
        self.widget.showGrid(x=True, y=True, alpha=0.3)
        self.widget.setLabel("bottom", "epoch")
        self.widget.setLabel("left", y_label)
        self.widget.addLegend(offset=(5, 5))
        self.widget.setMinimumHeight(120)
        self.data: dict[str, tuple[list, list]] = {}
        self.items: dict[str, pg.PlotDataItem] = {}

    def add(self, key: str, name: str, pen, symbol=None) -> None:
        self.data[key] = ([], [])
        self.items[key] = self.widget.plot([], [], name=name, pen=pen, symbol=symbol, symbolSize=5,
                                           symbolBrush=pen.color() if symbol else None)

    def append(self, key: str, x: float, y) -> None:
        if y is None or not math.isfinite(float(y)):
            return
        xs, ys = self.data[key]
        xs.append(float(x))
        ys.append(float(y))
        self.items[key].setData(xs, ys)

    def clear(self) -> None:
        for key, item in self.items.items():
            self.data[key] = ([], [])
            item.setData([], [])


class RetrainPanel(QWidget):
    """The dock's contents."""

    cancelRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.epochs = 1
        self.steps_per_epoch = 1
        self.stage_label = QLabel("No retraining running")
        self.stage_label.setWordWrap(True)
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setFormat("epoch %v / %m")
        self.batch_bar = QProgressBar()
        self.batch_bar.setFormat("batch %v / %m")
        self.eta_label = QLabel("—")
        self.metrics_label = QLabel("")
        self.cancel_button = QPushButton("Cancel retraining")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(self.result_label.textInteractionFlags())
        self.loss = _Curves("Loss", "loss")
        self.dice = _Curves("Dice (batch-pooled)", "Dice")
        blue, orange = pg.mkPen("#1f77b4", width=2), pg.mkPen("#ff7f0e", width=2)
        self.loss.add("batch", "training (per batch)", pg.mkPen("#9ecae1", width=1))
        self.loss.add("train", "training", blue, "o")
        self.loss.add("val", "validation", orange, "s")
        self.dice.add("train", "training", blue, "o")
        self.dice.add("val", "validation", orange, "s")

        form = QFormLayout()
        form.addRow("Epoch", self.epoch_bar)
        form.addRow("Batch", self.batch_bar)
        form.addRow("Time left", self.eta_label)
        form.addRow("Now", self.metrics_label)
        top = QHBoxLayout()
        top.addWidget(self.stage_label, 1)
        top.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(self.loss.widget, 1)
        layout.addWidget(self.dice.widget, 1)
        layout.addWidget(self.result_label)

    # --- driven by the manager ------------------------------------------------------------------------------------
    def start(self, text: str, epochs: int) -> None:
        self.epochs = max(1, int(epochs))
        self.steps_per_epoch = 1
        self.loss.clear()
        self.dice.clear()
        self.epoch_bar.setRange(0, self.epochs)
        self.epoch_bar.setValue(0)
        self.batch_bar.setRange(0, 0)
        self.eta_label.setText("—")
        self.metrics_label.setText("")
        self.result_label.setText("")
        self.stage_label.setText(text)
        self.cancel_button.setEnabled(True)

    def show_progress(self, item) -> None:
        """Show one :class:`core.types.Progress` of :func:`core.versions.retrain.run_retraining`."""
        stage = item.stage
        m = item.metrics or {}
        if stage == "train":
            self.steps_per_epoch = max(1, int(item.total) // self.epochs)
            epoch = int(m.get("epoch", 1))
            in_epoch = int(item.done) - (epoch - 1) * self.steps_per_epoch
            self.stage_label.setText(f"Training — {item.message}")
            self.epoch_bar.setValue(epoch - 1)
            self.batch_bar.setRange(0, self.steps_per_epoch)
            self.batch_bar.setValue(max(0, min(self.steps_per_epoch, in_epoch)))
            self.eta_label.setText(format_eta(item.eta_s))
            parts = [f"{k} {m[k]:.4f}" for k in ("loss", "dice_coef") if k in m]
            self.metrics_label.setText(", ".join(parts))
            self.loss.append("batch", (item.done) / self.steps_per_epoch, m.get("loss"))
        elif stage == "epoch":
            epoch = int(m.get("epoch", item.done))
            self.epoch_bar.setValue(epoch)
            self.loss.append("train", epoch, m.get("loss"))
            self.loss.append("val", epoch, m.get("val_loss"))
            self.dice.append("train", epoch, m.get("dice_coef"))
            self.dice.append("val", epoch, m.get("val_dice_coef"))
        else:
            self.stage_label.setText(f"{STAGE_TEXT.get(stage, stage)} — {item.message}".rstrip(" —"))
            if stage in ("evaluate", "register"):
                self.eta_label.setText("—")

    def finish(self, text: str, detail: str = "") -> None:
        self.stage_label.setText(text)
        self.result_label.setText(detail)
        self.cancel_button.setEnabled(False)
        self.batch_bar.setRange(0, 1)
        self.eta_label.setText("—")


class RetrainDock(QDockWidget):
    """Dock wrapper (object name ``retrainDock`` so the window saves its place)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Retraining", parent)
        self.setObjectName("retrainDock")
        self.panel = RetrainPanel()
        self.setWidget(self.panel)
