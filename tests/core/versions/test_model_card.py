"""The shipped model's card states what its record holds, and `heartseg evaluate` reproduces the card's figures
on the two kaggle_strips patients the shipped model validated on (no training here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.postprocess import DEFAULT_POSTPROCESS
from tests.helpers import model_card_path

ROOT = Path(__file__).resolve().parents[3]
RECORD = ROOT / "resources" / "model" / "cv_record.json"


def _record() -> dict:
    return json.loads(RECORD.read_text())


def test_card_tables_are_the_recorded_cross_validation():
    sys.path.insert(0, str(ROOT))
    from scripts.cross_validate import shipped_table_rows, table

    rec = _record()
    card = model_card_path().read_text()
    fold_rows = [{**f["pooled"], "patient": f"{n} ({', '.join(f['test'])})"} for n, f in rec["folds"].items()]
    pooled = {**rec["cv_pooled"], "patient": "**pooled, 16 patients**"}
    for text in (table(fold_rows + [pooled], "fold"), table(sorted(rec["cv_patients"], key=lambda r: r["patient"])),
                 table(shipped_table_rows(rec)), table(rec["final_14"]["rows"])):
        for line in text.splitlines()[2:]:
            assert line in card, f"model card lacks the recorded row: {line}"
    # every Kaggle patient is held out exactly once, never in its own fold's training or validation
    held = [p for f in rec["folds"].values() for p in f["test"]]
    assert sorted(held) == sorted(r["patient"] for r in rec["cv_patients"]) and len(set(held)) == 16
    for f in rec["folds"].values():
        assert not set(f["test"]) & set(f["val"])
    # the shipped model is the shipped run's, reported on that run's own test patients
    shipped = rec["folds"][rec["shipped_run"]]
    assert sorted(r["patient"] for r in rec["shipped_rows"] if r["role"] == "test") == sorted(shipped["test"])
    assert rec["shipped_rule"] == shipped["rule"]


def test_shipped_rule_is_the_default_postprocessing():
    rule = _record()["shipped_rule"]
    assert DEFAULT_POSTPROCESS.threshold == rule["threshold"]
    assert DEFAULT_POSTPROCESS.min_slice_fraction == rule["min_slice_fraction"]
    assert DEFAULT_POSTPROCESS.keep_largest


@pytest.mark.shared
@pytest.mark.slow
def test_evaluate_reproduces_the_card_on_two_kaggle_patients(shared_data, tmp_path):
    rows = _record()["shipped_rows"]
    rec = {r["patient"]: r for r in rows}
    pids = [r["patient"] for r in rows if r["role"] == "test"][:2]  # two patients the shipped model never saw
    assert len(pids) == 2
    run = subprocess.run([sys.executable, "-m", "core.cli", "evaluate", str(shared_data / "kaggle_strips"),
                          "--patients", ",".join(pids), "--out", str(tmp_path), "--panels", "0"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = {r["patient"]: r for r in json.loads((tmp_path / "metrics.json").read_text())["rows"]}
    for pid in pids:
        for key in ("pooled_dice", "pooled_iou", "nonempty_pooled_dice", "nonempty_mean_dice"):
            assert abs(float(rows[pid][key]) - float(rec[pid][key])) <= 0.005, (pid, key)
        fp = round(float(rows[pid]["empty_slice_fp_rate"]) * rec[pid]["empty_slices"])
        assert fp == rec[pid]["false_masks"], pid


def test_shipped_uncertainty_score_is_the_one_chosen_on_validation_slices():
    """The review queue's score is the single-pass measure cross_validate.py chose on validation slices."""
    from core.review.uncertainty import MEASURES, SCORE

    rec = _record()
    assert SCORE == rec["chosen_score"] and SCORE in MEASURES
    validation = rec["uncertainty"]["validation"]
    assert all(validation[SCORE]["auroc"] >= validation[k]["auroc"] for k in MEASURES)
