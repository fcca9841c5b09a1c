"""Issue 12 item 7, the leftovers, through the real ``heartseg`` command line (a subprocess each):

* a real CT with NaN / infinite voxels injected: ``predict`` says so in one warning line, exports no blank slice
  (pixels outside the NaN voxels as from the clean scan) and still finds the heart on those slices;
  a scan without any number is refused (exit 2, one line naming the file, nothing written);
* patient folders ``p 1`` / ``p_1`` and ``..p`` / ``p`` through ``evaluate``: every patient listed, every panel
  kept (none written over another); a one-dot folder holding a patient is named on stderr, not silently skipped;
* a disk that fills up mid-write (a real tmpfs of a few pages): ``predict`` and ``evaluate`` exit 2 with one
  line saying the disk is full, leave nothing in ``--out`` (a folder they created is gone, an existing one is as it
  was) and the input byte-identical.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.store.dataset import save_masks
from tests.core.store.test_leftovers_12 import nan_ct
from tests.corpus import kaggle_patient, tree_state

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def heartseg(*args) -> subprocess.CompletedProcess:
    code = "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, encoding="utf-8", timeout=300)


def lines_of(stderr: str, kind: str) -> list[str]:
    return [line for line in stderr.splitlines() if f": {kind}: " in line]


def one_error_line(r: subprocess.CompletedProcess, command: str) -> str:
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    assert lines[0].startswith(f"heartseg {command}: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------- NaN voxels
@pytest.mark.shared
def test_predict_on_a_ct_with_nan_voxels_exports_no_blank_slice(chest_crop, tmp_path):
    import cv2
    import nibabel as nib

    from core.io import open_scan
    from core.metrics import dice
    from core.preprocess import to_kaggle_scale

    scan, where = nan_ct(chest_crop / "ct.nii.gz", tmp_path / "nan.nii.gz")
    out = tmp_path / "out"
    before = tree_state(scan)
    r = heartseg("predict", scan, "--out", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    (warning,) = lines_of(r.stderr, "warning")
    assert f"{where['count']} voxels hold no number" in warning and "nan" in warning
    assert tree_state(scan) == before

    clean = open_scan(chest_crop / "ct.nii.gz")
    reference = to_kaggle_scale(clean)
    finite = np.isfinite(np.asarray(nib.load(str(scan)).dataobj))
    truth = np.asarray(nib.load(str(chest_crop / "heart.nii.gz")).dataobj) > 0
    predicted = np.asarray(nib.load(str(out / "nan_heart.nii.gz")).dataobj) > 0  # on the input's own grid
    for z in where["z"]:
        k = clean.n_slices - 1 - z  # display slice k is NIfTI z (display order: most superior first)
        image = cv2.imread(str(out / "nan" / "image" / f"1-{k + 1:03d}.png"), cv2.IMREAD_UNCHANGED)
        assert image.max() > 0, f"slice {k + 1} exported blank"
        outside = finite[:, :, z].T  # this file is LPS: display slice k is its z slice transposed, z flipped
        assert 0.5 < outside.mean() < 1
        np.testing.assert_array_equal(image[outside], reference[k][outside])  # as from the clean scan, and ...
        score = dice(truth[:, :, z], predicted[:, :, z])  # ... and the heart is still found there
        assert score > 0.7, f"slice z={z}: Dice {score:.3f} with the reference heart mask"


def test_predict_refuses_a_scan_without_any_number(tmp_path):
    import nibabel as nib

    scan = tmp_path / "empty values.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 4), np.nan, np.float32), np.eye(4)), str(scan))
    out = tmp_path / "out"
    before = tree_state(tmp_path)
    line = one_error_line(heartseg("predict", scan, "--out", out), "predict")
    assert str(scan) in line and "NaN" in line
    assert not out.exists() and tree_state(tmp_path) == before


# ------------------------------------------------------------------------------------------- names
def test_evaluate_keeps_every_patients_panels_and_lists_dot_dot_names(tmp_path):
    train = tmp_path / "ds" / "data" / "train"
    pids = ["p 1", "p_1", "..p", "p"]
    for pid in pids:
        kaggle_patient(train / pid, n=2, rows=40, cols=48)
    kaggle_patient(train / ".copy", n=2, rows=40, cols=48)
    before = tree_state(tmp_path / "ds")
    out = tmp_path / "out"
    r = heartseg("evaluate", tmp_path / "ds", "--out", out, "--panels", "1")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    with open(out / "metrics.csv", newline="", encoding="utf-8") as fh:
        listed = [row["patient"] for row in csv.DictReader(fh)]
    assert sorted(listed[:-1]) == sorted(pids) and listed[-1].startswith("ALL")
    panels = sorted(p.name for p in (out / "panels").iterdir())
    assert len(panels) == len(pids), f"a panel was written over another: {panels}"
    (warning,) = lines_of(r.stderr, "warning")
    assert "'.copy'" in warning and "hidden" in warning
    assert tree_state(tmp_path / "ds") == before


def test_predict_on_a_nifti_folder_writes_each_case_apart(tmp_path):
    import nibabel as nib

    folder = tmp_path / "scans"
    folder.mkdir()
    cases = ("p 1", "p_1", "..p", "p")
    rng = np.random.default_rng(1)
    for k, case in enumerate(cases):  # each case its own content, to tell the outputs apart
        data = (rng.integers(-1000, 400, (24, 20, 2)) + 100 * k).astype(np.int16)
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(folder / f"{case}.nii.gz"))
    out = tmp_path / "out"
    r = heartseg("predict", folder, "--out", out, "-q")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr  # before: refused ("the same name")
    masks = sorted(out.glob("*_heart.nii.gz"))
    qc = sorted(out.glob("*_qc.csv"))
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(masks) == len(qc) == len(folders) == len(cases), sorted(os.listdir(out))
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a staging folder was left"
    shown = r.stdout.splitlines()
    assert all(str(m) in shown for m in masks)


# ------------------------------------------------------------------------------------------- full disk
def mount_tiny_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path):
    """A 40 KiB tmpfs (10 pages: a 20-slice prediction fills it after about 9 files)."""
    mnt = tmp_path / "tiny"
    if not mount_tiny_tmpfs(mnt, 40):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_mid_write_leaves_nothing_in_out(tmp_path, tiny_disk):
    patient = kaggle_patient(tmp_path / "ds" / "data" / "train" / "p1", n=20, rows=40, cols=48)
    before = tree_state(tmp_path / "ds")
    new_out = tiny_disk / "new" / "out"
    line = one_error_line(heartseg("predict", patient, "--out", new_out, "-q"), "predict")
    assert line.startswith(f"heartseg predict: error: {new_out}: ") and "disk is full" in line, line
    assert not (tiny_disk / "new").exists(), "predict left the folders it created"
    assert list(tiny_disk.iterdir()) == [], "predict left files on the full disk"

    existing = tiny_disk / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("the user's own file")
    save_masks(patient, "p1", np.zeros((20, 40, 48), np.uint8), [f"1-{i + 1:03d}" for i in range(20)])
    before = tree_state(tmp_path / "ds")
    filler = tiny_disk / "filler"
    with open(filler, "wb") as fh:  # the disk full but one page: the report's first file fits, the next does not
        fh.write(b"\0" * (7 * 4096))
    kept = tree_state(existing)
    line = one_error_line(heartseg("report", tmp_path / "ds", "--out", existing, "-q"), "report")
    assert "disk is full" in line and str(existing) in line, line
    assert tree_state(existing) == kept and sorted(os.listdir(existing)) == ["notes.txt"]
    assert tree_state(tmp_path / "ds") == before, "an input changed"
    filler.unlink()  # with room, the same command writes its three files
    r = heartseg("report", tmp_path / "ds", "--out", existing, "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(existing)) == ["area.png", "notes.txt", "record.csv", "report.md"]
