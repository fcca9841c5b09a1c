import numpy as np
import pytest

from core import preprocess
from core.training.augment import Augmenter, build_pipeline
from core.types import Volume


def test_kaggle_scale_is_pixel_over_max():
    s = np.array([[0, 512], [1024, 2048]], np.float32)
    np.testing.assert_array_equal(preprocess.kaggle_scale_slice(s), [[0, 64], [128, 255]])
    assert preprocess.kaggle_scale_slice(np.zeros((2, 2))).max() == 0


def test_hu_volume_maps_like_the_kaggle_dicoms():
    hu = np.array([[[-1024, 0], [1000, 3071]]], np.int16)
    vol = Volume(hu, (1, 1, 1), None, ["a"], "hu", "nifti", "x")
    out = preprocess.to_kaggle_scale(vol)
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[0, 1, 1] == 255
    assert out[0, 0, 1] == round(1024 / 4095 * 255)


def test_model_input_and_output_mapping():
    img = np.random.default_rng(0).integers(0, 256, (122, 102), dtype=np.uint8)
    x = preprocess.image_to_model_input(img, 256)
    assert x.shape == (256, 256, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    t = preprocess.mask_to_model_target(np.where(img > 127, 255, 0).astype(np.uint8), 64)
    assert t.shape == (64, 64, 1) and set(np.unique(t)) <= {0.0, 1.0}
    p = preprocess.probability_to_slice(np.full((256, 256, 1), 0.7, np.float32), (122, 102))
    assert p.shape == (122, 102)
    assert preprocess.threshold(p).min() == 1 and preprocess.threshold(np.float32([0.49]))[0] == 0


@pytest.mark.parametrize("level", ["none", "mild", "strong"])
def test_augmentation_is_deterministic_per_seed_and_keeps_masks_binary(level):
    rng = np.random.default_rng(0)
    img = np.repeat(rng.integers(0, 256, (64, 64, 1), dtype=np.uint8), 3, axis=2)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 10:50] = 1
    aug = Augmenter(level)
    a = aug(img, mask, 42)
    b = Augmenter(level)(img, mask, 42)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert set(np.unique(a[1])) <= {0, 1}
    assert any(not np.array_equal(aug(img, mask, s)[0], a[0]) for s in range(43, 48))


def test_geometric_transforms_move_image_and_mask_together():
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:40, 20:40] = 200
    mask = (img[..., 0] > 0).astype(np.uint8)
    aug = Augmenter("strong")
    moved = 0
    for seed in range(20):
        x, m = aug(img, mask, seed)
        bright = x.max(axis=2) > 0  # the photometric part never moves pixels
        if m.sum() and not np.array_equal(m, mask):
            moved += 1
            inside = bright[m > 0].mean()
            assert inside > 0.9  # the mask still covers the moved square
    assert moved >= 5


def test_seed_photometric_recipe():
    names = [t.__class__.__name__ for t in build_pipeline("none").transforms]
    assert names == ["RandomBrightnessContrast", "HueSaturationValue", "RGBShift", "RandomGamma", "CLAHE",
                     "ChannelShuffle"]
    assert all(t.p == 0.7 for t in build_pipeline("none").transforms)
