import numpy as np
import pytest

from core.errors import Cancelled
from core.inference.predictor import Predictor
from core.inference.runner import slice_order
from core.postprocess import PostprocessOptions, probabilities_to_masks
from core.types import CancelToken, Volume
from tests.helpers import tiny_model


def _volume(n=11, rows=50, cols=40):
    rng = np.random.default_rng(0)
    vox = rng.integers(-1000, 1500, (n, rows, cols)).astype(np.int16)
    return Volume(vox, (1.5, 1.0, 1.0), None, [f"s{i}" for i in range(n)], "hu", "nifti", "synthetic")


def test_slice_order_starts_at_current_slice_and_covers_all():
    assert slice_order(6, 2) == [2, 3, 1, 4, 0, 5]
    assert sorted(slice_order(9, 8)) == list(range(9))
    assert slice_order(3, None) == [0, 1, 2]


def test_predictor_matches_model_predict_and_calls_back_per_batch():
    from core.preprocess import probability_to_slice, volume_to_model_input

    model = tiny_model()
    vol = _volume()
    pred = Predictor(model, batch_size=4)
    calls = []
    probs = pred.predict_volume(vol, first=5, on_batch=lambda idx, p: calls.append((idx, p.shape)))
    assert probs.shape == (11, 50, 40) and probs.dtype == np.float32
    assert calls[0][0][0] == 5 and sum(len(c[0]) for c in calls) == 11 and calls[-1][1][0] == 3
    ref = model.predict(volume_to_model_input(vol, None, 64), verbose=0)
    expected = np.stack([probability_to_slice(p, (50, 40)) for p in ref])
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_predict_is_cancellable_per_batch():
    pred = Predictor(tiny_model(), batch_size=2)
    cancel = CancelToken()
    seen = []

    def on_batch(idx, p):
        seen.append(idx)
        cancel.cancel()

    with pytest.raises(Cancelled):
        pred.predict_volume(_volume(), cancel=cancel, on_batch=on_batch)
    assert len(seen) == 1


def test_postprocessing_options():
    probs = np.zeros((4, 20, 20), np.float32)
    probs[1:3, 5:15, 5:15] = 0.9  # the heart, two slices
    probs[0, 0:2, 0:2] = 0.9  # a speck on another slice
    probs[3, 18:20, 18:20] = 0.9
    plain = probabilities_to_masks(probs)
    assert plain.sum() == 200 + 8
    largest = probabilities_to_masks(probs, postprocess=PostprocessOptions(keep_largest=True))
    assert largest.sum() == 200 and largest[0].sum() == 0
    small = probabilities_to_masks(probs, postprocess=PostprocessOptions(min_region_px=5))
    assert small.sum() == 200
    frac = probabilities_to_masks(probs, postprocess=PostprocessOptions(min_slice_fraction=0.05))
    assert frac[0].sum() == 0 and frac[1].sum() == 100


def test_predict_masks_equals_thresholded_probabilities():
    from core.postprocess import DEFAULT_POSTPROCESS

    pred = Predictor(tiny_model(), batch_size=4)
    vol = _volume()
    seen = []
    masks = pred.predict_masks(vol, first=3, postprocess=DEFAULT_POSTPROCESS,
                               on_batch=lambda idx, m: seen.append((idx, m.dtype)))
    from core.postprocess import postprocess_for_volume

    expected = probabilities_to_masks(pred.predict_volume(vol), postprocess=postprocess_for_volume(vol, DEFAULT_POSTPROCESS))
    np.testing.assert_array_equal(masks, expected)
    assert masks.dtype == np.uint8 and seen[0][0][0] == 3 and seen[0][1] == np.uint8
