"""core.review: uncertainty scores, the review queue, QC flags and the correction record; the CLI outputs."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.review.qc import FLAGS, scan_flags, slice_flags
from core.review.record import patient_rows, summary, write_report
from core.review.uncertainty import (
    UncertaintyCollector,
    auroc,
    confidence_map,
    found_in_top,
    review_order,
    slice_measures,
)


def _disc(s=64, r=12, p_in=0.97, p_out=0.01):
    yy, xx = np.mgrid[:s, :s]
    return np.where((yy - s / 2) ** 2 + (xx - s / 2) ** 2 <= r * r, p_in, p_out).astype(np.float32)


def test_confident_slices_score_low_and_doubtful_ones_high():
    sure_heart = _disc()
    sure_empty = np.full((64, 64), 0.01, np.float32)
    faint_blob = _disc(p_in=0.4)  # heart-like evidence just under the threshold: a possible miss
    weak_mask = _disc(p_in=0.55)  # a mask made of weak probabilities: a possible false mask
    m = slice_measures(np.stack([sure_heart, sure_empty, faint_blob, weak_mask]))
    for name, values in m.items():
        assert values.shape == (4,) and np.all((values >= 0) & (values <= 1)), name
    sd = m["soft_dice"]
    assert sd[0] < 0.1 and sd[1] < 0.1
    assert sd[2] > 0.5 and sd[3] > 0.2
    assert m["band"][3] > m["band"][0]


def test_rule_aware_measures():
    s = 64
    speck = np.full((s, s), 0.01, np.float32)
    speck[10:14, 10:14] = 0.95  # 16 px = 0.4 % of the slice: under a 3 % smallest-mask rule
    weak = _disc(p_in=0.82)  # a mask just over a 0.8 threshold
    sure = _disc()
    m = slice_measures(np.stack([speck, weak, sure]), threshold=0.8, min_slice_fraction=0.03)
    assert list(m["dropped"]) == [1.0, 0.0, 0.0]
    assert m["mask_doubt"][1] > 0.15 and m["mask_doubt"][2] < 0.05
    assert m["peak_doubt"][1] > 0.8 and m["peak_doubt"][2] < 0.3
    assert m["area"][2] > m["area"][0]


def test_confidence_map_and_collector():
    p = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(confidence_map(p), [[0, 255, 0]])
    c = UncertaintyCollector(3, threshold=0.8, min_slice_fraction=0.03)
    c.add([2], np.stack([_disc()])[..., None])  # (k, s, s, 1) as a model returns
    c.add([1], np.stack([_disc(p_in=0.6, r=6)])[..., None])  # heart-like evidence under the threshold
    assert np.isnan(c.scores[0]) and 0 <= c.scores[2] < c.scores[1] <= 1
    assert c.maps.shape == (3, 64, 64) and c.maps.dtype == np.uint8 and not c.maps[0].any()


def test_review_order_auroc_and_top_fraction():
    scores = np.array([0.1, 0.9, np.nan, 0.5, 0.9])
    assert review_order(scores) == [1, 4, 3, 0, 2]
    states = ["not_reviewed", "accepted", "not_reviewed", "not_reviewed", "not_reviewed"]
    assert review_order(scores, states) == [4, 3, 0, 2]
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))
    assert found_in_top([0.9, 0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0, 1], 0.2) == 0.5


def test_qc_flags_name_each_rule():
    masks = np.zeros((12, 40, 40), np.uint8)
    for i in range(3, 9):
        masks[i, 10:30, 10:30] = 1  # a heart on slices 3..8
    masks[4, 0:3, 0:3] = 1  # a second region touching the border
    masks[6, 10:30, 10:30] = 0
    masks[6, 18:22, 18:22] = 1  # the area collapses on one slice
    masks[11, 15:20, 15:20] = 1  # far from the rest
    flags = slice_flags(masks, adjacent=True)
    assert "multiple_regions" in flags[4] and "touches_border" in flags[4]
    assert "area_jump" in flags[6] and "area_jump" in flags[5]
    assert flags[11] == ["isolated"]
    assert "cut_off" in flags[3] and "cut_off" not in flags[8]  # the last heart slice is 11 (small)
    gaps = slice_flags(masks, adjacent=False)  # not neighbours: no neighbour rules
    assert "area_jump" not in gaps[6] and gaps[11] == [] and "cut_off" not in gaps[3]
    assert all(f in FLAGS for fl in flags for f in fl)
    assert scan_flags(np.zeros((2, 4, 4), np.uint8)) == ["no_heart"]
    assert scan_flags(masks, spacing=(1.0, 1.0, 1.0)) == ["volume_implausible"]  # 2.5 mL
    assert scan_flags(masks, spacing=None) == []


def test_correction_record_accumulates_over_saves(tmp_path):
    from core.store.writeback import save_masks

    patient = tmp_path / "p1"
    (patient / "image").mkdir(parents=True)
    import cv2

    for name in ("1-001", "1-002"):
        cv2.imwrite(str(patient / "image" / f"{name}.png"), np.zeros((16, 16), np.uint8))
    ai = np.zeros((2, 16, 16), np.uint8)
    ai[0, 4:8, 4:8] = 1
    saved = ai.copy()
    saved[0, 4:8, 4:12] = 1  # slice 1 corrected: 16 -> 32 px
    save_masks(patient, saved, ["1-001", "1-002"], review={0: "corrected"}, ai_masks=ai, seconds=[5.0, 1.0])
    save_masks(patient, saved, ["1-001", "1-002"], review={1: "accepted"}, ai_masks=ai, seconds=[2.5, 0.5])
    rows = patient_rows(patient)
    assert [r["slice"] for r in rows] == ["1-001", "1-002"]
    r0, r1 = rows
    assert (r0["state"], r0["ai_area_px"], r0["saved_area_px"], r0["area_change_px"]) == ("corrected", 16, 32, 16)
    assert r0["seconds"] == 7.5 and abs(r0["dice_ai"] - 2 * 16 / 48) < 1e-4
    assert r1["state"] == "accepted" and r1["dice_ai"] == "—"  # both empty: no Dice, not 1.000
    s = summary(rows)[0]
    assert s["corrected"] == 1 and s["accepted"] == 1 and s["changed"] == 1 and s["seconds"] == 9.0
    written = write_report(rows, tmp_path / "out")
    assert {p.name for p in written} == {"record.csv", "area.png", "report.md"}
    with open(tmp_path / "out" / "record.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2


@pytest.mark.shared
@pytest.mark.slow
def test_predict_writes_qc_csv_and_report_reads_the_record(shared_data, tmp_path):
    patient = shared_data / "kaggle_strips" / "train" / "100056"
    out = tmp_path / "pred"
    run = subprocess.run([sys.executable, "-m", "core.cli", "predict", str(patient), "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    with open(out / "100056_qc.csv") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted(p.stem for p in (patient / "image").glob("*.png"))
    assert sorted(r["slice"] for r in rows) == names
    for r in rows:
        assert 0.0 <= float(r["uncertainty"]) <= 1.0
        assert all(f in FLAGS for f in r["flags"].split(";") if f)
        assert int(r["area_px"]) == int((__import__("cv2").imread(str(out / f"{r['slice']}.png"), 0) > 0).sum())
    assert sorted(int(r["review_rank"]) for r in rows) == list(range(1, len(rows) + 1))
    assert "not neighbours" in run.stderr  # a random ~20 % subset: per-slice clean-up, said so
    # heartseg report on a copy that has a review record
    data = tmp_path / "data" / "train" / "100056"
    shutil.copytree(patient, data)
    from core.io import open_scan
    from core.store.writeback import save_masks

    vol = open_scan(data)
    save_masks(data, vol.mask, vol.slice_names, review={0: "accepted"}, ai_masks=vol.mask)
    rep = subprocess.run([sys.executable, "-m", "core.cli", "report", str(tmp_path / "data"), "--out",
                          str(tmp_path / "rep")], capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "rep" / "record.csv").is_file() and (tmp_path / "rep" / "area.png").is_file()
    empty = subprocess.run([sys.executable, "-m", "core.cli", "report", str(shared_data / "kaggle_strips"), "--out",
                            str(tmp_path / "rep2")], capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and "no patient has a review record" in empty.stderr
    assert not (tmp_path / "rep2").exists()
