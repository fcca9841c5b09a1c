"""Training on NIfTI datasets (``imagesTr`` / ``labelsTr``, the nnU-Net / MSD / MONAI layout): ``heartseg train`` and
the retraining path (core.versions.retrain) read each case's scan with its label map, one case at a time, with the
preprocessing inference uses; label maps with several labels need ``--label``.

Tiny on purpose (2 CPU cores): 3 cases x 8 slices cut from the real TotalSegmentator chest crop, a 64-px U-Net with
4-8 filters, 2 steps per epoch."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import open_scan
from core.store.dataset import open_dataset
from core.training.config import TrainConfig
from core.training.data import load_volume_cases, make_dataset
from core.versions.registry import ModelRegistry
from core.versions.retrain import plan_retraining, read_training_slices
from tests.helpers import predictor_from_engine, tiny_model

pytestmark = [pytest.mark.shared, pytest.mark.timeout(240)]

#: Cases cut from the crop along its file z axis (LPS: file z k is display slice 111 - k), all with heart.
CASES = {"c01": (30, 38), "c02": (50, 58), "c03": (70, 78)}
N_SLICES = 8
#: The second label of the two-label maps: a block of background voxels in one corner.
OTHER = 3
SIZE = 64


def make_nifti_dataset(root: Path, chest_crop: Path, *, two_labels: bool = False) -> Path:
    """``root/imagesTr/<case>_0000.nii.gz`` + ``root/labelsTr/<case>.nii.gz`` cut from the real crop (nibabel's
    slicer keeps each cut's affine right); ``two_labels``: heart 1 plus label :data:`OTHER`."""
    ct, heart = nib.load(str(chest_crop / "ct.nii.gz")), nib.load(str(chest_crop / "heart.nii.gz"))
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case, (a, b) in CASES.items():
        nib.save(ct.slicer[:, :, a:b], str(root / "imagesTr" / f"{case}_0000.nii.gz"))
        label = heart.slicer[:, :, a:b]
        if two_labels:
            data = np.asarray(label.dataobj).copy()
            block = data[:12, :12, :]
            block[block == 0] = OTHER
            label = nib.Nifti1Image(data, label.affine, label.header)
        nib.save(label, str(root / "labelsTr" / f"{case}.nii.gz"))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory, chest_crop):
    tmp = tmp_path_factory.mktemp("nifti-train")
    tiny_model(tmp / "tiny.keras", seed=3)
    return {"plain": make_nifti_dataset(tmp / "Task01_Heart", chest_crop),
            "two": make_nifti_dataset(tmp / "Task02_Labels", chest_crop, two_labels=True), "tiny": tmp / "tiny.keras"}


def _train_args(data: Path, out: Path, *more: str) -> list[str]:
    return ["train", str(data), "--out", str(out), "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "4",
            "--image-size", str(SIZE), "--no-augment", *more]


def test_plan_counts_every_slice_of_each_case(world):
    plan = plan_retraining(world["plain"], None)
    assert sorted(plan.train_pids + plan.val_pids) == sorted(CASES) and len(plan.val_pids) == 1
    assert plan.train_slices == 2 * N_SLICES and plan.val_slices == N_SLICES
    assert plan.corrected_slices == plan.flagged_excluded == 0


def test_cli_train_refuses_two_labels_without_label_and_with_it_writes_a_model_and_registers_a_version(
        world, tmp_path, capsys, monkeypatch):
    """``heartseg train`` on a NIfTI dataset whose label maps hold heart (1) and another label: refused in one line
    naming the file and its labels without ``--label``; with ``--label 1`` two epochs write a model and register a
    version. (Converting the new model for OpenVINO is tested in test_retraining; skipped here for time.)"""
    from core.cli import main
    from core.versions import retrain

    monkeypatch.setattr(retrain, "openvino_available", lambda: False)
    registry = tmp_path / "registry"
    rc = main(_train_args(world["two"], tmp_path / "refused", "--registry", str(registry),
                          "--init-model", str(world["tiny"])))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    line = next(e for e in err if "label map" in e)
    assert "labelsTr" in line and f"(1, {OTHER})" in line and "--label" in line
    assert not (tmp_path / "refused" / "best_model.keras").exists() and ModelRegistry(registry).version_numbers() == [0]

    out = tmp_path / "run"
    rc = main(_train_args(world["two"], out, "--registry", str(registry), "--init-model", str(world["tiny"]),
                          "--label", "1"))
    assert rc == 0, capsys.readouterr().err
    model = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert model.is_file() and model.parent == out and model.suffix == ".keras"
    reg = ModelRegistry(registry)
    assert reg.version_numbers() == [0, 1] and reg.model_path(1).is_file()
    rec = reg.get(1).record
    split = json.loads((out / "split.json").read_text())
    assert rec["data"]["train_slices"] == 2 * N_SLICES and rec["data"]["val_slices"] == N_SLICES
    assert rec["data"]["train_patients"] == split["train"] and rec["data"]["val_patients"] == split["val"]
    assert sorted(split["train"] + split["val"]) == sorted(CASES) and len(split["val"]) == 1
    assert rec["validation"]["patients"] == split["val"] and rec["validation"]["slices"] == N_SLICES
    assert 0.0 <= rec["validation"]["pooled_dice"] <= 1.0
    assert rec["training"]["epochs_run"] == 2 and rec["label"] == 1
    comparison = json.loads((out / "validation.json").read_text())
    assert comparison["new"]["patients"] == split["val"] and comparison["old"] is not None


def test_label_picks_the_target(world):
    """``label=N`` trains on voxels equal to N: heart (1) gives the heart mask, :data:`OTHER` the corner block."""
    dataset = open_dataset(world["two"])
    heart = read_training_slices(dataset, ["c01"], SIZE, label=1)
    other = read_training_slices(dataset, ["c01"], SIZE, label=OTHER)
    plain = read_training_slices(open_dataset(world["plain"]), ["c01"], SIZE)
    assert np.array_equal(heart.masks, plain.masks) and heart.masks.any()
    assert np.array_equal(heart.images, plain.images)
    assert other.masks.any() and not (other.masks & heart.masks).any()
    with pytest.raises(HeartsegError, match=r"label 7 is not in the mask"):
        read_training_slices(dataset, ["c01"], SIZE, label=7)


class RecordingEngine:
    """An engine that records every batch the predictor feeds it (what the model would see) and answers zeros."""

    runtime, precision = "tensorflow", "float32"

    def __init__(self, image_size: int, batch_size: int = 4):
        self.image_size, self.batch_size = image_size, batch_size
        self.batches: list[np.ndarray] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(np.array(batch, copy=True))
        return np.zeros(batch.shape[:3], np.float32)


def test_training_input_of_a_slice_is_the_predictors_input(world):
    """The tf.data pipeline (no augmentation) feeds each NIfTI slice to the network exactly as the Predictor does."""
    dataset = open_dataset(world["plain"])
    data = read_training_slices(dataset, ["c02"], SIZE)
    assert data.ids == [f"c02/1-{i + 1:03d}" for i in range(N_SLICES)]
    config = TrainConfig(batch_size=N_SLICES, image_size=SIZE, augment=False)
    x, y = next(iter(make_dataset(data, config, training=False)))
    x, y = np.asarray(x), np.asarray(y)

    volume = open_scan(dataset.entry("c02").path, dataset.entry("c02").mask_path)
    engine = RecordingEngine(SIZE)
    predictor_from_engine(engine).predict_volume(volume)
    fed = np.concatenate(engine.batches)[:N_SLICES]  # slices in order (no current slice), the last batch padded
    assert x.shape == fed.shape == (N_SLICES, SIZE, SIZE, 3) and x.dtype == fed.dtype == np.float32
    assert np.array_equal(x, fed)  # bit for bit
    assert x.std() > 0.05  # a real CT, not an empty image
    from core.preprocess import mask_to_model_target

    assert np.array_equal(y, np.stack([mask_to_model_target(m, SIZE) for m in volume.mask]))


def test_cases_are_read_one_at_a_time_and_flagged_slices_left_out(world):
    dataset = open_dataset(world["plain"])
    alive: list = []
    seen_alive: list = []

    def loader(pid):
        def load():
            gc.collect()
            seen_alive.append(sum(r() is not None for r in alive))
            volume = dataset.load(pid)
            alive.append(weakref.ref(volume))
            return volume
        return load

    weights = [None, 2.0] + [1.0] * (N_SLICES - 2)  # slice 1-001 flagged, 1-002 corrected
    data = load_volume_cases([(pid, loader(pid), weights) for pid in CASES], SIZE)
    assert seen_alive == [0, 0, 0]  # the previous case's volume is gone before the next is read
    assert len(data) == 3 * (N_SLICES - 1) and "c01/1-001" not in data.ids and data.ids[0] == "c01/1-002"
    assert data.weights.tolist() == [2.0] + [1.0] * (N_SLICES - 2) + ([2.0] + [1.0] * (N_SLICES - 2)) * 2
    with pytest.raises(HeartsegError, match=r"has 8 slices but 9 were counted"):
        load_volume_cases([("c01", loader("c01"), [1.0] * 9)], SIZE)
