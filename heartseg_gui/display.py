"""Pure display helpers (numpy only): window/level presets, layer colours and lookup tables, value text.

Arrays here are one slice, ``(rows, cols)``, row-major, row 0 at the top of the screen (anterior), column 0 on the
left (patient right), as everywhere in heartseg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class WindowPreset:
    """A display window: ``width`` and ``level`` (centre) in the volume's own units."""

    key: str
    label: str
    width: float
    level: float
    intensity: str  # the Volume.intensity it is meant for: "hu" or "kaggle8bit" ("any": computed per volume)

    @property
    def levels(self) -> tuple[float, float]:
        return (self.level - self.width / 2.0, self.level + self.width / 2.0)


MEDIASTINUM = WindowPreset("mediastinum", "Mediastinum (W 350 / L 40)", 350.0, 40.0, "hu")
LUNG = WindowPreset("lung", "Lung (W 1500 / L -600)", 1500.0, -600.0, "hu")
BONE = WindowPreset("bone", "Bone (W 2000 / L 300)", 2000.0, 300.0, "hu")
KAGGLE = WindowPreset("kaggle", "Kaggle PNG scale (0..255)", 255.0, 127.5, "kaggle8bit")
#: contrast-enhanced cardiac CT / CT angiography: 350/40 saturates the contrast blood pool
CARDIAC = WindowPreset("cardiac", "Cardiac / CTA (W 600 / L 170)", 600.0, 170.0, "hu")
FULL_RANGE = "full"
PRESETS = (MEDIASTINUM, LUNG, BONE, KAGGLE, CARDIAC)


def kaggle_levels_for(intensity: str, value_range: tuple[float, float]) -> tuple[float, float]:
    """Levels that look like the Kaggle PNGs: 0..255 for 8-bit data; for HU, stored value 0 (HU -1024) up to the
    volume's maximum (the PNGs scale each slice by its own maximum; one fixed window for the whole volume is used
    here so the display never changes level from slice to slice)."""
    if intensity == "kaggle8bit":
        return (0.0, 255.0)
    if intensity == "hu":
        return (-1024.0, max(float(value_range[1]), -1023.0))
    return (float(value_range[0]), max(float(value_range[1]), float(value_range[0]) + 1.0))


def preset_applies(preset: WindowPreset, intensity: str) -> bool:
    """Whether ``preset`` means anything for a volume of this intensity (HU presets need HU data)."""
    return preset.intensity == "kaggle8bit" or preset.intensity == intensity


def default_levels(intensity: str, value_range: tuple[float, float]) -> tuple[float, float]:
    """The levels a freshly opened volume is shown with: mediastinum for HU, the Kaggle scale otherwise."""
    if intensity == "hu":
        return MEDIASTINUM.levels
    return kaggle_levels_for(intensity, value_range)


def volume_value_range(voxels: np.ndarray) -> tuple[float, float]:
    """``(low, high)`` of a whole volume (0.5 / 99.9 percentiles of a subsample) for one fixed window."""
    flat = np.asarray(voxels).reshape(-1)
    step = max(1, flat.size // 500_000)
    sample = flat[::step].astype(np.float32)
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = np.percentile(sample, [0.5, 99.9])
    if high <= low:
        high = low + 1.0
    return (float(low), float(high))


def adjust_window(levels: tuple[float, float], d_width: float, d_level: float,
                  min_width: float = 1.0) -> tuple[float, float]:
    """Widen the window by ``d_width`` and move its centre by ``d_level`` (volume units); width stays >= min."""
    low, high = levels
    width = max(min_width, (high - low) + d_width)
    centre = (low + high) / 2.0 + d_level
    return (centre - width / 2.0, centre + width / 2.0)


# --- layers ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerStyle:
    key: str
    label: str
    rgb: tuple[int, int, int]
    shortcut: str


AI_LAYER = LayerStyle("ai", "AI prediction", (255, 150, 0), "P")
WORKING_LAYER = LayerStyle("working", "Working mask", (0, 220, 90), "M")
DATASET_LAYER = LayerStyle("dataset", "Dataset mask", (80, 150, 255), "O")
LAYERS = (AI_LAYER, WORKING_LAYER, DATASET_LAYER)


def mask_color_table(rgb: tuple[int, int, int], alpha: int = 255) -> list[int]:
    """A 256-entry ARGB32 colour table for an 8-bit indexed mask image: index 0 transparent, anything else
    ``rgb`` with ``alpha`` (0..255). Used with ``QImage.Format_Indexed8``."""
    r, g, b = rgb
    colour = (alpha & 0xFF) << 24 | r << 16 | g << 8 | b
    return [0] + [colour] * 255


def as_display_image(slice_pixels: np.ndarray) -> np.ndarray:
    """One CT slice as the C-contiguous float32 ``(rows, cols)`` array the image item draws."""
    return np.ascontiguousarray(slice_pixels, dtype=np.float32)


def format_value(value: Optional[float], intensity: str) -> str:
    if value is None:
        return ""
    if intensity == "hu":
        return f"{value:.0f} HU"
    return f"value {value:.0f}"
