"""Progressive loading of a DICOM series (issue 17): ``read_dicom_series(preview=...)`` hands over the middle slice,
exactly as the volume will hold it, before the other slices are decoded; a folder of several series says which in
its refusal. Real abdomen series (needs ../shared)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from core.errors import HeartsegError
from core.io import open_scan
from core.io.dicom import read_dicom_series
from tests.core.io.test_dicom_seg import VARIANTS, make_uid_series


@pytest.fixture(scope="module")
def series(tmp_path_factory, abdomen_dicom):
    root = tmp_path_factory.mktemp("preview_series")
    return {v: make_uid_series(abdomen_dicom, root / v, v) for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("workers", [1, 2])
def test_preview_is_the_middle_slice_as_the_volume_holds_it_and_comes_first(series, variant, workers):
    events = []
    vol = read_dicom_series(series[variant], workers=workers, preview=lambda p: events.append(("preview", p)),
                            progress=lambda pr: events.append(("progress", pr)))
    previews = [e[1] for e in events if e[0] == "preview"]
    assert len(previews) == 1 and events[0][0] == "preview"  # before the first batch of the others is reported
    p = previews[0]
    assert (p.index, p.n_slices, p.name, p.intensity) == (vol.n_slices // 2, vol.n_slices, series[variant].name, "hu")
    assert p.image.dtype == vol.voxels.dtype
    np.testing.assert_array_equal(p.image, vol.voxels[p.index])  # flips applied as in the volume
    assert p.pixel_aspect == pytest.approx(vol.spacing[2] / vol.spacing[1])
    if variant == "flipped":
        assert vol.metadata["flipped"] == ["columns", "rows"]


def test_open_scan_passes_the_preview_on(series):
    got = []
    vol = open_scan(series["plain"], preview=got.append)
    assert len(got) == 1
    np.testing.assert_array_equal(got[0].image, vol.voxels[vol.n_slices // 2])


def test_a_damaged_slice_after_the_preview_still_fails_naming_it(series, tmp_path):
    plain = read_dicom_series(series["plain"])
    folder = tmp_path / "damaged"
    folder.mkdir()
    for f in plain.source_files:
        (folder / f.name).write_bytes(f.read_bytes())
    victim = folder / plain.source_files[0].name  # the most superior slice, not the middle one
    ds = pydicom.dcmread(victim)
    del ds.PixelData
    ds.save_as(victim)
    got = []
    with pytest.raises(HeartsegError) as info:
        read_dicom_series(folder, preview=got.append)
    assert victim.name in str(info.value) and "no pixel data" in str(info.value)
    assert len(got) == 1  # the middle slice was shown; the open as a whole still failed


def test_no_preview_without_a_callback_decodes_the_same(series):
    a = read_dicom_series(series["flipped"])
    b = read_dicom_series(series["flipped"], preview=lambda p: None)
    np.testing.assert_array_equal(a.voxels, b.voxels)


def test_several_series_say_which_ones_in_the_error(tmp_path, abdomen_dicom):
    """The window's series picker is fed by the open job's own header pass (never a second pass on the GUI
    thread): the refusal lists each series (UID, label, file count) in the order its first file is met, and its
    one-line message is unchanged."""
    from core.errors import SeriesChoiceNeeded
    from tests.corpus import by_name

    built = by_name("dicom_two_series").build(tmp_path)
    files = sorted(built.path.iterdir())
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).get("SeriesInstanceUID", "") or "") for f in files]
    with pytest.raises(SeriesChoiceNeeded) as info:
        open_scan(built.path)
    assert [(uid, n) for uid, _label, n in info.value.series] == [(u, uids.count(u)) for u in dict.fromkeys(uids)]
    assert len(info.value.series) == 2
    assert "holds 2 DICOM series" in str(info.value) and "\n" not in str(info.value)
    chosen = read_dicom_series(built.path, series_uid=info.value.series[1][0])
    assert chosen.n_slices == info.value.series[1][2]


def test_open_scan_takes_the_series_to_read(tmp_path, abdomen_dicom):
    """The window reopens a folder of several series with the one picked through open_scan (so a mask given
    with it is read too)."""
    from core.errors import SeriesChoiceNeeded
    from tests.corpus import by_name

    built = by_name("dicom_two_series").build(tmp_path)
    with pytest.raises(SeriesChoiceNeeded) as info:
        open_scan(built.path)
    for uid, _label, n in info.value.series:   # one has no SeriesInstanceUID in the anonymised source ("")
        vol = open_scan(built.path, series_uid=uid)
        assert vol.n_slices == n and vol.metadata.get("SeriesInstanceUID", "") == uid
