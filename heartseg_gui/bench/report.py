"""The figures of a ``heartseg bench`` run: :class:`Stat` (repeated timings), :class:`Row` (a table line),
:class:`Report`, and the synthetic CT slice the sections share."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

#: Every figure a bench run reports (``tests/test_bench.py`` checks each one is present and finite).
FIGURES = (
    "inference.flops_per_slice_g", "inference.matmul_gflops", "inference.floor_ms_per_slice",
    "inference.naive_ms_per_slice", "inference.tf_ms_per_slice", "inference.ov_f32_ms_per_slice",
    "inference.project_ms_per_slice", "inference.project_uses_bf16",
    "inference.scan_naive_s", "inference.scan_project_s", "inference.scan_f32_s", "inference.scan_floor_s",
    "inference.speedup_vs_naive", "inference.ratio_to_floor", "inference.ratio_to_floor_f32",
    "inference.bf16_ms_per_slice", "inference.bf16_speedup", "inference.dice_f32", "inference.dice_bf16",
    "inference.dice_delta",
    "gui.slice_change_ms", "gui.stamp_ms", "gui.samples_with_inference",
    "startup.window_s", "startup.first_overlay_s", "startup.tf_loaded_before_window", "startup.tf_loaded_for_overlay",
    "training.core_images_per_s", "training.plain_images_per_s", "training.ratio",
    "memory.peak_rss_gb", "memory.undo_steps",
    "dicom.uncompressed_s", "dicom.uncompressed_sitk_s", "dicom.uncompressed_ratio", "dicom.uncompressed_hu_max_diff",
    "dicom.jpeg2000_s", "dicom.jpeg2000_sitk_s", "dicom.jpeg2000_ratio", "dicom.jpeg2000_hu_max_diff",
    "planes.crosshair_move_ms", "planes.sagittal_stamp_ms", "planes.samples_with_inference",
    "many.scans_per_minute", "many.baseline_scans_per_minute", "many.cores_busy", "many.outputs_identical",
)


@dataclass
class Stat:
    """Repeated timings: median, 95th percentile and count (same unit as the samples)."""

    median: float
    p95: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stat":
        a = np.asarray([s for s in samples if s is not None and math.isfinite(s)], dtype=np.float64)
        if a.size == 0:
            return cls(float("nan"), float("nan"), 0)
        return cls(float(np.median(a)), float(np.percentile(a, 95)), int(a.size))


@dataclass
class Row:
    """One line of the table: a figure, its baseline, the ratio and the target it is held to."""

    section: str
    what: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: Optional[bool] = None


@dataclass
class Report:
    quick: bool
    machine: dict
    figures: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def put(self, key: str, value) -> None:
        self.figures[key] = value

    def to_json(self) -> dict:
        return {"quick": self.quick, "machine": self.machine, "figures": self.figures,
                "rows": [asdict(r) for r in self.rows], "notes": self.notes, "seconds": self.seconds}


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Seconds ``fn(*args, **kwargs)`` took (perf_counter) and its result."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def fmt_ms(stat: Stat) -> str:
    return f"{stat.median:.1f} ms (p95 {stat.p95:.1f}, n={stat.n})"


def fmt_s(stat: Stat) -> str:
    return f"{stat.median:.2f} s (p95 {stat.p95:.2f}, n={stat.n})"


def synthetic_slice_hu(side: int, k: int, n: int, seed: int = 0) -> np.ndarray:
    """A CT-like axial slice ``(side, side)`` int16 in HU: air, body, two lungs, spine and a heart that grows and
    shrinks along the scan, plus noise (so PNGs compress like real ones)."""
    rng = np.random.default_rng(seed * 100_003 + k)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    hu = np.full((side, side), -1000.0, np.float32)
    body = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.52) / 0.33) ** 2 < 1
    hu[body] = 20.0
    for cx in (0.33, 0.67):
        hu[((xx - cx) / 0.13) ** 2 + ((yy - 0.48) / 0.2) ** 2 < 1] = -820.0
    phase = np.sin(np.pi * (k + 0.5) / n)
    r = 0.02 + 0.1 * phase
    hu[((xx - 0.53) / (r * 1.2)) ** 2 + ((yy - 0.5) / r) ** 2 < 1] = 45.0
    hu[((xx - 0.5) / 0.04) ** 2 + ((yy - 0.76) / 0.04) ** 2 < 1] = 700.0
    hu += rng.normal(0.0, 25.0, hu.shape).astype(np.float32)
    return np.clip(hu, -1024, 3000).astype(np.int16)
