
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
