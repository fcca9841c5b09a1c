"""The bfloat16 check of an OpenVINO IR: Dice on the bundled sample at float32 and at bfloat16.

``precision="auto"`` (:class:`core.inference.predictor.Predictor`) uses bfloat16 only where the CPU has AMX-BF16
units and this check, recorded with the IR, showed ``|dDice| <= BF16_MAX_DICE_DELTA``.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import HeartsegError
from core.inference.engines.openvino import OpenVinoEngine
from core.inference.hardware import bfloat16_units
from core.inference.runner import EngineRunner
from core.io import open_scan
from core.metrics import dice
from core.postprocess import DEFAULT_POSTPROCESS
from core.resources import sample_mask_path, sample_scan_path

#: The largest |Dice(bfloat16) - Dice(float32)| on the bundled sample for which ``precision="auto"`` uses bfloat16.
BF16_MAX_DICE_DELTA = 0.005


def _sample_dice(xml: Path, precision: str, volume) -> float:
    runner = EngineRunner(OpenVinoEngine(xml, batch_size=8, precision=precision))
    return float(dice(volume.mask, runner.predict_masks(volume, postprocess=DEFAULT_POSTPROCESS)))


def precision_check(xml: str | Path, image_size: int) -> dict:
    """Dice of the IR's post-processed masks against the bundled sample's heart mask, at float32 and bfloat16.

    ``ok`` is True when ``|dDice| <= BF16_MAX_DICE_DELTA``. On a CPU without bfloat16 units OpenVINO would
    compute bfloat16 in float32, so nothing is checked there (``ok`` False, ``checked`` False).
    """

    if not bfloat16_units():
        return {"checked": False, "ok": False, "why": "this CPU has no bfloat16 units"}
    try:
        volume = open_scan(sample_scan_path(), sample_mask_path())
        d32 = _sample_dice(Path(xml), "float32", volume)
        d16 = _sample_dice(Path(xml), "bfloat16", volume)
    except (HeartsegError, OSError) as exc:  # best effort: without a check, auto stays at float32
        return {"checked": False, "ok": False, "why": str(exc)}
    delta = abs(d32 - d16)
    return {"checked": True, "on": f"bundled sample ({volume.n_slices} slices)", "dice_float32": round(d32, 5),
            "dice_bfloat16": round(d16, 5), "delta": round(delta, 5), "max_delta": BF16_MAX_DICE_DELTA,
            "ok": bool(delta <= BF16_MAX_DICE_DELTA)}
