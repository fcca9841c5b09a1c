"""Every malformed input of the corpus (tests/corpus) through the ``heartseg`` command line.

A refused input: exit status 2, exactly one line on stderr naming the file and the problem, no traceback, nothing
written (no output folder, the input tree byte-identical). Inputs that are merely unusual (16-bit, palette,
RGBA-but-grey PNGs, 0/1 masks, missing masks, odd names) are accepted and converted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.corpus import (
    ABDOMEN_DICOM,
    BAD,
    DICOM_NO_DECODER,
    GOOD,
    HIDE_DICOM_DECODERS,
    by_name,
    deny_reading,
    png_folder,
    tree_state,
)

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8"}


def _skip_unavailable(case) -> None:
    if case.needs_dicom and not ABDOMEN_DICOM.is_dir():
        pytest.skip(f"needs {ABDOMEN_DICOM}")


def _cli_subprocess(args, prelude: str = "") -> subprocess.CompletedProcess:
    code = prelude + "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, encoding="utf-8", timeout=300)


def _args(built, out: Path) -> list:
    args = ["predict", built.path, "--out", out]
    if built.model is not None:
        args += ["--model", built.model]
    return args


def assert_one_line_error(rc: int, stderr: str, built) -> str:
    assert rc == 2, f"exit {rc}; stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("heartseg predict: error: "), line
    if built.culprit:
        assert built.culprit in line, f"{built.culprit!r} not named in: {line}"
    for word in built.words:
        assert word in line.lower(), f"{word!r} not in: {line}"
    return line


def _nothing_written(before: dict, built, out: Path, tmp_path: Path) -> None:
    assert not out.exists(), f"{out} was created"
    assert tree_state(tmp_path) == before, "an input file changed"


@pytest.mark.parametrize("case", [c for c in BAD if not c.in_process_only], ids=lambda c: c.name)
def test_bad_input_refused_by_cli(case, tmp_path):
    """Each case in a real ``heartseg`` process: exit 2, one line naming the file, nothing written."""
    _skip_unavailable(case)
    if case.needs_tf:
        pytest.importorskip("keras")
    built = case.build(tmp_path)
    out = tmp_path / "out"
    before = tree_state(tmp_path)
    r = _cli_subprocess(_args(built, out))
    assert_one_line_error(r.returncode, r.stderr, built)
    _nothing_written(before, built, out, tmp_path)


def test_unreadable_file_refused(tmp_path, monkeypatch, capfd):
    """Tests run as root (chmod 000 does not stop root), so the file is made unreadable by a patched open()."""
    from core.cli import main

    built = by_name("unreadable_png").build(tmp_path)
    deny_reading(monkeypatch)
    out = tmp_path / "out"
    before = tree_state(tmp_path)
    rc = main([str(a) for a in _args(built, out)])
    assert_one_line_error(rc, capfd.readouterr().err, built)
    _nothing_written(before, built, out, tmp_path)


def test_compressed_dicom_without_decoder_refused(tmp_path):
    """The real JPEG 2000 series in a process where every JPEG 2000 decoder plugin fails to import."""
    _skip_unavailable(DICOM_NO_DECODER)
    built = DICOM_NO_DECODER.build(tmp_path)
    out = tmp_path / "out"
    before = tree_state(tmp_path)
    r = _cli_subprocess(_args(built, out), prelude=HIDE_DICOM_DECODERS)
    line = assert_one_line_error(r.returncode, r.stderr, built)
    assert "JPEG 2000" in line and str(built.path) in line
    _nothing_written(before, built, out, tmp_path)


def test_huge_header_refused_before_allocating(tmp_path):
    """100000 x 100000 headers (PNG, NIfTI-2) are refused from the header: the process never grows past a
    small address-space limit that the claimed image (20 GB as int16) would break at once."""
    for name in ("huge_png_header", "nifti_huge_header"):
        (tmp_path / name).mkdir()
        built = by_name(name).build(tmp_path / name)
        limit = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
        r = _cli_subprocess(_args(built, tmp_path / name / "out"), prelude=limit)
        line = assert_one_line_error(r.returncode, r.stderr, built)
        assert "100000 x 100000" in line and "refused before reading" in line


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.name)
def test_unusual_but_valid_input_is_accepted(case, tmp_path):
    from core.io import open_scan

    built = case.build(tmp_path)
    vol = open_scan(built.path)
    assert vol.voxels.ndim == 3 and vol.n_slices >= 2
    if case.name == "png_16bit":
        assert vol.voxels.dtype == np.uint16 and vol.intensity == "raw"
    if case.name in ("palette_grey", "rgba_opaque_grey"):
        from tests.corpus import ct_like

        np.testing.assert_array_equal(vol.voxels[0], ct_like(seed=0))  # converted to the grey values exactly
    if case.name == "masks_missing_for_some_slices":
        assert vol.mask_present.tolist() == [True, False, True, False]
        assert not vol.mask[1].any() and vol.mask[0].any()
    if case.name in ("mask_values_0_1", "mask_few_grey_levels"):
        assert set(np.unique(vol.mask)) <= {0, 1}
        assert int(vol.mask[0].sum()) == 100  # the 10 x 10 square; its 100-grey edge is background (> 127 is mask)
    if case.name == "names_with_spaces_non_ascii":
        assert vol.slice_names == ["slice 01 é", "slice 02 é", "slice 03 é"]


def test_names_with_spaces_and_non_ascii_round_trip_through_export(tmp_path):
    """Masks written for slices with such names land beside each other under the same names."""
    from core.io import open_scan, write_mask_pngs
    from tests.helpers import read_mask_png

    built = by_name("names_with_spaces_non_ascii").build(tmp_path)
    vol = open_scan(built.path)
    masks = np.zeros(vol.voxels.shape, np.uint8)
    masks[1, 5:9, 5:9] = 1
    out = tmp_path / "masks é"
    paths = write_mask_pngs(out, masks, vol.slice_names)
    assert [p.name for p in paths] == ["slice 01 é.png", "slice 02 é.png", "slice 03 é.png"]
    np.testing.assert_array_equal(read_mask_png(paths[1]), masks[1])


def test_names_from_files_never_leave_the_output_folder(tmp_path):
    """A scan folder literally named '..' style or with a hostile NIfTI name cannot make ``predict`` write
    outside --out; patient ids are sanitised into one folder name."""
    from core.errors import HeartsegError
    from core.io.masks import write_mask_pngs
    from core.store.dataset import sanitize_pid

    for hostile in ("../../etc", "..", "a/../../b", "/abs/path", "x\\..\\y", "\x00evil", "..\u2215..\u2215x"):
        try:
            safe = sanitize_pid(hostile)
        except HeartsegError:
            continue
        assert "/" not in safe and "\\" not in safe and safe not in (".", "..") and "\x00" not in safe
        assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    for bad in ("../evil", "..", "a/b", "."):
        with pytest.raises(HeartsegError):
            write_mask_pngs(tmp_path / "o", np.zeros((1, 4, 4), np.uint8), [bad])
    assert not (tmp_path / "evil.png").exists()
    from core.store.dataset import output_name

    scan = png_folder(tmp_path / "scan" / "sub", 2)
    assert (scan / "..").name == ".."  # a scan opened through such a path is named ".."
    for name in ("..", ".", "../x", "a/b", "é ü", "\x01", ""):
        safe = output_name(name)
        assert safe and "/" not in safe and safe not in (".", "..")
        assert (tmp_path / "out" / safe).resolve().parent == (tmp_path / "out").resolve()
    assert scan.is_dir()
