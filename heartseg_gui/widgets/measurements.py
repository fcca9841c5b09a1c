"""Measurements panel: working-mask area on this slice, heart volume, Dice AI vs working mask, review progress and
the slices filled by interpolation that nobody has reviewed yet."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget


def _fmt_dice(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.3f}"


class MeasurementsPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)
        self.area = QLabel("—")
        self.volume = QLabel("—")
        self.dice_slice = QLabel("—")
        self.dice_scan = QLabel("—")
        self.review = QLabel("—")
        self.interpolated = QLabel("—")
        for w in (self.area, self.volume, self.dice_slice, self.dice_scan, self.review, self.interpolated):
            w.setMinimumWidth(120)
        form.addRow("Area (this slice)", self.area)
        form.addRow("Heart volume", self.volume)
        form.addRow("Dice AI vs mask (slice)", self.dice_slice)
        form.addRow("Dice AI vs mask (scan)", self.dice_scan)
        form.addRow("Reviewed", self.review)
        form.addRow("Interpolated", self.interpolated)
        self.dice_slice.setToolTip("Dice between the AI prediction and the working mask; — where both are empty "
                                   "(nothing to score)")
        self.interpolated.setToolTip("Slices filled by Fill between slices, not reviewed or edited since")

    def show_values(self, *, area: tuple[float, str], volume_ml: Optional[float], voxels: int,
                    dice_slice: Optional[float], dice_scan: Optional[float], reviewed: tuple[int, int]) -> None:
        value, unit = area
        self.area.setText(f"{value:,.1f} {unit}" if unit == "mm²" else f"{value:,.0f} {unit}")
        self.volume.setText(f"{volume_ml:,.1f} mL" if volume_ml is not None else f"{voxels:,} voxels (no spacing)")
        self.dice_slice.setText(_fmt_dice(dice_slice))
        self.dice_scan.setText(_fmt_dice(dice_scan))
        done, total = reviewed
        self.review.setText(f"{done} / {total} slices")

    def show_interpolated(self, slices: list[int], current: int) -> None:
        """``slices``: 0-based slices still as interpolation filled them; ``current``: the slice on screen."""
        if not slices:
            self.interpolated.setText("none")
            return
        here = " — this slice" if current in slices else ""
        self.interpolated.setText(f"{len(slices)} slice{'s' if len(slices) != 1 else ''} not reviewed{here}")

    def clear(self) -> None:
        for w in (self.area, self.volume, self.dice_slice, self.dice_scan, self.review, self.interpolated):
            w.setText("—")
