"""Section 6 of ``heartseg bench``: opening a DICOM series, ``core.io.open_scan`` against SimpleITK's
``ImageSeriesReader`` (GDCM) on the same files, in the same run.

The series is made from the real abdomen slices in ``../shared/data/ts_abdomen_dicom`` (20 JPEG-2000 lossless
512 x 512 CT slices): they are repeated to ``n`` slices with new positions (one slice step apart, descending in
z), instance numbers and UIDs (a new study, series and SOP instance UID each), and written twice into a temporary
folder: once uncompressed (Explicit VR Little Endian; each source slice decoded once) and once JPEG-2000 lossless,
where each slice keeps its source's encoded pixel data unchanged (the codestream does not hold the position, so
re-encoding is not needed). Timings interleave the two readers; both volumes are compared in HU (difference 0
required, after bringing SimpleITK's ascending-z, as-stored grid to heartseg's display order).

SimpleITK is a bench / test extra (``pip install heartseg[test]``): without it the section reports heartseg's
times alone and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.io import open_scan
from core.io.dicom import DECODE_WORKERS, read_dicom_series
from heartseg_gui.bench.report import Report, Row, Stat, fmt_s

#: where the real slices are (beside the checkout, as the tests find them; HEARTSEG_SHARED overrides)
SHARED_DATA = Path(os.environ.get("HEARTSEG_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
SOURCE = SHARED_DATA / "ts_abdomen_dicom"


def source_slices(folder: Path = SOURCE) -> list[Path]:
    """The real DICOM slices to build the series from (files whose name starts with ``CT.``), in name order."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("CT."))
    if not files:
        raise FileNotFoundError(f"{folder}: no CT.* DICOM slices (the shared test data is missing)")
    return files


def make_series(out_dir: Path, n: int, *, compressed: bool, source: Path = SOURCE) -> list[Path]:
    """Write an ``n``-slice series made from the real slices in ``source`` into ``out_dir`` (created; must not
    exist yet) and return the files. ``compressed``: keep the source's JPEG-2000 pixel data, else uncompressed."""
    out_dir.mkdir(parents=True)
    sources = [pydicom.dcmread(p) for p in source_slices(source)]
    sources.sort(key=lambda ds: -float(ds.ImagePositionPatient[2]))
    if not compressed:
        for ds in sources:
            ds.decompress()  # once per source slice; PixelData now raw little-endian, transfer syntax explicit VR LE
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    origin = [float(v) for v in sources[0].ImagePositionPatient]
    zs = [float(ds.ImagePositionPatient[2]) for ds in sources]
    step = float(np.median(-np.diff(zs))) if len(zs) > 1 else float(sources[0].get("SliceThickness") or 1.0)
    files = []
    for k in range(n):
        ds = sources[k % len(sources)]
        uid = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesNumber, ds.InstanceNumber = 901, k + 1
        z = origin[2] - k * step
        ds.ImagePositionPatient = [origin[0], origin[1], z]
        ds.SliceLocation = z
        if not compressed:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out_dir / f"IM{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def read_with_simpleitk(folder: Path):
    """The series as SimpleITK's ``ImageSeriesReader`` reads it (GDCM sorts the files): the ``sitk.Image``
    (voxels ``(slices, rows, cols)`` in ITK order: slices ascending along the normal, rows and columns as
    stored). The baseline's time is this call; :func:`hu_difference` takes its numpy view."""
    import SimpleITK as sitk  # lazy: a bench extra

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _have_simpleitk() -> bool:
    try:
        import SimpleITK  # noqa: F401 - lazy: a bench extra
    except ImportError:
        return False
    return True


def hu_difference(ours, image) -> int:
    """Largest absolute HU difference between heartseg's :class:`~core.types.Volume` and SimpleITK's image of
    the same series (0 when equal): heartseg's display order is brought to ITK's grid (``source_grid``)."""
    import SimpleITK as sitk  # lazy: a bench extra

    theirs = sitk.GetArrayViewFromImage(image)  # a view: ``image`` stays alive until the comparison is done
    native = ours.source_grid.to_native
    vox = ours.voxels
    if native[2][1] < 0:
        vox = vox[::-1]
    if native[1][1] < 0:
        vox = vox[:, ::-1]
    if native[0][1] < 0:
        vox = vox[:, :, ::-1]
    if vox.shape != theirs.shape:
        raise RuntimeError(f"shapes differ: heartseg {vox.shape}, SimpleITK {theirs.shape}")
    return int(np.abs(vox.astype(np.float64) - theirs.astype(np.float64)).max())


def bench_dicom(report: Report, quick: bool, log=print) -> None:
    n = 60 if quick else 300
    repeats = 2 if quick else 5
    sitk_ok = _have_simpleitk()
    if not sitk_ok:
        report.notes.append("dicom: SimpleITK is not installed (pip install heartseg[test]); no baseline for the "
                            "DICOM open")
    report.put("dicom.slices", n)
    report.put("dicom.decode_workers", DECODE_WORKERS)
    with tempfile.TemporaryDirectory(prefix="heartseg-bench-dicom-") as tmp:
        for kind, compressed in (("uncompressed", False), ("jpeg2000", True)):
            folder = Path(tmp) / kind
            t0 = time.perf_counter()
            make_series(folder, n, compressed=compressed)
            warm = Path(tmp) / f"{kind}-warm-up"
            make_series(warm, 2, compressed=compressed)
            log(f"bench: dicom {kind}: {n} slices written in {time.perf_counter() - t0:.1f} s")
            open_scan(warm)  # imports and decoder plugins, for both readers
            if sitk_ok:
                read_with_simpleitk(warm)
            ours, theirs, single = [], [], []
            vol = image = None
            for r in range(repeats):  # interleaved, alternating which reader goes first
                for who in (("ours", "sitk") if r % 2 == 0 else ("sitk", "ours")):
                    t = time.perf_counter()
                    if who == "ours":
                        vol = open_scan(folder)
                        ours.append(time.perf_counter() - t)
                    elif sitk_ok:
                        image = read_with_simpleitk(folder)
                        theirs.append(time.perf_counter() - t)
                if not quick:  # what one decode thread gives (docs/BENCHMARKS.md: the decoders and the GIL)
                    t = time.perf_counter()
                    read_dicom_series(folder, workers=1)
                    single.append(time.perf_counter() - t)
            s_ours = Stat.of(ours)
            report.put(f"dicom.{kind}_s", asdict(s_ours))
            what = f"open {n}x512x512 DICOM series, {'JPEG-2000 lossless' if compressed else 'uncompressed'}"
            if single:
                s_single = Stat.of(single)
                report.put(f"dicom.{kind}_one_thread_s", asdict(s_single))
                report.rows.append(Row("6 dicom", f"tried: {what} with one decode thread", fmt_s(s_single),
                                       baseline=f"{DECODE_WORKERS} threads {fmt_s(s_ours)}",
                                       ratio=f"{s_single.median / s_ours.median:.2f}x"))
            bench_first_image(report, folder, kind, n, 1 if quick else 3, log)
            if not sitk_ok:
                report.rows.append(Row("6 dicom", what, fmt_s(s_ours)))
                continue
            s_theirs = Stat.of(theirs)
            diff = hu_difference(vol, image)
            ratio = s_ours.median / s_theirs.median
            report.put(f"dicom.{kind}_sitk_s", asdict(s_theirs))
            report.put(f"dicom.{kind}_ratio", ratio)
            report.put(f"dicom.{kind}_hu_max_diff", diff)
            report.rows.append(Row("6 dicom", f"{what} (core.io.open_scan; HU difference {diff})", fmt_s(s_ours),
                                   baseline=f"SimpleITK ImageSeriesReader {fmt_s(s_theirs)}",
                                   ratio=f"{ratio:.2f}x", target="<= 1.0x, HU difference 0",
                                   met=ratio <= 1.0 and diff == 0))


def bench_first_image(report: Report, folder: Path, kind: str, n: int, repeats: int, log=print) -> None:
    """Progressive loading (issue 17): fresh window processes (``heartseg_gui.bench.gui firstimage``, offscreen,
    the bundled model) open ``folder``; open -> the slice in view painted (target <= 0.5 s), against open -> the
    whole series open and painted in the same runs; launch -> first image and launch -> first AI overlay."""
    first, whole, launch_first, launch_overlay = [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="heartseg-bench-first-") as tmp:
            out = Path(tmp) / "first.json"
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "HEARTSEG_SETTINGS_DIR": str(Path(tmp) / "settings"), "HEARTSEG_STATE_DIR": str(Path(tmp) / "st")}
            t_launch = time.time()
            r = subprocess.run([sys.executable, "-m", "heartseg_gui.bench.gui", "firstimage", "--out", str(out),
                                "--scan", str(folder)], env=env, capture_output=True, text=True, timeout=900)
            if r.returncode != 0 or not out.exists():
                tail = "\n".join((r.stderr or "").strip().splitlines()[-15:])
                raise RuntimeError(f"bench_gui firstimage failed (exit {r.returncode}):\n{tail}")
            res = json.loads(out.read_text())
        first.append(res["t_first_image"] - res["t_open"])
        whole.append(res["t_open_done"] - res["t_open"])
        launch_first.append(res["t_first_image"] - t_launch)
        launch_overlay.append(res["t_overlay"] - t_launch)
    s_first, s_whole = Stat.of(first), Stat.of(whole)
    s_lf, s_lo = Stat.of(launch_first), Stat.of(launch_overlay)
    for key, stat in (("first_image_s", s_first), ("open_in_window_s", s_whole), ("launch_first_image_s", s_lf),
                      ("launch_first_overlay_s", s_lo)):
        report.put(f"dicom.{kind}_{key}", asdict(stat))
    log(f"bench: dicom {kind}: first image {fmt_s(s_first)}, whole series {fmt_s(s_whole)} after the open starts")
    what = "uncompressed" if kind == "uncompressed" else "JPEG-2000 lossless"
    report.rows.append(Row("6 dicom", f"window: open {n}-slice {what} series -> the slice in view painted "
                           "(progressive loading, fresh window)", fmt_s(s_first),
                           baseline=f"open -> whole series open and painted {fmt_s(s_whole)}",
                           ratio=f"{s_first.median / s_whole.median:.2f}x", target="<= 0.5 s",
                           met=s_first.median <= 0.5))
    report.rows.append(Row("6 dicom", f"window: launch -> first image / first AI overlay ({what}, {n} slices)",
                           f"{fmt_s(s_lf)} / {fmt_s(s_lo)}"))
