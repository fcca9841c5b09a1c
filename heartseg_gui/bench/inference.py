"""Inference section of ``heartseg bench`` (see :mod:`heartseg_gui.bench.run`).

* FLOPs per slice are counted from the model's convolutions (``2 * out_h * out_w * k_h * k_w * c_in * c_out`` for
  ``Conv2D``; ``2 * in_h * in_w * k_h * k_w * c_in * c_out`` for ``Conv2DTranspose``); batch norm, activations,
  pooling and concatenation are < 1 % and left out, so the floor is slightly optimistic.
* The float32 floor is those FLOPs divided by the FLOP/s of a 2048 x 2048 float32 matmul (TensorFlow, all threads)
  timed in the same run, next to each timed run of the project's path.
* Per slice, interleaved: a naive ``model.predict`` on one slice; the TensorFlow :class:`core.inference.predictor.Predictor`
  (one ``tf.function``, batch 8); the OpenVINO predictor at float32; and the project's default
  (``Predictor(model file, dtype="auto")``: OpenVINO, bfloat16 where the CPU has AMX and the model's check passed).
* A synthetic scan (``n`` slices of 512 x 512, 8-bit PNGs in the Kaggle scale) is written to a temporary folder;
  the whole-scan figure goes from those files to mask PNGs on disk. The project's path is what
  ``heartseg predict`` runs (:func:`core.io.open_scan`, :meth:`core.inference.predictor.Predictor.predict_masks` with the
  default clean-up, :func:`core.io.write_mask_pngs`), at its default precision and forced to float32; the naive
  path reads, predicts (``model.predict`` on one slice), thresholds and writes one slice at a time. Models are
  loaded and compiled before anything is timed; the one-time costs are reported separately.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from core.inference.hardware import amx_bf16_supported
from core.inference.predictor import Predictor
from core.io import open_scan, write_mask_pngs
from core.io.common import kaggle_slice_names
from core.metrics import dice
from core.model.unet import load_model
from core.postprocess import DEFAULT_POSTPROCESS
from core.preprocess import hu_to_stored, image_to_model_input, kaggle_scale_slice, probability_to_slice, threshold
from core.resources import bundled_model_path, sample_mask_path, sample_scan_path
from heartseg_gui.bench.report import Report, Row, Stat, fmt_ms, fmt_s, synthetic_slice_hu, timed


def conv_flops_per_slice(model) -> float:
    """Multiply-adds x 2 of every Conv2D / Conv2DTranspose of ``model`` for one input slice."""
    total = 0.0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "Conv2DTranspose"):
            continue
        kernel = tuple(int(v) for v in layer.kernel.shape)  # (kh, kw, c_in, c_out) or (kh, kw, c_out, c_in)
        grid = layer.output.shape if kind == "Conv2D" else layer.input.shape
        total += 2.0 * int(grid[1]) * int(grid[2]) * float(np.prod(kernel))
    return total


_MATMUL = None


def matmul_gflops(repeats: int, n: int = 2048, dtype: str = "float32") -> Stat:
    """FLOP/s (in GFLOP/s) of an ``n x n`` matmul (TensorFlow, all threads) over ``repeats`` timed runs."""
    import tensorflow as tf

    global _MATMUL
    a = tf.cast(tf.random.normal((n, n), seed=1), dtype)
    b = tf.cast(tf.random.normal((n, n), seed=2), dtype)
    if _MATMUL is None:  # one tf.function for every call (a new one per call re-traces)
        _MATMUL = tf.function(lambda x, y: tf.matmul(x, y))
    fn = _MATMUL
    fn(a, b).numpy()
    out = []
    for _ in range(repeats):
        t, _r = timed(lambda: fn(a, b).numpy())
        out.append(2.0 * n ** 3 / t / 1e9)
    return Stat.of(out)


def write_synthetic_png_scan(folder: Path, n: int, side: int = 512) -> list[Path]:
    """``n`` slices as Kaggle-scale 8-bit PNGs ``folder/1-001.png ...`` (what a Kaggle patient's image/ holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, name in enumerate(kaggle_slice_names(n)):
        img = kaggle_scale_slice(hu_to_stored(synthetic_slice_hu(side, k, n)))
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def project_scan(predictor, scan_dir: Path, out_dir: Path) -> int:
    """The project's path (as ``heartseg predict`` on a PNG folder): files -> masks on disk."""
    volume = open_scan(scan_dir)
    masks = predictor.predict_masks(volume, postprocess=DEFAULT_POSTPROCESS)
    return len(write_mask_pngs(out_dir, masks, volume.slice_names))


def whole_scan_parts(predictor, scan_dir: Path, out_dir: Path, repeats: int) -> dict:
    """The three stages of :func:`project_scan`, each timed alone (interleaved, ``repeats`` rounds): ``decode``
    (:func:`core.io.open_scan` of the PNG folder), ``network`` (``predict_masks`` with the default clean-up, on the
    volume in memory: preprocessing, the model, resizing back, thresholding, the 3-D clean-up) and ``encode``
    (:func:`core.io.write_mask_pngs`)."""
    times = {"decode": [], "network": [], "encode": []}
    for k in range(repeats):
        t, volume = timed(open_scan, scan_dir)
        times["decode"].append(t)
        t, masks = timed(predictor.predict_masks, volume, postprocess=DEFAULT_POSTPROCESS)
        times["network"].append(t)
        t, _n = timed(write_mask_pngs, out_dir / str(k), masks, volume.slice_names)
        times["encode"].append(t)
    return {k: Stat.of(v) for k, v in times.items()}


def naive_scan(model, files: list[Path], out_dir: Path) -> int:
    """The naive path: for each file, read, preprocess, ``model.predict`` one slice, resize, threshold, write."""
    out_dir.mkdir(parents=True, exist_ok=True)
    size = int(model.input_shape[1])
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        x = image_to_model_input(img, size)[None]
        p = model.predict(x, verbose=0)[0, :, :, 0]
        mask = threshold(probability_to_slice(p, img.shape))
        cv2.imwrite(str(out_dir / path.name), mask * np.uint8(255))
    return len(files)


def sample_dice(predictor) -> float:
    """Dice of the (post-processed) prediction against the bundled sample's heart mask."""
    vol = open_scan(sample_scan_path(), sample_mask_path())
    return float(dice(vol.mask, predictor.predict_masks(vol, postprocess=DEFAULT_POSTPROCESS)))


def _interleaved(fns: dict, reps: int, per: dict) -> dict:
    """``{name: Stat}`` of ms per slice, each fn timed once per round, rounds repeated ``reps`` times."""
    out = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t, _r = timed(fn)
            out[k].append(1000 * t / per[k])
    return {k: Stat.of(v) for k, v in out.items()}


def bench_inference(report: Report, quick: bool, log) -> None:
    import tensorflow as tf


    n_slices = 16 if quick else 128
    reps = 4 if quick else 12
    batch = 8
    path = bundled_model_path()
    model = load_model(path)
    size = int(model.inputs[0].shape[1])
    flops = conv_flops_per_slice(model)
    report.put("inference.flops_per_slice_g", flops / 1e9)

    # ---- per slice, interleaved; matmul before and after
    mm = [matmul_gflops(3 if quick else 6)]
    xb = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
    p_tf = Predictor(model, batch_size=batch)
    trace_s, _ = timed(p_tf.predict_batch, xb)
    p_32 = Predictor(path, batch_size=batch, dtype="float32")
    p_auto = Predictor(path, batch_size=batch, dtype="auto")
    p_16 = Predictor(path, batch_size=batch, dtype="bfloat16")
    compile_s, _ = timed(p_32.predict_batch, xb)
    p_auto.predict_batch(xb)
    p_16.predict_batch(xb)
    model.predict(xb[:1], verbose=0)
    stats = _interleaved({"naive": lambda: model.predict(xb[:1], verbose=0), "tf": lambda: p_tf.predict_batch(xb),
                          "ov32": lambda: p_32.predict_batch(xb), "ov16": lambda: p_16.predict_batch(xb)},
                         reps, {"naive": 1, "tf": batch, "ov32": batch, "ov16": batch})
    mm.append(matmul_gflops(3 if quick else 6))
    gflops = Stat(float(np.median([m.median for m in mm])), float(np.max([m.p95 for m in mm])),
                  sum(m.n for m in mm))
    floor_ms = flops / (gflops.median * 1e9) * 1000
    s_naive, s_tf, s_32, s_16 = stats["naive"], stats["tf"], stats["ov32"], stats["ov16"]
    s_proj = s_16 if p_auto.dtype == "bfloat16" else s_32
    report.put("inference.matmul_gflops", asdict(gflops))
    report.put("inference.floor_ms_per_slice", floor_ms)
    report.put("inference.naive_ms_per_slice", asdict(s_naive))
    report.put("inference.tf_ms_per_slice", asdict(s_tf))
    report.put("inference.ov_f32_ms_per_slice", asdict(s_32))
    report.put("inference.project_ms_per_slice", asdict(s_proj))
    report.put("inference.project_uses_bf16", p_auto.dtype == "bfloat16")
    report.put("inference.trace_s", trace_s)
    report.put("inference.ov_compile_s", compile_s)
    report.rows.append(Row("1 inference", f"model FLOPs / slice ({size}x{size} input, convolutions)",
                           f"{flops / 1e9:.2f} GFLOP"))
    report.rows.append(Row("1 inference", f"per slice: TensorFlow Predictor (batch {batch}, tf.function, fixed "
                           "signature)", fmt_ms(s_tf), baseline=f"model.predict 1 slice {fmt_ms(s_naive)}",
                           ratio=f"{s_naive.median / s_tf.median:.1f}x faster; {s_tf.median / floor_ms:.2f}x floor "
                                 f"({floor_ms:.1f} ms)"))
    report.rows.append(Row("1 inference", f"per slice: OpenVINO Predictor, float32 (batch {batch})", fmt_ms(s_32),
                           baseline=f"TensorFlow Predictor {fmt_ms(s_tf)}",
                           ratio=f"{s_tf.median / s_32.median:.2f}x faster; {s_32.median / floor_ms:.2f}x floor"))

    # ---- option tried (informational): XLA on the TensorFlow path
    if not quick:
        xla = tf.function(lambda x: model(x, training=False), jit_compile=True)
        xla(xb).numpy()
        tried = _interleaved({"xla": lambda: xla(xb).numpy(), "tf": lambda: p_tf.predict_batch(xb)}, 6,
                             {"xla": batch, "tf": batch})
        report.put("inference.xla_ms_per_slice", asdict(tried["xla"]))
        report.rows.append(Row("1 inference", "tried: TensorFlow XLA jit_compile=True, batch 8", fmt_ms(tried["xla"]),
                               baseline=f"TensorFlow Predictor {fmt_ms(tried['tf'])}",
                               ratio=f"{tried['tf'].median / tried['xla'].median:.2f}x"))

    # ---- bfloat16: speed (interleaved with float32, above) and Dice on the bundled sample
    d32, d16 = sample_dice(p_32), sample_dice(p_16)
    worth = s_16.median < s_32.median and abs(d32 - d16) <= 0.005
    report.put("inference.bf16_ms_per_slice", asdict(s_16))
    report.put("inference.bf16_speedup", s_32.median / s_16.median)
    report.put("inference.dice_f32", d32)
    report.put("inference.dice_bf16", d16)
    report.put("inference.dice_delta", abs(d32 - d16))
    report.put("inference.bf16_cpu_amx", amx_bf16_supported())
    report.put("inference.bf16_recommended", worth)
    report.rows.append(Row("1 inference", "per slice: OpenVINO Predictor, bfloat16 (default where the CPU has AMX "
                           f"and the model's check passed: {'yes' if p_auto.dtype == 'bfloat16' else 'no'})",
                           fmt_ms(s_16), baseline=f"float32 {fmt_ms(s_32)}",
                           ratio=f"{s_32.median / s_16.median:.2f}x faster; {s_16.median / floor_ms:.2f}x floor",
                           target="faster and |dDice| <= 0.005", met=worth))
    report.rows.append(Row("1 inference", "Dice on the bundled sample (112 slices), bfloat16", f"{d16:.4f}",
                           baseline=f"float32 {d32:.4f}", ratio=f"|d| = {abs(d32 - d16):.4f}",
                           target="|d| <= 0.005", met=abs(d32 - d16) <= 0.005))

    # ---- whole scan, files on disk -> masks on disk; naive and project interleaved
    with tempfile.TemporaryDirectory(prefix="heartseg-bench-scan-") as tmp:
        tmp = Path(tmp)
        files = write_synthetic_png_scan(tmp / "scan", n_slices)
        log(f"bench: inference: {n_slices}-slice 512x512 scan written; timing whole-scan paths")
        plan = ["auto", "naive", "f32", "auto"] if quick else ["auto", "naive", "f32", "auto", "naive", "f32", "auto"]
        times = {"auto": [], "naive": [], "f32": []}
        for k, which in enumerate(plan):
            out = tmp / f"out{k}"
            if which == "naive":
                t, n = timed(naive_scan, model, files, out)
            else:
                mm.append(matmul_gflops(2 if quick else 3))  # the floor is measured next to each project run
                t, n = timed(project_scan, p_auto if which == "auto" else p_32, tmp / "scan", out)
                mm.append(matmul_gflops(2 if quick else 3))
            times[which].append(t)
            assert n == n_slices
        parts = whole_scan_parts(p_auto, tmp / "scan", tmp / "parts", 2 if quick else 3)
    s_sp, s_sn, s_s32 = Stat.of(times["auto"]), Stat.of(times["naive"]), Stat.of(times["f32"])
    gflops = Stat(float(np.median([m.median for m in mm])), float(np.max([m.p95 for m in mm])),
                  sum(m.n for m in mm))
    report.put("inference.matmul_gflops", asdict(gflops))
    report.put("inference.floor_ms_per_slice", flops / (gflops.median * 1e9) * 1000)
    report.rows.append(Row("1 inference", "float32 matmul 2048^2, all runs (the floor's FLOP/s)",
                           f"{gflops.median:.0f} GFLOP/s (p95 {gflops.p95:.0f}, n={gflops.n})"))
    scan_floor = n_slices * flops / (gflops.median * 1e9)
    speedup = s_sn.median / s_sp.median
    to_floor = s_sp.median / scan_floor
    to_floor_32 = s_s32.median / scan_floor
    report.put("inference.scan_slices", n_slices)
    report.put("inference.scan_project_s", asdict(s_sp))
    report.put("inference.scan_f32_s", asdict(s_s32))
    report.put("inference.scan_naive_s", asdict(s_sn))
    report.put("inference.scan_floor_s", scan_floor)
    report.put("inference.speedup_vs_naive", speedup)
    report.put("inference.ratio_to_floor", to_floor)
    report.put("inference.ratio_to_floor_f32", to_floor_32)
    how = f"OpenVINO {p_auto.dtype}"
    report.rows.append(Row("1 inference", f"whole scan {n_slices}x512x512: PNG files -> mask PNGs on disk "
                           f"(heartseg predict default: {how})", fmt_s(s_sp),
                           baseline=f"naive predict loop {fmt_s(s_sn)}", ratio=f"{speedup:.1f}x faster",
                           target=">= 3x faster", met=speedup >= 3.0))
    report.rows.append(Row("1 inference", f"whole scan vs float32 compute floor ({n_slices} x FLOPs / matmul "
                           f"FLOP/s), default: {how}", fmt_s(s_sp), baseline=f"floor {scan_floor:.2f} s",
                           ratio=f"{to_floor:.2f}x floor", target="<= 1.5x floor", met=to_floor <= 1.5))
    parts_sum = sum(st.median for st in parts.values())
    to_parts = s_sp.median / parts_sum
    report.put("inference.scan_parts_s", {k: asdict(v) for k, v in parts.items()})
    report.put("inference.ratio_to_parts", to_parts)
    report.rows.append(Row("1 inference", f"whole scan vs its parts measured alone (PNG decode {fmt_s(parts['decode'])}"
                           f" + network {fmt_s(parts['network'])} + mask PNG encode {fmt_s(parts['encode'])})",
                           fmt_s(s_sp), baseline=f"sum {parts_sum:.2f} s", ratio=f"{to_parts:.2f}x",
                           target="<= 1.25x", met=to_parts <= 1.25))
    report.rows.append(Row("1 inference", "whole scan vs float32 compute floor, forced float32 "
                           "(--precision float32)", fmt_s(s_s32), baseline=f"floor {scan_floor:.2f} s",
                           ratio=f"{to_floor_32:.2f}x floor", target="<= 1.5x floor", met=to_floor_32 <= 1.5))
