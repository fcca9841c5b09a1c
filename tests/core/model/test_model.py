
import numpy as np
import pytest

from core.errors import HeartsegError
from core.model.unet import SEED_PARAMS, build_unet, load_model
from tests.helpers import tiny_model


def test_seed_unet_has_exact_parameter_count():
    model = build_unet()
    assert model.count_params() == SEED_PARAMS == 1_959_873
    assert model.input_shape == (None, 256, 256, 3)
    assert model.output_shape == (None, 256, 256, 1)
    names = [l.__class__.__name__ for l in model.layers]
    assert names.count("Conv2DTranspose") == 5 and names.count("Dropout") == 3
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_size_and_width_are_parameters():
    model = build_unet(image_size=128, filters=(8, 8, 16, 32, 64), bottleneck=128)
    assert model.input_shape == (None, 128, 128, 3)
    assert model.count_params() < SEED_PARAMS
    with pytest.raises(HeartsegError, match="divisible"):
        build_unet(image_size=100)


def test_save_load_roundtrip_predicts_identically(tmp_path):
    model = tiny_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    again = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_lambda_layer_is_refused_in_safe_mode(tmp_path):
    import keras

    inp = keras.Input((64, 64, 3))
    out = keras.layers.Lambda(lambda t: t[..., :1] * 0.5)(inp)
    model = keras.Model(inp, out)
    model.save(tmp_path / "evil.keras")
    with pytest.raises(HeartsegError, match="evil.keras.*(code|Lambda)"):
        load_model(tmp_path / "evil.keras")


def test_corrupt_and_truncated_models_are_refused(tmp_path):
    good = tmp_path / "good.keras"
    tiny_model(good)
    data = good.read_bytes()
    (tmp_path / "trunc.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.keras").write_text("not a model")
    (tmp_path / "empty.keras").write_bytes(b"")
    for name in ("trunc.keras", "text.keras", "empty.keras"):
        with pytest.raises(HeartsegError) as err:
            load_model(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HeartsegError, match="not found"):
        load_model(tmp_path / "missing.keras")


def test_model_with_wrong_io_shape_is_refused(tmp_path):
    import keras

    inp = keras.Input((64, 64, 1))
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    model.save(tmp_path / "grey.keras")
    with pytest.raises(HeartsegError, match="does not fit"):
        load_model(tmp_path / "grey.keras")


def test_prior_bias_starts_every_pixel_at_the_heart_share():
    from core.model.unet import prior_bias

    assert prior_bias(0.5) == pytest.approx(0.0)
    assert prior_bias(0.05) == pytest.approx(np.log(0.05 / 0.95))
    assert prior_bias(0.0) == pytest.approx(np.log(1e-3 / (1 - 1e-3)))  # clipped: an all-empty set stays finite
    model = build_unet(32, filters=(4, 4), bottleneck=8, dropout=0.0, output_bias=prior_bias(0.05))
    probs = model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
    # all-zero input: every feature after ReLU(BN(conv(0))) is ~constant; with zero-initialised biases the
    # output logit at initialisation is the bias plus the (small) random read-out of those constants
    assert float(np.median(probs)) < 0.2
    seed = build_unet(32, filters=(4, 4), bottleneck=8, dropout=0.0)
    assert float(np.median(seed.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0))) > 0.3


def test_batch_norm_momentum_is_a_parameter_and_keeps_the_seed_weights():
    model = build_unet(32, filters=(4, 4), bottleneck=8, bn_momentum=0.9)
    norms = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert norms and all(layer.momentum == pytest.approx(0.9) for layer in norms)
    assert build_unet(128, bn_momentum=0.9).count_params() == SEED_PARAMS  # same weights, loads into either
