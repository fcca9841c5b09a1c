"""Retraining from corrections (core.versions.retrain): plan counts, a tiny run that registers a version with its record,
cancellation, rollback restoring the previous predictions bit for bit, and ``heartseg train --registry``.

Tiny on purpose (2 CPU cores): 3 patients x 12 slices, a 64-px U-Net with 4-8 filters, 2 steps per epoch."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.atomic import file_sha256
from core.errors import Cancelled, HeartsegError
from core.store.dataset import open_dataset, set_review_states
from core.training.config import TrainConfig
from core.versions.registry import ModelRegistry, default_registry_dir
from core.versions.retrain import RetrainRequest, compare_text, plan_retraining, run_retraining

pytestmark = [pytest.mark.shared, pytest.mark.timeout(240)]

PIDS = ("p01", "p02", "p03")
N_SLICES = 12
TINY = TrainConfig(epochs=2, batch_size=4, image_size=64, steps_per_epoch=2, augment=False,
                   filters=(4, 8, 8, 8, 8), bottleneck=8, corrected_weight=2.0)


def make_kaggle_root(root: Path, kaggle_patient: Path) -> Path:
    """A Kaggle-layout dataset of 3 patients cut from the one real patient's slices."""
    for i, pid in enumerate(PIDS):
        first = 35 + 12 * i
        for sub in ("image", "mask"):
            (root / "data" / "train" / pid / sub).mkdir(parents=True)
            for k in range(N_SLICES):
                shutil.copy(kaggle_patient / sub / f"1-{first + k:03d}.png",
                            root / "data" / "train" / pid / sub / f"1-{k + 1:03d}.png")
    return root


def make_tiny_model(path: Path) -> Path:
    import keras

    from core.model.unet import build_unet, save_model

    keras.utils.set_random_seed(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(build_unet(64, filters=(4, 8, 8, 8, 8), bottleneck=8), path)


@pytest.fixture(scope="module")
def world(tmp_path_factory, kaggle_patient):
    tmp = tmp_path_factory.mktemp("retrain")
    root = make_kaggle_root(tmp / "ct-heart", kaggle_patient)
    base = make_tiny_model(tmp / "bundled" / "v0.keras")
    ds = open_dataset(root)
    # corrections and flags on every patient (the split decides which are used for training)
    for pid in PIDS:
        set_review_states(ds.patient_dir(pid), {"1-002": "corrected", "1-003": "corrected", "1-004": "flagged"})
    return {"root": root, "base": base, "registry": ModelRegistry(default_registry_dir(root), base_model=base)}


def test_plan_counts_corrected_and_flagged_and_needs_two_patients(world, tmp_path, kaggle_patient):
    reg = world["registry"]
    plan = plan_retraining(world["root"], reg)
    assert len(plan.train_pids) == 2 and len(plan.val_pids) == 1
    assert plan.corrected_slices == 4 and plan.corrected_val_slices == 2 and plan.flagged_excluded == 3
    assert plan.train_slices == 2 * (N_SLICES - 1) and plan.val_slices == N_SLICES - 1
    assert "4 of them corrected, weighted ×2" in plan.summary(2.0)
    assert reg.stored_split() is None  # a preview does not fix the split
    one = make_kaggle_root(tmp_path / "one", kaggle_patient)
    for pid in PIDS[1:]:
        shutil.rmtree(one / "data" / "train" / pid)
    with pytest.raises(HeartsegError, match="at least 2 patients"):
        plan_retraining(one, ModelRegistry(tmp_path / "r"))


def _predict(model_path: Path, volume) -> np.ndarray:
    from core.inference.predictor import Predictor

    return Predictor(str(model_path)).predict_volume(volume)


def test_retraining_registers_a_version_and_rollback_restores_predictions(world):
    reg, root = world["registry"], world["root"]
    items = []
    outcome = run_retraining(RetrainRequest(root, TINY, registry_dir=reg.folder, init_version=0,
                                            base_model=world["base"]), progress=items.append)
    stages = {p.stage for p in items}
    assert {"read", "train", "epoch", "evaluate", "register"} <= stages
    train_items = [p for p in items if p.stage == "train"]
    assert train_items[-1].done == train_items[-1].total == 4 and train_items[-1].eta_s is not None
    epochs = [p.metrics for p in items if p.stage == "epoch"]
    assert len(epochs) == 2 and "val_loss" in epochs[0] and "val_dice_coef" in epochs[0]

    assert outcome.version == 1 and outcome.old_version == 0
    # converted for OpenVINO before registering (into the user cache, the only IRs run for a user's model) and
    # copied next to the version, where it travels with the dataset
    from core.inference.engines.openvino import cache_dir, find_ir, sidecar_dir

    ir = find_ir(outcome.model_path)
    assert ir is not None and ir.folder == cache_dir(file_sha256(outcome.model_path))
    assert (sidecar_dir(outcome.model_path) / "model.xml").is_file()
    rec = json.loads((reg.folder / "v1.json").read_text())
    assert rec["parent"] == 0 and rec["recipe"]["epochs"] == 2 and rec["recipe"]["corrected_weight"] == 2.0
    assert rec["data"]["corrected_slices"] == 4 and rec["data"]["flagged_excluded"] == 3
    assert rec["data"]["val_patients"] == outcome.plan.val_pids == reg.stored_split()["val"]
    for key in ("validation", "parent_validation"):
        assert rec[key]["patients"] == outcome.plan.val_pids
        assert 0.0 <= rec[key]["pooled_dice"] <= 1.0 and "nonempty_pooled_dice" in rec[key]
        assert rec[key]["slices"] == N_SLICES - 1  # the flagged slice is not scored
    assert rec["training"]["epochs_run"] == 2 and rec["split"]["fixed"] is True
    assert "pooled Dice" in compare_text(outcome)
    assert not list(reg.folder.glob(".training-*"))  # the work folder is gone
    assert reg.active_version() == 0  # registering does not activate

    volume = open_dataset(root).load(outcome.plan.val_pids[0])
    before = _predict(reg.active_model_path(), volume)
    reg.activate(1)
    assert reg.active_model_path() == reg.folder / "v1.keras"
    v1_preds = _predict(reg.active_model_path(), volume)
    assert not np.array_equal(v1_preds, before)
    assert reg.rollback().version == 0
    after = _predict(reg.active_model_path(), volume)
    assert after.dtype == before.dtype and np.array_equal(after, before)  # bit for bit
    world["v1_sha"] = file_sha256(reg.model_path(1))


def test_cancel_stops_within_one_batch_and_registers_nothing(world):
    from core.types import CancelToken

    reg = world["registry"]
    before = reg.version_numbers()
    cancel = CancelToken()
    batches = []

    def progress(p):
        if p.stage == "train":
            batches.append(p.done)
            cancel.cancel()

    config = dataclasses.replace(TINY, epochs=3, steps_per_epoch=4)
    with pytest.raises(Cancelled):
        run_retraining(RetrainRequest(world["root"], config, registry_dir=reg.folder, init_version=None,
                                      base_model=world["base"]), progress=progress, cancel=cancel)
    assert batches == [1]  # stopped right after the batch that saw the cancel
    assert reg.version_numbers() == before
    assert not list(reg.folder.glob(".training-*")) and not list(reg.folder.glob(".*.tmp*"))
    assert sorted(p.name for p in reg.folder.glob("v*.keras")) == [f"v{v}.keras" for v in before if v]


def test_cli_train_with_registry_adds_a_version_on_the_fixed_split(world, tmp_path):
    from core.cli import main

    reg = world["registry"]
    if 1 not in reg.version_numbers():
        pytest.skip("needs the version made by the previous test")
    rc = main(["train", str(world["root"]), "--out", str(tmp_path / "run"), "--registry", str(reg.folder),
               "--from-version", "1", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
               "--image-size", "64", "--no-augment"])
    assert rc == 0
    v = reg.latest_version()
    rec = reg.get(v).record
    assert rec["parent"] == 1 and rec["data"]["val_patients"] == reg.stored_split()["val"]
    assert rec["validation"]["patients"] == reg.stored_split()["val"] and rec["data"]["train_slices"] > 0
    assert file_sha256(reg.model_path(1)) == world["v1_sha"]  # the parent is untouched
    assert main(["train", str(world["root"]), "--out", str(tmp_path / "r2"), "--from-version", "1"]) == 2
    # the same path as Model > Retrain...: the old-vs-new comparison and the split are kept with the run
    run = tmp_path / "run"
    comparison = json.loads((run / "validation.json").read_text())
    assert comparison["old_version"] == reg.active_version()  # old = the active version, as in the window
    assert comparison["new"]["patients"] == reg.stored_split()["val"] and comparison["old"] is not None
    assert json.loads((run / "split.json").read_text())["val"] == reg.stored_split()["val"]


def test_cli_train_runs_the_retraining_path_and_takes_its_defaults_from_the_config(world, tmp_path, monkeypatch):
    """One training path: `heartseg train` builds a RetrainRequest for core.versions.retrain.run_retraining, and every
    default it does not set comes from core.training.config.TrainConfig."""
    from core.cli import commands, main
    from core.training.config import TrainConfig

    seen = {}

    def fake_run(request, **kwargs):
        seen["request"] = request
        raise Cancelled()

    monkeypatch.setattr(commands, "run_retraining", fake_run)
    assert main(["train", str(world["root"]), "--out", str(tmp_path / "run")]) == 130
    request = seen["request"]
    assert request.config == TrainConfig()  # nothing given: every default is the config's
    assert request.out_dir == tmp_path / "run" and request.register is False and request.init_version is None
