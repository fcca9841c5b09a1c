"""The 2D U-Net of the seed notebook, and saving / loading models safely.

``build_unet()`` with its defaults reproduces the seed network exactly: five encoder levels of Conv-BN-ReLU pairs
with 16-16-32-64-128 filters and 2x2 max pooling, a 256-filter bottleneck, dropout 0.3 after the two deepest
encoder levels and the bottleneck, 2x2 stride-2 transposed convolutions in the decoder, a 1x1 sigmoid output
(1,959,873 parameters at 256x256x3).

Input: ``(batch, size, size, 3)`` float32 in 0..1 (see :mod:`core.preprocess`). Output: ``(batch, size, size, 1)``
heart probabilities (after the sigmoid, not logits).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Sequence

from core.atomic import atomic_path
from core.errors import HeartsegError

SEED_FILTERS = (16, 16, 32, 64, 128)
SEED_BOTTLENECK = 256
SEED_DROPOUT = 0.3
#: Parameter count of the seed network at 256 x 256 x 3 (asserted by the tests).
SEED_PARAMS = 1_959_873


def _keras():
    import sys

    if "keras" not in sys.modules:
        _import_keras_quietly()
    import keras  # lazy: importing TensorFlow costs seconds

    return keras


def _is_native_noise(line: str) -> bool:
    """TensorFlow / absl start-up chatter written straight to file descriptor 2 (ignores TF_CPP_MIN_LOG_LEVEL)."""
    import re

    return (line.startswith("WARNING: All log messages before absl::InitializeLog()")
            or re.match(r"^[IWE]\d{4} [\d:. ]+\s*\d+ \S+:\d+\] ", line) is not None
            or "TF_ENABLE_ONEDNN_OPTS" in line or "rebuild TensorFlow with the appropriate compiler" in line
            or "cuda" in line.lower() and "unable to register" in line.lower())


def _import_keras_quietly() -> None:
    """Import Keras with the native libraries' start-up messages kept off stderr (a CLI error must stay one
    line); anything else they print is passed on afterwards."""
    import os
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        import keras  # noqa: F401  (no real fd 2: nothing to filter)
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if line.strip() and not _is_native_noise(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def build_unet(image_size: int = 256, channels: int = 3, filters: Sequence[int] = SEED_FILTERS,
               bottleneck: int = SEED_BOTTLENECK, dropout: float = SEED_DROPOUT,
               dropout_levels: int = 2, name: str = "heartseg_unet", output_bias: float = 0.0,
               bn_momentum: float = 0.99):
    """Build the U-Net. ``image_size`` must be divisible by ``2 ** len(filters)``.

    ``dropout`` is applied after the ``dropout_levels`` deepest encoder levels and after the bottleneck.
    ``output_bias``: the initial bias of the output logit (0: every pixel starts at p = 0.5, the seed's
    initialisation; :func:`prior_bias` starts every pixel at the heart's share of the training pixels instead).
    ``bn_momentum``: the batch-normalisation layers' moving-average momentum (Keras' default 0.99 averages over
    ~100 steps, i.e. several epochs of a few hundred slices, so the inference-mode statistics lag the weights).
    """
    keras = _keras()
    layers = keras.layers
    if image_size % (2 ** len(filters)) != 0:
        raise HeartsegError(f"image size {image_size} must be divisible by {2 ** len(filters)} "
                            f"for a U-Net with {len(filters)} levels")

    def conv_pair(x, n):
        for _ in range(2):
            x = layers.Conv2D(n, 3, padding="same")(x)
            x = layers.BatchNormalization(momentum=bn_momentum)(x)
            x = layers.Activation("relu")(x)
        return x

    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = inputs
    skips = []
    for level, n in enumerate(filters):
        x = conv_pair(x, n)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
        if dropout and level >= len(filters) - dropout_levels:
            x = layers.Dropout(dropout)(x)
    x = conv_pair(x, bottleneck)
    if dropout:
        x = layers.Dropout(dropout)(x)
    for n, skip in zip(reversed(filters), reversed(skips)):
        x = layers.Conv2DTranspose(n, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skip])
        x = conv_pair(x, n)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="heart_probability",
                            bias_initializer=keras.initializers.Constant(float(output_bias)))(x)
    return keras.Model(inputs, outputs, name=name)


def prior_bias(foreground_fraction: float) -> float:
    """The output-logit bias at which every pixel starts at probability ``foreground_fraction`` (clipped to
    [0.001, 0.5]): ``log(p / (1 - p))``. With the seed's zero bias every pixel starts at p = 0.5 and Adam, whose
    steps are about one learning rate each, needs thousands of steps to push the ~95 % background pixels down;
    starting at the prior removes that phase (the RetinaNet initialisation)."""
    p = min(max(float(foreground_fraction), 1e-3), 0.5)
    return float(math.log(p / (1.0 - p)))


def custom_objects() -> dict:
    """The project's registered losses and metrics, for loading and compiling."""
    from core.model import losses, train_metrics  # lazy: these import Keras (TensorFlow)

    return {**losses.custom_objects(), **train_metrics.custom_objects()}


def save_model(model, path: str | Path) -> Path:
    """Save ``model`` (weights and architecture, no optimizer state) as a ``.keras`` file atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise HeartsegError("model files must end in .keras", path)
    if getattr(model, "optimizer", None) is not None:
        # ship weights only: an uncompiled clone carries no optimizer state (a third of the size)
        keras = _keras()
        clone = keras.Model.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        model = clone
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def _check_keras_file(path: Path) -> None:
    if not path.is_file():
        raise HeartsegError("model file not found", path)
    if path.suffix != ".keras":
        raise HeartsegError("not a .keras model file (expected a Keras 3 .keras archive)", path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise HeartsegError("not a Keras model archive (no config.json inside)", path)
            bad = zf.testzip()
            if bad is not None:
                raise HeartsegError(f"corrupt model archive (member {bad} fails its checksum)", path)
            config = json.loads(zf.read("config.json"))
    except zipfile.BadZipFile as exc:
        raise HeartsegError("corrupt or truncated model file (not a valid .keras zip archive)", path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HeartsegError("corrupt model file (config.json is not valid JSON)", path) from exc
    except RecursionError as exc:
        raise HeartsegError("refused: the model's config.json is nested too deeply", path) from exc
    check_safe_config(config, path)


#: Layer / object classes that carry code: Keras safe mode refuses them, and so does every heartseg runtime
#: (checked on the archive's ``config.json`` before anything runs, OpenVINO included).
UNSAFE_CLASSES = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda",
                            "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
#: Deepest nesting of ``config.json`` accepted (the U-Net's is 12 levels).
MAX_CONFIG_DEPTH = 100


def check_safe_config(config, path: str | Path | None = None) -> None:
    """Refuse (:class:`HeartsegError` naming ``path``) a model config holding code -- a Lambda layer, a
    serialised function, a wrapped foreign module -- or nested deeper than :data:`MAX_CONFIG_DEPTH`. This is the
    same rule as Keras safe mode, applied without importing Keras, so that no runtime (TensorFlow or an OpenVINO
    IR converted from it) ever runs a model that safe mode would refuse."""
    stack = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise HeartsegError(f"refused: the model's config.json is nested deeper than {MAX_CONFIG_DEPTH} levels",
                                path)
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str) and name in UNSAFE_CLASSES:
                raise HeartsegError(f"refused: the model contains code (a {name} layer or similar); only plain "
                                    "layers load in safe mode", path)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def check_model_file(path: str | Path) -> None:
    """The checks :func:`load_model` makes before Keras reads ``path`` (a real ``.keras`` archive, intact, its
    config free of code), without importing TensorFlow; :class:`HeartsegError` naming the file otherwise."""
    _check_keras_file(Path(path))


def load_model(path: str | Path, *, compile: bool = False):
    """Load a ``.keras`` model with Keras safe mode on (no Lambda layers or other embedded code).

    Checks that it maps ``(batch, s, s, 3)`` images to ``(batch, s, s, 1)`` probabilities. Raises
    :class:`HeartsegError` naming the file for a missing, corrupt, unsafe or ill-fitting model.
    """
    path = Path(path)
    _check_keras_file(path)
    keras = _keras()
    try:
        model = keras.saving.load_model(path, custom_objects=custom_objects(), compile=compile, safe_mode=True)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "unsafe" in text.lower():
            raise HeartsegError("refused: the model contains code (a Lambda layer or similar); "
                                "only plain layers load in safe mode", path) from exc
        raise HeartsegError(f"cannot load model: {text.splitlines()[0] if text else type(exc).__name__}",
                            path) from exc
    except Exception as exc:  # keras raises many types for damaged archives
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HeartsegError(f"cannot load model: {text}", path) from exc
    check_model_io(model, path)
    return model


def check_model_io(model, path: str | Path | None = None) -> int:
    """Return the model's square input size; raise :class:`HeartsegError` if it does not fit heartseg."""
    shape_in = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    shape_out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    ok = (shape_in is not None and shape_out is not None and len(shape_in) == 4 and len(shape_out) == 4
          and shape_in[1] == shape_in[2] and shape_in[1] is not None and shape_in[3] == 3
          and shape_out[1:] == (shape_in[1], shape_in[2], 1))
    if not ok:
        raise HeartsegError(f"model does not fit heartseg: expects input (N, S, S, 3) -> output (N, S, S, 1), "
                            f"this one maps {shape_in} -> {shape_out}", path)
    return int(shape_in[1])
