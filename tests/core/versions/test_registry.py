"""The model registry: versions, records, activation / rollback, the fixed split, atomic and race-free numbering.

No TensorFlow: models are stand-in files (the registry copies bytes and never loads them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.errors import HeartsegError
from core.training.config import TrainConfig
from core.versions.registry import ModelRegistry, default_registry_dir, model_input_size


@dataclass
class FakeResult:
    best_model_path: Path
    out_dir: Path = Path(".")
    best_epoch: int = 1
    best_val_loss: float = 0.5
    history: list = field(default_factory=lambda: [{"epoch": 1, "loss": 0.6, "val_loss": 0.5}])
    cancelled: bool = False
    seconds: float = 1.0
    images_per_second: float = 10.0


@pytest.fixture
def base(tmp_path) -> Path:
    p = tmp_path / "bundled" / "heartseg_unet.keras"
    p.parent.mkdir()
    p.write_bytes(b"bundled model bytes")
    return p


def _model(tmp_path, name, content) -> FakeResult:
    p = tmp_path / "runs" / name / "best_model.keras"
    p.parent.mkdir(parents=True)
    p.write_bytes(content)
    return FakeResult(p, p.parent)


def test_version_zero_is_the_bundled_model_referenced_not_copied(tmp_path, base):
    reg = ModelRegistry(tmp_path / "ds" / ".heartseg" / "models", base_model=base)
    assert not reg.folder.exists()  # reading creates nothing
    assert reg.version_numbers() == [0] and reg.active_version() == 0
    assert reg.model_path(0) == base and reg.active_model_path() == base
    v0 = reg.get(0)
    assert v0.parent is None and v0.record["kind"] == "bundled" and v0.record["model_file"] == str(base)
    assert default_registry_dir(tmp_path / "ds") == reg.folder
    with pytest.raises(HeartsegError, match="no model version 3"):
        reg.get(3)
    missing = ModelRegistry(tmp_path / "r2", base_model=tmp_path / "nope.keras")
    with pytest.raises(HeartsegError, match="bundled model is missing"):
        missing.model_path(0)


def test_add_version_record_activate_and_rollback(tmp_path, base):
    reg = ModelRegistry(tmp_path / "models", base_model=base)
    config = TrainConfig(epochs=2, image_size=64)
    v1 = reg.add_version(_model(tmp_path, "a", b"model one"), config, parent=0, data_root=tmp_path,
                         train_pids=["p1", "p2"], val_pids=["p3"], data={"corrected_slices": 4},
                         validation={"pooled_dice": 0.8, "nonempty_pooled_dice": 0.7})
    v2 = reg.add_version(_model(tmp_path, "b", b"model two"), config, parent=v1, data_root=tmp_path,
                         train_pids=["p1", "p2"], val_pids=["p3"])
    assert (v1, v2) == (1, 2)
    assert reg.version_numbers() == [0, 1, 2]
    rec = json.loads((reg.folder / "v1.json").read_text())
    assert rec["version"] == 1 and rec["parent"] == 0 and rec["recipe"]["image_size"] == 64
    assert rec["data"]["train_patients"] == ["p1", "p2"] and rec["data"]["val_patients"] == ["p3"]
    assert rec["data"]["corrected_slices"] == 4 and rec["validation"]["pooled_dice"] == 0.8
    assert rec["split"] == {"train": ["p1", "p2"], "val": ["p3"]} and rec["created"].startswith("20")
    assert rec["training"]["best_epoch"] == 1 and len(rec["model_sha256"]) == 64
    assert (reg.folder / "v0.json").is_file()  # the bundled model's record, written lazily (a parent)
    assert reg.model_path(1).read_bytes() == b"model one" and base.read_bytes() == b"bundled model bytes"
    assert not [p for p in reg.folder.iterdir() if p.name.startswith(".")]  # no temporary files left

    reg.activate(2)
    assert reg.active_version() == 2 and reg.active_model_path() == reg.folder / "v2.keras"
    reg.activate(1)
    assert reg.rollback().version == 2
    assert reg.rollback().version == 0  # the history goes back to the bundled model
    assert reg.active_model_path() == base
    with pytest.raises(HeartsegError, match="nothing to roll back"):
        reg.rollback()
    assert json.loads((reg.folder / "active.json").read_text())["version"] == 0


def test_add_version_refuses_cancelled_or_missing_and_leaves_nothing(tmp_path, base):
    reg = ModelRegistry(tmp_path / "models", base_model=base)
    cancelled = _model(tmp_path, "c", b"x")
    cancelled.cancelled = True
    with pytest.raises(HeartsegError, match="cancelled"):
        reg.add_version(cancelled, TrainConfig())
    with pytest.raises(HeartsegError, match="no model"):
        reg.add_version(FakeResult(tmp_path / "missing.keras"), TrainConfig())
    with pytest.raises(HeartsegError, match="no model version 7"):
        reg.add_version(_model(tmp_path, "d", b"x"), TrainConfig(), parent=7)
    assert reg.version_numbers() == [0]
    assert not reg.folder.exists() or not list(reg.folder.glob("v*.keras"))


def test_numbering_skips_orphan_model_files(tmp_path, base):
    """A model file without its record (a crash between the two writes) is not a version, and its number is
    never reused."""
    reg = ModelRegistry(tmp_path / "models", base_model=base)
    reg.folder.mkdir()
    (reg.folder / "v1.keras").write_bytes(b"orphan")
    assert reg.version_numbers() == [0]
    assert reg.add_version(_model(tmp_path, "a", b"m"), TrainConfig()) == 2
    assert (reg.folder / "v1.keras").read_bytes() == b"orphan"


def test_fixed_split_is_stored_once_and_never_changes(tmp_path, base):
    reg = ModelRegistry(tmp_path / "models", base_model=base)
    pids = [f"p{i}" for i in range(10)]
    assert reg.fixed_split(pids, store=False) and reg.stored_split() is None
    train, val = reg.fixed_split(pids, 0.2, seed=0)
    assert len(val) == 2 and reg.stored_split()["val"] == val
    # a new patient later goes to training; another seed or fraction does not move the validation patients
    train2, val2 = reg.fixed_split(pids + ["p99"], 0.5, seed=7)
    assert val2 == val and "p99" in train2
    # an explicit choice overrides for one call but is not stored
    _, val3 = reg.fixed_split(pids, val_patients=["p0"])
    assert val3 == ["p0"] and reg.stored_split()["val"] == val
    with pytest.raises(HeartsegError, match="none of the registry's validation patients"):
        reg.fixed_split(["q1", "q2"])


def test_model_input_size_reads_the_archive_config(tmp_path):
    import zipfile

    p = tmp_path / "m.keras"
    config = {"config": {"layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 64, 64, 3]}}]}}
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    assert model_input_size(p) == 64
    assert model_input_size(tmp_path / "missing.keras") is None
