"""The OpenVINO inference runtime: a ``.keras`` model converted once to OpenVINO IR, cached, and run without
TensorFlow.

Why: on the 2-core development machine the same U-Net runs 1.5x faster in OpenVINO than in TensorFlow at float32
(11 ms vs 17 ms a slice), and about 5x faster in bfloat16 on CPUs with AMX; and ``import openvino`` takes 0.3 s
where ``import tensorflow`` takes 2.8 s, so the window's first overlay no longer waits for TensorFlow.
Training still uses Keras/TensorFlow; only inference runs here.

Where an IR comes from, for a model file ``M.keras`` (its SHA-256 is the key, so a changed file is never run
from a stale IR). An IR is run only when this installation produced it:

1. ``M.openvino/`` next to the model **only for the package's own model** (``resources/model/``; the bundled model
   ships one, written by ``scripts/export_bundled_runtime.py``), when its record names the same SHA-256 -- those
   files are as trusted as the code beside them;
2. else the per-user cache ``<cache>/openvino/<sha256[:24]>/`` (:func:`cache_root`), which only
   :func:`ensure_ir` writes, after loading the model with Keras safe mode;
3. else it is converted now (imports TensorFlow: seconds) with Keras' own ``model.export(format="openvino")``
   into that cache, written to a temporary folder and renamed into place, so a killed conversion leaves nothing
   that is picked up later.

An ``M.openvino/`` folder next to any other model (a registered version's copy, or one planted beside a user's
model) is never run: its ``record.json`` is only a claim -- whoever can write ``model.bin`` can recompute the hashes
in it -- so such a model is converted into the cache instead (re-verified by converting; seconds, once per model).
And before any IR is used the ``.keras`` archive itself passes :func:`core.model.unet.check_model_file` (safe
mode's rule: no Lambda layer or other code), so a model that safe mode refuses is never run by any runtime, even
when an IR for it exists.

Each IR folder holds ``model.xml``, ``model.bin`` and ``record.json``: the model's SHA-256, the ``.bin``'s
SHA-256 (checked before use), the input size, and the **bfloat16 check** — Dice on the bundled sample at float32
and at bfloat16 (:func:`core.inference.precision.precision_check`). ``precision="auto"`` uses bfloat16 only where the CPU has AMX-BF16
units and that check showed ``|dDice| <= 0.005`` (the benchmark issue's rule); otherwise float32.

Arrays: the engine takes ``(batch, s, s, 3)`` float32 model input (see :mod:`core.preprocess`) and returns
``(batch, s, s)`` float32 probabilities 0..1.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from core.atomic import file_sha256, now_iso
from core.errors import HeartsegError
from core.model.unet import check_model_file, check_model_io, load_model
from core.resources import resources_dir, user_dir
from core.types import Progress, ProgressFn, report

#: ``check(xml, image_size) -> dict``: the bfloat16 check recorded with a new IR (:func:`core.inference.precision.precision_check`).
PrecisionCheck = Callable[[Path, int], dict]

RECORD_FORMAT = 1
RECORD_NAME = "record.json"
_PRECISION_HINT = {"float32": "f32", "bfloat16": "bf16"}
_convert_lock = threading.Lock()


def openvino_available() -> bool:
    """True when the ``openvino`` package imports (it is a dependency; this guards odd installs)."""
    try:
        import openvino  # noqa: F401  # lazy: only probes whether the package imports
    except Exception:  # a broken native install raises more than ImportError
        return False
    return True


def cache_root() -> Path:
    """``$HEARTSEG_CACHE_DIR``, else ``$HEARTSEG_SETTINGS_DIR/cache`` (tests, portable installs), else
    ``$XDG_CACHE_HOME/heartseg``, else ``~/.cache/heartseg``."""

    return user_dir("HEARTSEG_CACHE_DIR", "cache", "XDG_CACHE_HOME", ".cache")


def sidecar_dir(keras_path: Path) -> Path:
    """The IR folder shipped next to a model: ``M.keras`` -> ``M.openvino/``."""
    return Path(keras_path).with_suffix(".openvino")


@dataclass(frozen=True)
class IRModel:
    """A converted model on disk: ``folder/model.xml`` + ``model.bin`` + ``record.json``."""
    folder: Path
    record: dict

    @property
    def xml(self) -> Path:
        return self.folder / "model.xml"

    @property
    def image_size(self) -> int:
        return int(self.record["image_size"])

    @property
    def bf16_ok(self) -> bool:
        check = self.record.get("bf16_check") or {}
        return bool(check.get("ok"))


def _read_ir(folder: Path, keras_sha: str) -> Optional[IRModel]:
    """The IR in ``folder`` if it is complete, made from the model with SHA-256 ``keras_sha`` and its weights
    file is intact; otherwise None."""
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    size = record.get("image_size") if isinstance(record, dict) else None
    if (not isinstance(record, dict) or record.get("format") != RECORD_FORMAT
            or record.get("keras_sha256") != keras_sha or not (folder / "model.xml").is_file()
            or not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 8192):
        return None
    try:
        if (file_sha256(folder / "model.bin") != record.get("bin_sha256")
                or file_sha256(folder / "model.xml") != record.get("xml_sha256")):
            return None
    except OSError:
        return None
    return IRModel(folder, record)


def cache_dir(keras_sha: str) -> Path:
    """The per-user cache folder of the model with SHA-256 ``keras_sha``."""
    return cache_root() / "openvino" / keras_sha[:24]


def trusted_sidecar(keras_path: str | Path) -> bool:
    """True when ``M.openvino/`` next to ``keras_path`` belongs to this installation: the model lies in the
    package's own ``resources/`` (links resolved). Any other sidecar is never run (module docstring)."""
    try:
        folder = sidecar_dir(Path(keras_path)).resolve()
        folder.relative_to(resources_dir().resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def find_ir(keras_path: str | Path, keras_sha: Optional[str] = None, *, sidecar: bool = True) -> Optional[IRModel]:
    """An existing, valid IR for ``keras_path`` produced by this installation: the package's own sidecar
    (:func:`trusted_sidecar`; unless ``sidecar=False``), else the user cache; or None."""
    keras_path = Path(keras_path)
    sha = keras_sha or file_sha256(keras_path)
    own = sidecar and trusted_sidecar(keras_path)
    folders = ([sidecar_dir(keras_path)] if own else []) + [cache_dir(sha)]
    for folder in folders:
        ir = _read_ir(folder, sha)
        if ir is not None:
            return ir
    return None


def export_ir(model, folder: Path, *, keras_sha: str, check: Optional[PrecisionCheck] = None) -> IRModel:
    """Convert the Keras ``model`` (loaded from the file with SHA-256 ``keras_sha``) into ``folder``.

    Writes into a temporary sibling folder and renames it into place; an existing valid ``folder`` is kept.
    ``check``: the bfloat16 check to run and record (:func:`core.inference.precision.precision_check`, ~3 s);
    None records none, so ``precision="auto"`` keeps this IR at float32.
    """
    import keras  # lazy: Keras (TensorFlow, ~3 s) loads only to convert a model
    import openvino as ov  # lazy: OpenVINO loads only when a model is converted


    size = check_model_io(model)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        model.export(str(tmp / "model.xml"), format="openvino", verbose=False)
        record = {"format": RECORD_FORMAT, "keras_sha256": keras_sha,
                  "bin_sha256": file_sha256(tmp / "model.bin"), "xml_sha256": file_sha256(tmp / "model.xml"),
                  "image_size": size, "openvino": ov.__version__, "keras": keras.__version__, "created": now_iso()}
        if check is not None:
            record["bf16_check"] = check(tmp / "model.xml", size)
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return _publish(tmp, folder, record)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def copy_ir(ir: IRModel, folder: Path) -> IRModel:
    """Copy ``ir`` to ``folder`` (e.g. next to a registered version, so it travels with the dataset), through a
    temporary sibling folder renamed into place as :func:`export_ir` does."""
    folder = Path(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        shutil.copytree(ir.folder, tmp, dirs_exist_ok=True)
        return _publish(tmp, folder, ir.record)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, folder: Path, record: dict) -> IRModel:
    """Rename the complete IR in ``tmp`` (described by ``record``) to ``folder``. An existing valid ``folder`` is
    kept (and returned); a damaged or stale one is moved aside first, so no reader ever sees half a folder; when
    another process renames its own conversion in first, that one is used."""
    keras_sha = record["keras_sha256"]
    os.chmod(tmp, 0o755)
    existing = _read_ir(folder, keras_sha) if folder.exists() else None
    if existing is not None:
        return existing
    if folder.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
        try:
            os.rename(folder, aside / "ir")
        except OSError:
            pass  # another process replaced it meanwhile
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:
        existing = _read_ir(folder, keras_sha)
        if existing is None:
            raise
        return existing
    return IRModel(folder, record)


#: What :func:`ensure_ir` reports (stage ``"convert"``) before a conversion, which takes seconds.
CONVERTING_MESSAGE = "Preparing this model for fast inference (once per model)…"


def ensure_ir(keras_path: str | Path, *, sidecar: bool = False, use_sidecar: bool = True,
              progress: Optional[ProgressFn] = None, check: Optional[PrecisionCheck] = None) -> IRModel:
    """The IR for ``keras_path``: found (:func:`find_ir`) or converted now into the user cache (``sidecar``: also
    copied to ``M.openvino/`` next to the model, so it travels with it -- it is not run from there, see the module
    docstring). ``use_sidecar=False`` ignores a shipped IR (one this OpenVINO cannot read, e.g. from a newer
    release) and uses or fills the cache. ``progress`` hears :data:`CONVERTING_MESSAGE` when a conversion starts;
    ``check`` as :func:`export_ir`.

    Raises :class:`HeartsegError` naming the model when it cannot be loaded or converted, or when it carries code
    that Keras safe mode refuses (checked first, whatever IR exists for it).
    """

    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise HeartsegError("model file not found", keras_path)
    check_model_file(keras_path)  # safe mode's rule, before any IR of it may run
    sha = file_sha256(keras_path)
    if sidecar:
        ir = ensure_ir(keras_path, use_sidecar=use_sidecar, progress=progress, check=check)
        try:
            if _read_ir(sidecar_dir(keras_path), sha) is None:
                copy_ir(ir, sidecar_dir(keras_path))
        except OSError as exc:
            raise HeartsegError(f"cannot write the converted model next to it: {exc.strerror or exc}",
                                keras_path) from exc
        return ir  # the cache's (or the package's own): the copy beside the model is a copy, never run
    ir = find_ir(keras_path, sha, sidecar=use_sidecar)
    if ir is not None:
        return ir
    with _convert_lock:
        ir = find_ir(keras_path, sha, sidecar=use_sidecar)
        if ir is not None:
            return ir
        report(progress, Progress("convert", 0, 0, CONVERTING_MESSAGE))  # total 0: no count, a busy bar
        model = load_model(keras_path)
        try:
            target = cache_dir(sha)
            return export_ir(model, target, keras_sha=sha, check=check)
        except HeartsegError:
            raise
        except OSError as exc:
            raise HeartsegError(f"cannot write the converted model to {target.parent}: {exc.strerror or exc}",
                                keras_path) from exc
        except Exception as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HeartsegError(f"cannot convert the model for OpenVINO: {text}", keras_path) from exc


class OpenVinoEngine:
    """An IR compiled for the CPU at a fixed input shape ``(batch_size, s, s, 3)`` and one precision, on
    ``threads`` CPU threads (None: all cores).

    ``run`` is not re-entrant: one call at a time (as :class:`core.inference.predictor.Predictor`).
    """

    runtime = "openvino"

    def __init__(self, xml: str | Path, *, batch_size: int, precision: str = "float32",
                 threads: Optional[int] = None):
        import openvino as ov  # lazy: OpenVINO loads only when a model is run

        if precision not in _PRECISION_HINT:
            raise ValueError(f"precision must be one of {tuple(_PRECISION_HINT)}, got {precision!r}")
        self.batch_size = int(batch_size)
        self.precision = precision
        self.threads = threads
        self._lock = threading.Lock()
        try:
            core = ov.Core()
            model = core.read_model(str(xml))
            shape_in = model.inputs[0].get_partial_shape()
            fits = (len(model.inputs) == 1 and len(model.outputs) == 1 and shape_in.rank.is_static
                    and shape_in.rank.get_length() == 4 and shape_in[1].is_static)
            if not fits:
                raise HeartsegError("OpenVINO model does not fit heartseg (one (N, S, S, 3) input, one output)",
                                    xml)
            size = shape_in[1].get_length()
            model.reshape([self.batch_size, size, size, 3])
            config = {"INFERENCE_PRECISION_HINT": _PRECISION_HINT[precision], "PERFORMANCE_HINT": "LATENCY"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self._compiled = core.compile_model(model, "CPU", config)
            self._request = self._compiled.create_infer_request()
        except HeartsegError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError and others for IRs it cannot read or compile
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HeartsegError(f"cannot run the OpenVINO model: {text}", xml) from exc
        self.image_size = int(size)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(batch_size, s, s, 3)`` float32 -> ``(batch_size, s, s)`` float32 probabilities (a new array).

        Serialised: a superseded job may still be finishing its batch when the next one starts on the same
        (cached) engine, and an OpenVINO request runs one inference at a time."""
        with self._lock:
            self._request.infer([np.ascontiguousarray(batch, np.float32)])
            out = self._request.get_output_tensor(0).data
            return np.array(out[..., 0], dtype=np.float32)


