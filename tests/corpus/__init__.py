"""The malformed-input corpus, generated in code into a temporary folder.

Every case is a :class:`Case`: ``build(tmp) -> Built`` makes the files; ``Built.path`` is what the user opens
(a scan folder or file), ``Built.model`` a model file to load instead (model cases), ``Built.culprit`` the file
name the one-line error must contain, ``Built.words`` words the problem description must contain. ``ok=True``
cases are inputs that must be *accepted* (converted), not refused.

Builders need only numpy / cv2 / Pillow / nibabel / pydicom, plus the shared DICOM series for the DICOM cases
(``needs_dicom``) and TensorFlow for the model cases that build a Keras model (``needs_tf``).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HEARTSEG_SHARED", ROOT.parent / "shared")) / "data"
ABDOMEN_DICOM = SHARED / "ts_abdomen_dicom"
CHEST_NIFTI = SHARED / "ts_chest_crop" / "ct.nii.gz"
SAMPLE_PATIENT = ROOT / "resources" / "sample" / "ts_chest_crop" / "kaggle_layout" / "ts_pulm"
BUNDLED_MODEL = ROOT / "resources" / "model" / "heartseg_unet.keras"


@dataclass
class Built:
    path: Path                       # the scan to open (for model cases: a good scan)
    culprit: str = ""                # file name the error line must contain ("" for ok cases)
    words: tuple = ()                # words the problem must contain (lower-case)
    model: Optional[Path] = None     # model cases: the bad model
    mask: Optional[Path] = None      # optional mask passed with the scan


@dataclass
class Case:
    name: str
    build: Callable[[Path], Built]
    ok: bool = False
    needs_dicom: bool = False
    needs_tf: bool = False
    in_process_only: bool = False    # needs a monkeypatch (unreadable file): run in-process, not in a subprocess
    tags: tuple = field(default_factory=tuple)


# ------------------------------------------------------------------------------------------------- pixels
def ct_like(rows: int = 40, cols: int = 48, seed: int = 0) -> np.ndarray:
    """A small 8-bit slice with structure (a bright disc on a gradient)."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    img = (c * 200 // max(1, cols - 1)).astype(np.uint8)
    img[(r - rows // 2) ** 2 + (c - cols // 2) ** 2 < (min(rows, cols) // 4) ** 2] = 250
    return (img + rng.integers(0, 5, img.shape)).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(img))
    return path


def png_folder(folder: Path, n: int = 3, rows: int = 40, cols: int = 48, names=None) -> Path:
    """A plain folder of ``n`` good 8-bit PNG slices."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = names[i] if names else f"1-{i + 1:03d}.png"
        write_png(folder / name, ct_like(rows, cols, i))
    return folder


def kaggle_patient(folder: Path, n: int = 3, rows: int = 40, cols: int = 48, masks: bool = True) -> Path:
    """``<folder>/image/1-NNN.png`` + ``<folder>/mask/1-NNN.png`` (0/255), all good."""
    png_folder(folder / "image", n, rows, cols)
    if masks:
        for i in range(n):
            m = np.zeros((rows, cols), np.uint8)
            m[rows // 4: rows // 2, cols // 4: cols // 2] = 255
            write_png(folder / "mask" / f"1-{i + 1:03d}.png", m)
    return folder


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose IHDR claims ``width x height`` (valid CRC) with a tiny IDAT: decoding would allocate ~10 GB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette PNG (colour type 3): ``indices`` ``(rows, cols)`` uint8 into ``palette`` ``(256, 3)``."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(indices, dtype=np.uint8), "L").convert("P")
    img.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


GREY_PALETTE = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


# --------------------------------------------------------------------------------------------------- PNG cases
def _bad_slice(tmp: Path, data: bytes, bad_name: str = "1-002 bad é.png") -> Built:
    folder = png_folder(tmp / "scan", 1)
    (folder / bad_name).write_bytes(data)
    return Built(folder, bad_name)


def zero_byte_png(tmp):
    b = _bad_slice(tmp, b"")
    b.words = ("empty",)
    return b


def truncated_png(tmp):
    good = png_bytes(ct_like())
    b = _bad_slice(tmp, good[: len(good) // 2])
    b.words = ("truncated",)
    return b


def truncated_png_header(tmp):
    b = _bad_slice(tmp, png_bytes(ct_like())[:20])
    b.words = ("truncated",)
    return b


def text_named_png(tmp):
    b = _bad_slice(tmp, b"this is a text file, not an image\n")
    b.words = ("not a png",)
    return b


def huge_png(tmp):
    folder = tmp / "scan"
    folder.mkdir()
    (folder / "huge.png").write_bytes(huge_png_header())
    return Built(folder, "huge.png", ("100000", "limit"))


def png_16bit_ok(tmp):
    folder = tmp / "scan16"
    folder.mkdir()
    for i in range(3):
        write_png(folder / f"1-{i + 1:03d}.png", ct_like(seed=i).astype(np.uint16) * 200)
    return Built(folder)


def png_mixed_depth(tmp):
    folder = png_folder(tmp / "scan", 2)
    write_png(folder / "1-003.png", ct_like().astype(np.uint16) * 200)
    return Built(folder, "1-003.png", ("bit",))


def rgba_opaque_grey_ok(tmp):
    folder = tmp / "rgba"
    folder.mkdir()
    for i in range(2):
        g = ct_like(seed=i)
        (folder / f"1-{i + 1:03d}.png").write_bytes(png_bytes(np.dstack([g, g, g, np.full_like(g, 255)])))
    return Built(folder)


def rgba_transparent(tmp):
    g = ct_like()
    alpha = np.full_like(g, 255)
    alpha[:5] = 0
    b = _bad_slice(tmp, png_bytes(np.dstack([g, g, g, alpha])), "1-002.png")
    b.words = ("transparent",)
    return b


def rgb_coloured(tmp):
    g = ct_like()
    b = _bad_slice(tmp, png_bytes(np.dstack([g, g // 2, g])), "1-002.png")
    b.words = ("colour",)
    return b


def palette_grey_ok(tmp):
    folder = tmp / "palette"
    folder.mkdir()
    for i in range(2):
        g = ct_like(seed=i)
        (folder / f"1-{i + 1:03d}.png").write_bytes(palette_png(g, GREY_PALETTE))
    return Built(folder)


def palette_coloured(tmp):
    g = ct_like()
    colours = GREY_PALETTE.copy()
    colours[:, 1] = 255 - colours[:, 1]
    b = _bad_slice(tmp, palette_png(g, colours), "1-002.png")
    b.words = ("colour",)
    return b


def image_mask_size_mismatch(tmp):
    p = kaggle_patient(tmp / "p1", 3)
    write_png(p / "mask" / "1-002.png", np.zeros((20, 20), np.uint8))
    return Built(p, "1-002.png", ("mask", "20 x 20"))


def mask_not_a_mask(tmp):
    p = kaggle_patient(tmp / "p1", 3)
    write_png(p / "mask" / "1-003.png", ct_like())  # a CT slice saved as a mask: hundreds of grey levels
    return Built(p, "1-003.png", ("not a mask",))


def mask_values_01_ok(tmp):
    p = kaggle_patient(tmp / "p1", 2)
    m = np.zeros((40, 48), np.uint8)
    m[10:20, 10:20] = 1
    write_png(p / "mask" / "1-001.png", m)
    return Built(p)


def mask_few_levels_ok(tmp):
    p = kaggle_patient(tmp / "p1", 2)
    m = np.zeros((40, 48), np.uint8)
    m[10:20, 10:20] = 255
    m[10:20, 20] = 100  # anti-aliased edge
    write_png(p / "mask" / "1-001.png", m)
    return Built(p)


def masks_missing_ok(tmp):
    p = kaggle_patient(tmp / "p1", 4)
    (p / "mask" / "1-002.png").unlink()
    (p / "mask" / "1-004.png").unlink()
    return Built(p)


def empty_folder(tmp):
    folder = tmp / "empty scan"
    folder.mkdir()
    return Built(folder, "empty scan", ("empty",))


def missing_path(tmp):
    return Built(tmp / "no such scan ü", "no such scan ü", ("no such file",))


def names_with_spaces_ok(tmp):
    folder = png_folder(tmp / "scan é ü 1", 3, names=["slice 01 é.png", "slice 02 é.png", "slice 03 é.png"])
    return Built(folder)


def symlink_loop(tmp):
    loop = tmp / "loop scan"
    os.symlink(loop, loop)
    return Built(loop, "loop scan", ("symbolic links",))


def symlink_loop_inside(tmp):
    """A loop among good slices is skipped like any non-image file; the scan opens."""
    folder = png_folder(tmp / "scan", 2)
    os.symlink(folder / "a.png", folder / "b.png")
    os.symlink(folder / "b.png", folder / "a.png")
    return Built(folder)


def fifo_named_nifti(tmp):
    fifo = tmp / "pipe.nii"
    os.mkfifo(fifo)
    return Built(fifo, "pipe.nii", ("not a regular file",))


def folder_named_png_inside(tmp):
    """A sub-folder called ``x.png`` among slices is not a slice: skipped, the scan opens."""
    folder = png_folder(tmp / "scan", 2)
    (folder / "x.png").mkdir()
    return Built(folder)


def unreadable_png(tmp):
    """Opened under a patch that makes this one file raise EACCES (tests run as root, chmod cannot)."""
    b = _bad_slice(tmp, png_bytes(ct_like()), "1-002 locked.png")
    b.words = ("permission denied",)
    return b


# ------------------------------------------------------------------------------------------------- DICOM cases
def _dicom_files(n: int) -> list[Path]:
    from natsort import natsorted

    files = natsorted([p for p in ABDOMEN_DICOM.iterdir() if p.name.startswith("CT")], key=lambda p: p.name)
    return files[:n]


def _copy_dicom(tmp: Path, n: int) -> Path:
    folder = tmp / "series"
    folder.mkdir()
    for f in _dicom_files(n):
        shutil.copy(f, folder / f.name)
    return folder


def _edit_dicom(path: Path, fn) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path)


def dicom_two_series(tmp):
    import pydicom.uid

    folder = _copy_dicom(tmp, 6)
    new_uid = pydicom.uid.generate_uid()
    for f in sorted(folder.iterdir())[3:]:
        _edit_dicom(f, lambda ds: setattr(ds, "SeriesInstanceUID", new_uid))
    return Built(folder, "series", ("2 dicom series",))


def dicom_no_pixels(tmp):
    folder = _copy_dicom(tmp, 3)
    victim = sorted(folder.iterdir())[1]
    _edit_dicom(victim, lambda ds: delattr(ds, "PixelData"))
    return Built(folder, victim.name, ("no pixel data",))


def dicom_no_position(tmp):
    folder = _copy_dicom(tmp, 3)
    victim = sorted(folder.iterdir())[2]
    _edit_dicom(victim, lambda ds: delattr(ds, "ImagePositionPatient"))
    return Built(folder, victim.name, ("imagepositionpatient",))


def dicom_huge_header(tmp):
    folder = _copy_dicom(tmp, 2)
    victim = sorted(folder.iterdir())[0]

    def grow(ds):
        ds.Rows = 60000
        ds.Columns = 60000

    _edit_dicom(victim, grow)
    return Built(folder, victim.name, ("limit",))


def dicom_truncated(tmp):
    folder = _copy_dicom(tmp, 3)
    victim = sorted(folder.iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    return Built(folder, victim.name, ())


def dicom_compressed(tmp):
    """The real JPEG 2000 series: refused when its decoders are hidden (see ``hide_dicom_decoders``)."""
    folder = _copy_dicom(tmp, 3)
    return Built(folder, "", ("decoder",))


#: Run before opening, in a subprocess, to make the JPEG 2000 decoders unavailable.
HIDE_DICOM_DECODERS = (
    "import sys\n"
    "for m in ('openjpeg', 'pylibjpeg', 'libjpeg', 'rle', 'gdcm', 'python_gdcm', 'PIL', 'PIL.Image', 'imagecodecs'):\n"
    "    sys.modules[m] = None\n"
)


# ------------------------------------------------------------------------------------------------- NIfTI cases
def _nifti(path: Path, data: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0])), str(path))
    return path


def nifti_4d(tmp):
    return Built(_nifti(tmp / "series 4d.nii.gz", np.zeros((8, 8, 4, 3), np.int16)), "series 4d.nii.gz", ("4-d",))


def nifti_huge_header(tmp):
    import nibabel as nib

    hdr = nib.Nifti2Header()  # NIfTI-2: 64-bit dimensions (NIfTI-1 cannot even say 100000)
    hdr.set_data_shape((100_000, 100_000, 1))
    hdr.set_data_dtype(np.int16)
    hdr.set_qform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    path = tmp / "huge.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 1024)  # header + a token of data
    return Built(path, "huge.nii", ("limit",))


def nifti_truncated(tmp):
    path = _nifti(tmp / "ct.nii.gz", (np.arange(32 * 32 * 20) % 1000).reshape(32, 32, 20).astype(np.int16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Built(path, "ct.nii.gz", ())


def nifti_garbage(tmp):
    path = tmp / "scan.nii"
    path.write_bytes(b"not a nifti at all" * 30)
    return Built(path, "scan.nii", ())


# ------------------------------------------------------------- issue 12 item 7 / issue 13: readers' tracebacks, geometry
def nifti_zero_slices(tmp):
    return Built(_nifti(tmp / "empty.nii.gz", np.zeros((8, 8, 0), np.int16)), "empty.nii.gz", ("no voxels",))


def nifti_rgb24(tmp):
    rgb = np.zeros((8, 8, 3), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    return Built(_nifti(tmp / "colour.nii.gz", rgb), "colour.nii.gz", ("rgb",))


def _dicom_with(tmp: Path, fn, n: int = 3, victim_index: int = 1):
    folder = _copy_dicom(tmp, n)
    victim = sorted(folder.iterdir())[victim_index]
    _edit_dicom(victim, fn)
    return folder, victim


def dicom_nan_slope(tmp):
    folder, victim = _dicom_with(tmp, lambda ds: setattr(ds, "RescaleSlope", "NaN"))
    return Built(folder, victim.name, ("rescaleslope", "finite"))


def dicom_inf_slope(tmp):
    folder, victim = _dicom_with(tmp, lambda ds: setattr(ds, "RescaleSlope", "inf"))
    return Built(folder, victim.name, ("rescaleslope", "finite"))


def dicom_zero_pixel_spacing(tmp):
    folder, victim = _dicom_with(tmp, lambda ds: setattr(ds, "PixelSpacing", [0, 0]))
    return Built(folder, victim.name, ("pixelspacing", "positive"))


def dicom_nan_position(tmp):
    folder, victim = _dicom_with(tmp, lambda ds: setattr(ds, "ImagePositionPatient",
                                                         ["NaN"] + list(ds.ImagePositionPatient)[1:]))
    return Built(folder, victim.name, ("imagepositionpatient", "non-finite"))


def dicom_gantry_tilt(tmp):
    """A 15 degree gantry tilt: each slice shifted along y by step * tan(15 deg); refused, not resampled."""
    folder = _copy_dicom(tmp, 6)
    for f in sorted(folder.iterdir()):
        def tilt(ds):
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y + z * np.tan(np.radians(15)), z]
        _edit_dicom(f, tilt)
    return Built(folder, "series", ("gantry",))


def newline_in_name(tmp):
    """A damaged slice whose name holds a newline: the error stays one line (the newline shown as \\n)."""
    folder = png_folder(tmp / "scan", 2)
    bad = folder / "1-003\nheartseg predict: error: fake second line.png"
    bad.write_bytes(b"")
    return Built(folder, "fake second line.png", ())


# ------------------------------------------------------------------------------------------------- model cases
def _good_scan(tmp: Path) -> Path:
    return png_folder(tmp / "good scan", 2, 64, 64)


def model_garbage(tmp):
    bad = tmp / "broken model.keras"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    return Built(_good_scan(tmp), "broken model.keras", ("corrupt",), model=bad)


def model_truncated(tmp):
    bad = tmp / "truncated.keras"
    data = BUNDLED_MODEL.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return Built(_good_scan(tmp), "truncated.keras", ("corrupt",), model=bad)


def model_text(tmp):
    bad = tmp / "notes.keras"
    bad.write_text("hello")
    return Built(_good_scan(tmp), "notes.keras", (), model=bad)


def model_missing(tmp):
    return Built(_good_scan(tmp), "missing.keras", ("not found",), model=tmp / "missing.keras")


def model_wrong_shape(tmp):
    import keras

    inputs = keras.Input((32, 32, 1))
    out = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    model = keras.Model(inputs, out)
    path = tmp / "wrong shape.keras"
    model.save(path)
    return Built(_good_scan(tmp), "wrong shape.keras", ("does not fit",), model=path)


def model_with_lambda(tmp):
    import keras

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    path = tmp / "lambda.keras"
    keras.Model(inputs, out).save(path)
    return Built(_good_scan(tmp), "lambda.keras", ("refused",), model=path)


CASES: list[Case] = [
    Case("zero_byte_png", zero_byte_png),
    Case("truncated_png", truncated_png),
    Case("truncated_png_header", truncated_png_header),
    Case("text_named_png", text_named_png),
    Case("huge_png_header", huge_png),
    Case("png_16bit", png_16bit_ok, ok=True),
    Case("png_mixed_bit_depth", png_mixed_depth),
    Case("rgba_opaque_grey", rgba_opaque_grey_ok, ok=True),
    Case("rgba_transparent", rgba_transparent),
    Case("rgb_coloured", rgb_coloured),
    Case("palette_grey", palette_grey_ok, ok=True),
    Case("palette_coloured", palette_coloured),
    Case("image_mask_size_mismatch", image_mask_size_mismatch),
    Case("mask_not_a_mask", mask_not_a_mask),
    Case("mask_values_0_1", mask_values_01_ok, ok=True),
    Case("mask_few_grey_levels", mask_few_levels_ok, ok=True),
    Case("masks_missing_for_some_slices", masks_missing_ok, ok=True),
    Case("empty_folder", empty_folder),
    Case("missing_path", missing_path),
    Case("names_with_spaces_non_ascii", names_with_spaces_ok, ok=True),
    Case("symlink_loop", symlink_loop),
    Case("symlink_loop_inside_folder", symlink_loop_inside, ok=True),
    Case("fifo_named_nifti", fifo_named_nifti),
    Case("folder_named_png_inside", folder_named_png_inside, ok=True),
    Case("unreadable_png", unreadable_png, in_process_only=True),
    Case("dicom_two_series", dicom_two_series, needs_dicom=True),
    Case("dicom_no_pixel_data", dicom_no_pixels, needs_dicom=True),
    Case("dicom_no_position", dicom_no_position, needs_dicom=True),
    Case("dicom_huge_header", dicom_huge_header, needs_dicom=True),
    Case("dicom_truncated", dicom_truncated, needs_dicom=True),
    Case("nifti_4d", nifti_4d),
    Case("nifti_huge_header", nifti_huge_header),
    Case("nifti_truncated", nifti_truncated),
    Case("nifti_garbage", nifti_garbage),
    Case("nifti_zero_slices", nifti_zero_slices),
    Case("nifti_rgb24", nifti_rgb24),
    Case("dicom_nan_rescale_slope", dicom_nan_slope, needs_dicom=True),
    Case("dicom_inf_rescale_slope", dicom_inf_slope, needs_dicom=True),
    Case("dicom_zero_pixel_spacing", dicom_zero_pixel_spacing, needs_dicom=True),
    Case("dicom_nan_position", dicom_nan_position, needs_dicom=True),
    Case("dicom_gantry_tilt", dicom_gantry_tilt, needs_dicom=True),
    Case("newline_in_file_name", newline_in_name),
    Case("model_garbage", model_garbage, tags=("model",)),
    Case("model_truncated", model_truncated, tags=("model",)),
    Case("model_text", model_text, tags=("model",)),
    Case("model_missing", model_missing, tags=("model",)),
    Case("model_wrong_input_shape", model_wrong_shape, needs_tf=True, tags=("model",)),
    Case("model_with_lambda_layer", model_with_lambda, needs_tf=True, tags=("model",)),
]
#: The compressed-DICOM-without-decoder case runs only in a subprocess (decoders hidden at start-up).
DICOM_NO_DECODER = Case("dicom_compressed_no_decoder", dicom_compressed, needs_dicom=True)

BAD = [c for c in CASES if not c.ok]
GOOD = [c for c in CASES if c.ok]


def by_name(name: str) -> Case:
    for c in CASES + [DICOM_NO_DECODER]:
        if c.name == name:
            return c
    raise KeyError(name)


def tree_state(*roots: Path) -> dict:
    """``{path: (size, sha1)}`` of every regular file under ``roots`` (symlinks and FIFOs by name only)."""
    import hashlib

    state = {}
    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            continue
        if root.is_symlink() or not root.is_dir():
            items = [root]
        else:
            items = [Path(d) / f for d, dirs, files in os.walk(root) for f in files + [x for x in dirs]]
        for p in items:
            if p.is_symlink() or not p.is_file():
                state[str(p)] = "special"
            else:
                data = p.read_bytes()
                state[str(p)] = (len(data), hashlib.sha1(data).hexdigest())
    return state


def deny_reading(monkeypatch, name_suffix: str = "locked.png") -> None:
    """Make files whose name ends in ``name_suffix`` unreadable for this test (tests run as root, where
    ``chmod 000`` stops nothing): ``open()`` raises PermissionError for them."""
    import builtins

    real_open = builtins.open

    def guarded_open(file, *a, **k):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file).endswith(name_suffix):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded_open)
