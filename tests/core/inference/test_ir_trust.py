"""Swapped or planted files are not trusted (issue 12 item 4): a model Keras safe mode refuses is never run by any
runtime, and an OpenVINO IR is run only when this installation produced it (the package's own, or the per-user
cache keyed by the ``.keras`` SHA-256) -- an IR beside a user's model is re-verified by converting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.atomic import file_sha256
from core.errors import HeartsegError
from core.inference import predictor as predictor_module
from core.inference.engines import openvino as ovr
from core.inference.predictor import Predictor
from core.model.unet import check_model_file, check_safe_config
from core.resources import bundled_model_path
from tests.corpus import SAMPLE_PATIENT
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("HEARTSEG_CACHE_DIR", str(folder))
    return folder


def lambda_model(path: Path) -> Path:
    """A model that maps (N, 64, 64, 3) -> (N, 64, 64, 1) through a Lambda layer (code in the archive)."""
    import keras

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    outputs = keras.layers.Lambda(lambda t: 1.0 - 0.0 * t)(x)  # "100 % heart"
    keras.Model(inputs, outputs).save(path)
    return path


def plant_ir(model_path: Path, folder: Path, seed: int = 3) -> None:
    """What an attacker does: convert some other model and write a record naming ``model_path``'s SHA-256 (every
    hash in it recomputed, so the record is self-consistent)."""
    ovr.export_ir(tiny_model(seed=seed), folder, keras_sha=file_sha256(model_path))
    assert ovr._read_ir(folder, file_sha256(model_path)) is not None  # valid by its own record


def test_a_lambda_model_with_a_planted_ir_beside_it_is_never_run(tmp_path, cache):
    path = lambda_model(tmp_path / "m.keras")
    plant_ir(path, ovr.sidecar_dir(path))
    plant_ir(path, ovr.cache_dir(file_sha256(path)))  # even planted in the user cache
    for runtime in ("auto", "openvino", "tensorflow"):
        with pytest.raises(HeartsegError) as info:
            Predictor(path, runtime=runtime)
        msg = str(info.value)
        assert "refused" in msg and "m.keras" in msg and "\n" not in msg, msg
    with pytest.raises(HeartsegError, match="refused"):
        ovr.ensure_ir(path)
    with pytest.raises(HeartsegError, match="refused"):
        check_model_file(path)


def test_the_cli_refuses_a_lambda_model_with_a_planted_ir(tmp_path, cache):
    path = lambda_model(tmp_path / "m.keras")
    plant_ir(path, ovr.sidecar_dir(path))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "predict", str(SAMPLE_PATIENT),
                        "--model", str(path), "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "HEARTSEG_CACHE_DIR": str(cache)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and "m.keras" in lines[0], r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_swapped_ir_beside_a_users_model_is_not_used(tmp_path, cache):
    path = tmp_path / "m.keras"
    tiny_model(path)
    plant_ir(path, ovr.sidecar_dir(path), seed=9)  # other weights, a recomputed record
    assert ovr.find_ir(path) is None  # a sidecar is not this installation's
    p = Predictor(path, batch_size=2)
    assert p.ir.folder == ovr.cache_dir(file_sha256(path))  # re-verified by converting
    from core.model.unet import load_model

    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(p.predict_batch(x), np.asarray(load_model(path)(x))[..., 0], atol=1e-4)


def test_only_the_packages_own_sidecar_is_trusted(tmp_path):
    assert ovr.trusted_sidecar(bundled_model_path())
    assert ovr.find_ir(bundled_model_path()).folder == ovr.sidecar_dir(bundled_model_path())
    link = tmp_path / "bundled.keras"
    link.symlink_to(bundled_model_path())
    assert not ovr.trusted_sidecar(link) and not ovr.trusted_sidecar(tmp_path / "m.keras")


def test_writing_an_ir_beside_a_model_returns_the_cached_one(tmp_path, cache):
    path = tmp_path / "v1.keras"
    tiny_model(path)
    ir = ovr.ensure_ir(path, sidecar=True)
    assert ir.folder == ovr.cache_dir(file_sha256(path))
    assert ovr._read_ir(ovr.sidecar_dir(path), file_sha256(path)) is not None  # the copy travels with the model
    assert ovr.ensure_ir(path).folder == ir.folder


def test_a_packaged_ir_this_openvino_cannot_read_is_replaced_by_a_local_conversion(tmp_path, cache, monkeypatch):
    """The case test_openvino_runtime covered for any sidecar, now for the package's own (resources/)."""
    monkeypatch.setattr(ovr, "resources_dir", lambda: tmp_path)
    path = tmp_path / "v1.keras"
    tiny_model(path)
    shipped = ovr.export_ir(tiny_model(), ovr.sidecar_dir(path), keras_sha=file_sha256(path))
    real = ovr.OpenVinoEngine

    def picky(xml, **kwargs):
        if Path(xml).parent == shipped.folder:
            raise HeartsegError("cannot read the OpenVINO model: unknown opset", xml)
        return real(xml, **kwargs)

    monkeypatch.setattr(predictor_module, "OpenVinoEngine", picky)
    p = Predictor(path, batch_size=2, dtype="float32")
    assert p.ir.folder == shipped.folder
    p.predict_batch(np.zeros((2, 64, 64, 3), np.float32))
    assert p.ir.folder.parent == cache / "openvino"


def test_safe_config_check_without_keras():
    check_safe_config({"class_name": "Functional", "config": {"layers": [{"class_name": "Conv2D"}]}})
    with pytest.raises(HeartsegError, match="Lambda"):
        check_safe_config({"config": {"layers": [{"class_name": "Lambda", "config": {}}]}}, "x.keras")
    deep: dict = {}
    node = deep
    for _ in range(500):
        node["config"] = {}
        node = node["config"]
    with pytest.raises(HeartsegError, match="nested deeper"):
        check_safe_config(deep, "x.keras")


def test_a_deeply_nested_config_json_is_one_line(tmp_path):
    import zipfile

    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "[" * 100000 + "]" * 100000)
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(HeartsegError) as info:
        check_model_file(path)
    assert "\n" not in str(info.value) and "deep.keras" in str(info.value)
