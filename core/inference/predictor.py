"""A model ready for inference: :class:`Predictor` picks and builds the engine for a model and runs it with
:class:`core.inference.runner.EngineRunner` (batched, compiled once, current slice first, cancellable).

Engines (:mod:`core.inference.engines`): :class:`~core.inference.engines.openvino.OpenVinoEngine` for a model file
(converted once to OpenVINO IR and cached; float32, or bfloat16 on CPUs with AMX where the recorded check passed,
:mod:`core.inference.precision`) or :class:`~core.inference.engines.tensorflow.TensorFlowEngine` for an in-memory
Keras model. Probabilities become masks in :mod:`core.postprocess`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from core.errors import HeartsegError
from core.inference.engines.openvino import OpenVinoEngine, ensure_ir, openvino_available, sidecar_dir
from core.inference.engines.tensorflow import TensorFlowEngine
from core.inference.hardware import amx_bf16_supported, bfloat16_units
from core.inference.precision import precision_check
from core.inference.runner import EngineRunner
from core.model.unet import load_model
from core.types import ProgressFn

#: Compute precisions :class:`Predictor` accepts. ``"bfloat16"`` computes in bfloat16 with float32 input and output;
#: it is only worth it on CPUs with bfloat16 units (AMX, AVX512_BF16). ``"auto"`` picks bfloat16 only with the
#: OpenVINO runtime, on a CPU with AMX, for a model whose recorded bfloat16 check passed
#: (:mod:`core.inference.precision`); otherwise float32.
DTYPES = ("auto", "float32", "bfloat16")
#: Inference runtimes: ``"openvino"`` (a model file converted once to OpenVINO IR; no TensorFlow needed) and
#: ``"tensorflow"`` (the Keras model in one ``tf.function``). ``"auto"``: OpenVINO for a model file when the
#: package imports, TensorFlow for an in-memory Keras model.
RUNTIMES = ("auto", "openvino", "tensorflow")


def _resolve_runtime(model, runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"Predictor runtime must be one of {RUNTIMES}, got {runtime!r}")
    is_file = isinstance(model, (str, Path))
    if runtime == "auto":
        return "openvino" if is_file and openvino_available() else "tensorflow"
    if runtime == "openvino" and not is_file:
        raise ValueError("the OpenVINO runtime needs the model file (it is converted once and cached)")
    if runtime == "openvino" and not openvino_available():
        raise HeartsegError("the OpenVINO runtime is not installed (pip install openvino), or use --runtime "
                            "tensorflow")
    return runtime


class Predictor(EngineRunner):
    """A model ready for inference. Thread-compatible: one call at a time per predictor.

    ``model``: a ``.keras`` file or an in-memory Keras model. ``runtime``: see :data:`RUNTIMES` (the window and
    ``heartseg predict`` use OpenVINO; evaluation of an in-memory model uses TensorFlow). ``dtype``: see
    :data:`DTYPES`; the precision actually used is ``self.dtype`` after construction. Output probabilities are
    float32 either way. ``threads``: CPU threads for OpenVINO (None: all cores; the window leaves one core free).
    ``progress`` hears when a model file must first be converted (seconds, once per model). ``heartseg bench``
    measures both runtimes and both precisions.
    """

    def __init__(self, model, *, batch_size: int = 8, name: Optional[str] = None, dtype: str = "float32",
                 runtime: str = "auto", threads: Optional[int] = None, progress: Optional[ProgressFn] = None):

        if dtype not in DTYPES:
            raise ValueError(f"Predictor dtype must be one of {DTYPES}, got {dtype!r}")
        self.batch_size = int(batch_size)
        self.threads = threads
        self.runtime = _resolve_runtime(model, runtime)
        self.model = None
        self.ir = None
        self._model_path: Optional[Path] = None
        if isinstance(model, (str, Path)):
            self.name = name or Path(model).name
            if self.runtime == "openvino":

                self._model_path = Path(model)
                self.ir = ensure_ir(model, progress=progress, check=precision_check)
                self.image_size = self.ir.image_size
                if dtype == "auto":
                    dtype = "bfloat16" if amx_bf16_supported() and self.ir.bf16_ok else "float32"
                elif dtype == "bfloat16" and not bfloat16_units():
                    dtype = "float32"  # OpenVINO would compute float32 anyway; say so instead of "bfloat16"
            else:
                model = load_model(model)
        else:
            self.name = name or getattr(model, "name", "model")
        if self.runtime == "tensorflow":
            if dtype == "bfloat16":
                raise HeartsegError("bfloat16 needs the OpenVINO runtime (pass the model file); TensorFlow runs "
                                    "float32")
            self.model = model
            self._engine = TensorFlowEngine(model, batch_size=self.batch_size)
            self.image_size = self._engine.image_size
        else:
            self._engine = None
        self.dtype = "float32" if dtype == "auto" else dtype

    @property
    def engine(self):
        """The compiled engine (OpenVINO compiles on first use, ~0.1 s; TensorFlow traces on first call)."""
        if self._engine is None:
            def build():
                return OpenVinoEngine(self.ir.xml, batch_size=self.batch_size, precision=self.dtype,
                                      threads=self.threads)

            try:
                self._engine = build()
            except HeartsegError:
                # an IR this OpenVINO cannot read (a newer release wrote it): convert the model here, once
                if self.ir.folder != sidecar_dir(self._model_path):
                    shutil.rmtree(self.ir.folder, ignore_errors=True)
                self.ir = ensure_ir(self._model_path, use_sidecar=False, check=precision_check)
                self._engine = build()
        return self._engine
