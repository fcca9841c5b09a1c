"""Real training steps on real CT slices (tiny network, few steps)."""

import numpy as np
import pytest

from core.errors import Cancelled
from core.training.config import TrainConfig
from core.training.data import load_slice_pairs
from core.training.loop import train
from core.types import CancelToken
from tests.helpers import TINY, slice_set_from_arrays

pytestmark = pytest.mark.shared


def _pairs(patient, sl):
    from natsort import natsorted

    images = natsorted((patient / "image").glob("*.png"), key=lambda p: p.name)[sl]
    return [(p, patient / "mask" / p.name, 1.0, f"ts/{p.stem}") for p in images]


@pytest.fixture(scope="module")
def sets(kaggle_patient):
    return (load_slice_pairs(_pairs(kaggle_patient, slice(20, 90, 2)), 64),
            load_slice_pairs(_pairs(kaggle_patient, slice(21, 90, 6)), 64))


def test_short_training_run_lowers_the_loss(sets, tmp_path):
    train_set, val_set = sets
    cfg = TrainConfig(epochs=6, batch_size=8, image_size=64, filters=TINY["filters"], bottleneck=TINY["bottleneck"],
                      learning_rate=3e-3, augment=False)
    seen = []
    result = train(train_set, val_set, cfg, tmp_path, progress=seen.append)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert result.best_model_path is not None and result.best_model_path.is_file()
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch")
    assert (tmp_path / "history.png").stat().st_size > 1000
    stages = {p.stage for p in seen}
    assert {"train", "epoch"} <= stages
    batch_reports = [p for p in seen if p.stage == "train"]
    assert batch_reports[-1].done == batch_reports[-1].total and batch_reports[-1].eta_s is not None
    assert "val_loss" in result.history[-1] and "val_dice_coef" in result.history[-1]
    # built from scratch with the config's batch-norm momentum and the output started at the heart's pixel share
    # (about 10 % here, a log-odds near -2; six short epochs move it by well under one)
    from core.model.unet import load_model

    model = load_model(result.best_model_path)
    norms = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert all(layer.momentum == pytest.approx(cfg.bn_momentum) for layer in norms)
    heart_share = float(np.mean(train_set.masks))
    assert 0.01 < heart_share < 0.4
    assert float(model.get_layer("heart_probability").bias.numpy()[0]) < -0.5


def test_cancel_stops_within_one_batch_and_keeps_only_whole_files(sets, tmp_path):
    train_set, _ = sets
    cfg = TrainConfig(epochs=5, batch_size=4, image_size=64, filters=TINY["filters"], bottleneck=TINY["bottleneck"])
    cancel = CancelToken()
    batches = []

    def progress(p):
        if p.stage == "train":
            batches.append(p.done)
            if p.done == 3:
                cancel.cancel()

    result = train(train_set, None, cfg, tmp_path, progress=progress, cancel=cancel)
    assert result.cancelled and max(batches) == 3
    assert result.history == [] and result.best_model_path is None
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_cancel_before_start_raises(sets, tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        train(sets[0], None, TrainConfig(epochs=1, image_size=64), tmp_path, cancel=cancel)


def test_weighted_samples_and_augmented_pipeline_shapes(sets):
    from core.training.data import make_dataset

    train_set, _ = sets
    weighted = slice_set_from_arrays(train_set.images, train_set.masks, train_set.ids, 64,
                                     weights=np.where(np.arange(len(train_set)) % 2, 2.0, 1.0))
    cfg = TrainConfig(batch_size=4, image_size=64, geometric="strong")
    x, y, w = next(iter(make_dataset(weighted, cfg, training=True)))
    assert x.shape == (4, 64, 64, 3) and y.shape == (4, 64, 64, 1) and w.shape == (4,)
    assert float(np.max(x)) <= 1.0 and set(np.unique(y.numpy())) <= {0.0, 1.0}
    first = [b[0].numpy() for b in make_dataset(weighted, cfg, training=True).take(2)]
    again = [b[0].numpy() for b in make_dataset(weighted, cfg, training=True).take(2)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # same seed, same batches


def test_training_reads_masks_like_the_viewer(kaggle_patient, tmp_path):
    """0/1 masks count as heart (a plain > 127 threshold would train them as empty); size mismatches are named."""
    import cv2

    from core.errors import HeartsegError

    image = kaggle_patient / "image" / "1-060.png"
    mask = cv2.imread(str(kaggle_patient / "mask" / "1-060.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "m01.png"), (mask > 0).astype(np.uint8))
    s = load_slice_pairs([(image, tmp_path / "m01.png", 1.0, "a/1")], 64)
    ref = load_slice_pairs([(image, kaggle_patient / "mask" / "1-060.png", 1.0, "a/1")], 64)
    assert s.masks.sum() > 0
    np.testing.assert_array_equal(s.masks, ref.masks)
    cv2.imwrite(str(tmp_path / "small.png"), mask[:50])
    with pytest.raises(HeartsegError, match="small.png"):
        load_slice_pairs([(image, tmp_path / "small.png", 1.0, "a/1")], 64)
