"""The OpenVINO inference runtime: conversion, cache, integrity, precision choice, agreement with Keras."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.atomic import file_sha256
from core.inference import predictor as predictor_module
from core.inference.engines import openvino as ovr
from core.inference.precision import BF16_MAX_DICE_DELTA
from core.inference.predictor import Predictor
from core.resources import bundled_model_path
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("HEARTSEG_CACHE_DIR", str(folder))
    return folder


def test_bundled_ir_belongs_to_the_bundled_model_and_its_bfloat16_check_is_honest():
    """Fails when resources/model/heartseg_unet.keras changes without `python scripts/export_bundled_runtime.py`."""
    ir = ovr.find_ir(bundled_model_path())
    assert ir is not None and ir.folder == ovr.sidecar_dir(bundled_model_path())
    assert ir.record["keras_sha256"] == file_sha256(bundled_model_path())
    check = ir.record["bf16_check"]
    if check["checked"]:  # written on a CPU with bfloat16 units: the check ran and its rule held
        assert abs(check["dice_float32"] - check["dice_bfloat16"]) <= BF16_MAX_DICE_DELTA
        assert check["dice_float32"] > 0.80  # the model card's whole-sample Dice
    else:  # written where bfloat16 cannot run: never claimed as passed, so "auto" stays float32
        assert check["ok"] is False and "no bfloat16 units" in check["why"]


def test_openvino_float32_matches_keras_on_the_bundled_model():
    from core.model.unet import load_model

    model = load_model(bundled_model_path())
    size = int(model.input_shape[1])
    x = np.random.default_rng(0).random((3, size, size, 3), dtype=np.float32)
    ref = np.asarray(model(x, training=False))[..., 0]
    ov = Predictor(bundled_model_path(), batch_size=4, dtype="float32")
    assert ov.runtime == "openvino" and ov.dtype == "float32" and ov.image_size == model.input_shape[1]
    out = ov.predict_batch(x)
    assert out.shape == (3, size, size) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-4)
    tf = Predictor(model, batch_size=4)
    assert tf.runtime == "tensorflow"
    np.testing.assert_allclose(tf.predict_batch(x), out, atol=1e-4)


def test_predicting_with_the_bundled_model_never_imports_tensorflow():
    code = ("import sys\n"
            "from core.inference.predictor import Predictor\n"
            "from core.io import open_scan\n"
            "from core.resources import bundled_model_path, sample_scan_path\n"
            "p = Predictor(bundled_model_path(), dtype='auto')\n"
            "m = p.predict_masks(open_scan(sample_scan_path()))\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras')]\n"
            "print(p.description, int(m.sum() > 0), bad)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("OpenVINO") and r.stdout.strip().endswith("1 []"), r.stdout


def test_conversion_is_cached_keyed_by_content_and_checked(tmp_path, cache):
    path = tmp_path / "m.keras"
    tiny_model(path)
    first = Predictor(path, batch_size=2)
    assert first.runtime == "openvino"
    folder = first.ir.folder
    assert folder.parent == cache / "openvino" and folder.name == file_sha256(path)[:24]
    record = json.loads((folder / "record.json").read_text())
    assert record["image_size"] == 64 and record["bin_sha256"] == file_sha256(folder / "model.bin")
    assert "bf16_check" in record
    stamp = (folder / "record.json").stat().st_mtime_ns
    again = ovr.ensure_ir(path)  # found, not converted again
    assert again.folder == folder and (folder / "record.json").stat().st_mtime_ns == stamp

    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    before = first.predict_batch(x)
    tiny_model(path, seed=5)  # the same file name with other weights: never run from the stale IR
    changed = Predictor(path, batch_size=2)
    assert changed.ir.folder != folder
    from core.model.unet import load_model

    np.testing.assert_allclose(changed.predict_batch(x), np.asarray(load_model(path)(x))[..., 0], atol=1e-4)
    assert np.abs(changed.predict_batch(x) - before).max() > 1e-3


def test_a_damaged_cached_ir_is_detected_and_replaced(tmp_path, cache):
    path = tmp_path / "m.keras"
    tiny_model(path)
    ir = ovr.ensure_ir(path)
    data = bytearray((ir.folder / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    (ir.folder / "model.bin").write_bytes(bytes(data))
    assert ovr.find_ir(path) is None
    fixed = ovr.ensure_ir(path)
    assert fixed.record["bin_sha256"] == file_sha256(fixed.folder / "model.bin")
    assert ovr.find_ir(path) is not None
    # a folder left by a killed conversion is never picked up
    (cache / "openvino" / f".{ir.folder.name}.tmp-x").mkdir()
    assert ovr.find_ir(path).folder == fixed.folder


def test_auto_precision_needs_amx_and_a_passed_check(tmp_path, cache, monkeypatch):
    path = tmp_path / "m.keras"
    tiny_model(path)
    ir = ovr.ensure_ir(path)
    record = dict(ir.record, bf16_check={"checked": True, "ok": True})
    (ir.folder / "record.json").write_text(json.dumps(record))
    monkeypatch.setattr(predictor_module, "amx_bf16_supported", lambda: True)
    assert Predictor(path, dtype="auto").dtype == "bfloat16"
    assert Predictor(path, dtype="float32").dtype == "float32"
    monkeypatch.setattr(predictor_module, "amx_bf16_supported", lambda: False)
    assert Predictor(path, dtype="auto").dtype == "float32"
    monkeypatch.setattr(predictor_module, "amx_bf16_supported", lambda: True)
    (ir.folder / "record.json").write_text(json.dumps(dict(record, bf16_check={"checked": True, "ok": False})))
    assert Predictor(path, dtype="auto").dtype == "float32"
    assert Predictor(tiny_model(), dtype="auto").dtype == "float32"  # TensorFlow: auto is float32


def test_bad_model_files_give_one_line_errors_naming_the_file(tmp_path, cache):
    from core.errors import HeartsegError

    with pytest.raises(HeartsegError, match="model file not found"):
        Predictor(tmp_path / "none.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(HeartsegError, match=r"bad\.keras: corrupt"):
        Predictor(bad)
    assert not (cache / "openvino").exists() or not any((cache / "openvino").iterdir())
    with pytest.raises(ValueError, match="runtime"):
        Predictor(tiny_model(), runtime="openvino")


def test_one_engine_serves_overlapping_callers(tmp_path, cache):
    """A superseded prediction job may still finish its batch while the next one starts on the same engine."""
    import threading

    path = tmp_path / "m.keras"
    tiny_model(path)
    p = Predictor(path, batch_size=2, dtype="float32")
    x = np.random.default_rng(4).random((2, 64, 64, 3), dtype=np.float32)
    ref = p.predict_batch(x)
    errors, outs = [], []

    def call():
        try:
            for _ in range(20):
                outs.append(p.predict_batch(x))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(outs) == 60
    assert all(np.array_equal(o, ref) for o in outs)
