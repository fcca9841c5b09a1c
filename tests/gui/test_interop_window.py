"""The window's side of masks other tools read (issue 13): File ▸ Export DICOM-SEG… (read back with highdicom and
pydicom), File ▸ Attach Mask… with the label picker (nibabel as referee), the geometry notice on opening, and Save
for NIfTI scans. The real window runs offscreen without a model (no prediction starts); questions are answered by
replacing the :class:`~heartseg_gui.dialogs.prompts.Prompts` methods, so no modal dialog can hang the run."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

pytest.importorskip("pytestqt")
highdicom = pytest.importorskip("highdicom")
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.io.masks import to_source_grid  # noqa: E402
from core.io.nifti import read_nifti_mask  # noqa: E402
from tests.core.io.test_dicom_seg import make_uid_series  # noqa: E402
from tests.gui import test_gui_window  # noqa: E402
from tests.helpers import select_label  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.shared]
settings_dir = test_gui_window.settings_dir   # the window tests' fixture

WAIT_MS = 30_000


@pytest.fixture
def make_window(qtbot, settings_dir):
    """``make_window(path)``: the real main window (no model set, so nothing is predicted), ``path`` opened."""
    from heartseg_gui.main_window import MainWindow

    made = []

    def make(path=None, mask=None):
        w = MainWindow()
        qtbot.addWidget(w)
        w.prompts.save_discard_cancel = lambda question: "discard"
        w.show()
        made.append(w)
        if path is not None:
            assert w.files.open_path(path, mask, ask=False)
            wait_open(qtbot, w)
        return w

    yield make
    for w in made:
        w.controller.shutdown()


def wait_open(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=WAIT_MS)


def wait_interop(qtbot, w) -> None:
    qtbot.waitUntil(lambda: not w.interop.busy, timeout=WAIT_MS)


@pytest.fixture(params=["plain"])
def dicom_copy(request, abdomen_dicom, tmp_path) -> Path:
    """The 20-slice abdomen series copied with Study / Series / SOP Instance UIDs (the shared copy has none; a SEG
    needs them); ``flipped``: in-plane flipped orientation (the reader flips both axes to the display)."""
    return make_uid_series(abdomen_dicom, tmp_path / "series", request.param)


@pytest.fixture
def ct_copy(chest_crop, tmp_path) -> Path:
    """``ct.nii.gz`` and ``heart.nii.gz`` of the chest crop copied into a folder of their own."""
    folder = tmp_path / "case"
    folder.mkdir()
    for name in ("ct.nii.gz", "heart.nii.gz"):
        shutil.copy2(chest_crop / name, folder / name)
    return folder


def _paint(w, slices, rows=None, cols=None) -> np.ndarray:
    """Put a rectangle (default: in the slice's second quarter) on ``slices`` of the working mask (one undo step,
    like a slice tool) -> the mask."""
    s = w.controller.session
    n_rows, n_cols = s.volume.slice_shape
    rows = slice(n_rows // 4, n_rows // 2) if rows is None else rows
    cols = slice(n_cols // 3, n_cols // 2) if cols is None else cols
    mask = s.editor.copy_mask()
    for k in slices:
        mask[k, rows, cols] = 1
    w.controller.edited_elsewhere(s.editor.set_slices(list(slices), mask[list(slices)], "test paint"))
    return mask


def _seg_frames_by_slice(seg_path: Path, volume) -> np.ndarray:
    """The SEG read by highdicom, one frame per volume slice (matched by source SOP Instance UID), in the volume's
    display orientation (the reader's in-plane flips undone)."""
    seg = highdicom.seg.segread(seg_path)
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in volume.source_files]
    pixels = np.asarray(seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1],
                                                          combine_segments=False))[..., 0]
    flipped = volume.metadata.get("flipped") or ()
    if "rows" in flipped:
        pixels = pixels[:, ::-1, :]
    if "columns" in flipped:
        pixels = pixels[:, :, ::-1]
    return pixels


# ----------------------------------------------------------------------------------------- DICOM-SEG export
@pytest.mark.parametrize("dicom_copy", ["plain", "flipped"], indirect=True)
def test_export_dicom_seg_of_a_corrected_mask_reads_back_with_highdicom(qtbot, make_window, dicom_copy, tmp_path):
    w = make_window(dicom_copy)
    assert w.actions.export_dicom_seg.isEnabled()
    mask = _paint(w, [3, 4, 10])
    out = tmp_path / "out" / "abdomen_heart"
    out.parent.mkdir()
    asked = []
    w.prompts.choose_save_file = lambda title, start="", filters="": asked.append(start) or str(out)
    with qtbot.waitSignal(w.interop.segExported, timeout=WAIT_MS) as blocker:
        w.actions.export_dicom_seg.trigger()
    written = Path(blocker.args[0])
    assert written == out.with_name("abdomen_heart.seg.dcm") and written.is_file()
    assert asked and asked[0].endswith("_heart.seg.dcm")
    assert "Exported the DICOM-SEG" in w.statusBar().currentMessage()
    vol = w.controller.session.volume
    frames = _seg_frames_by_slice(written, vol)
    assert frames.shape == mask.shape
    np.testing.assert_array_equal(frames > 0, mask > 0)  # voxel for voxel, every slice
    ds = pydicom.dcmread(written)
    assert ds.Modality == "SEG" and ds.StudyInstanceUID == pydicom.dcmread(vol.source_files[0]).StudyInstanceUID
    segment = ds.SegmentSequence[0]
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"  # a person shaped this mask
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "80891009"
    assert not w.prompts.errors
    assert not list(dicom_copy.glob("*.seg.dcm"))


def test_export_dicom_seg_of_the_untouched_ai_mask_says_automatic(qtbot, make_window, dicom_copy, tmp_path):
    w = make_window(dicom_copy)
    s = w.controller.session
    ai = np.zeros(s.volume.voxels.shape, np.uint8)
    ai[5:9, 100:180, 150:260] = 1
    s.set_prediction(range(s.n_slices), ai)  # as the prediction job hands it over
    w.controller.accept_ai_all()
    target = tmp_path / "ai.seg.dcm"
    with qtbot.waitSignal(w.interop.segExported, timeout=WAIT_MS):
        w.interop.export_dicom_seg(target)
    ds = pydicom.dcmread(target)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    np.testing.assert_array_equal(_seg_frames_by_slice(target, s.volume), ai)
    # one brush-like change afterwards: SEMIAUTOMATIC
    _paint(w, [0], rows=slice(0, 4), cols=slice(0, 4))
    with qtbot.waitSignal(w.interop.segExported, timeout=WAIT_MS):
        w.interop.export_dicom_seg(tmp_path / "edited.seg.dcm")
    assert pydicom.dcmread(tmp_path / "edited.seg.dcm").SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"


def test_export_dicom_seg_refuses_paths_inside_the_series_and_writes_nothing(qtbot, make_window, dicom_copy):
    w = make_window(dicom_copy)
    _paint(w, [2])
    before = sorted(p.name for p in dicom_copy.iterdir())
    for target in (dicom_copy / "heart.seg.dcm", dicom_copy / "sub" / "heart.seg.dcm"):
        w.prompts.errors.clear()
        w.prompts.choose_save_file = lambda title, start="", filters="", t=target: str(t)
        w.actions.export_dicom_seg.trigger()
        assert not w.interop.busy  # refused before any job started
        assert len(w.prompts.errors) == 1
        title, message = w.prompts.errors[0]
        assert title == "Export DICOM-SEG" and "\n" not in message and "nothing was written" in message
    assert sorted(p.name for p in dicom_copy.iterdir()) == before


def test_a_series_without_uids_is_refused_before_asking_where(qtbot, make_window, abdomen_dicom):
    w = make_window(abdomen_dicom)  # opened read-only from the shared data; nothing is written
    w.prompts.choose_save_file = lambda *a, **k: pytest.fail("refused before the save dialog")
    w.actions.export_dicom_seg.trigger()
    (title, message), = w.prompts.errors
    assert title == "Export DICOM-SEG" and "\n" not in message
    assert "SOPInstanceUID" in message and Path(w.controller.session.volume.source_files[0]).name in message
    assert not w.interop.busy


def test_export_dicom_seg_is_disabled_for_a_nifti_scan_and_says_why(make_window, ct_copy):
    w = make_window(ct_copy / "ct.nii.gz")
    action = w.actions.export_dicom_seg
    assert not action.isEnabled()
    assert "DICOM series" in action.toolTip()
    assert w.actions.export.isEnabled() and w.actions.attach_mask.isEnabled()


# ------------------------------------------------------------------------------------------------ attach mask
def test_attach_a_nifti_mask_becomes_the_working_mask_in_one_undo_step(qtbot, make_window, ct_copy):
    w = make_window(ct_copy / "ct.nii.gz")
    s = w.controller.session
    assert s.editor.total_voxels() == 0
    w.controller.set_review_state("accepted")  # reviewed the empty mask of this slice
    w.prompts.choose_open_file = lambda title, start="", filters="": str(ct_copy / "heart.nii.gz")
    w.prompts.choose_label = lambda name, counts: pytest.fail("a 0/1 mask needs no label picker")
    with qtbot.waitSignal(w.interop.maskAttached, timeout=WAIT_MS):
        w.actions.attach_mask.trigger()
    # nibabel is the referee: the working mask, put back on the file's own grid, is the file's array
    raw = np.asanyarray(nib.load(str(ct_copy / "heart.nii.gz")).dataobj)
    np.testing.assert_array_equal(to_source_grid(s.editor.copy_mask(), s.volume), (raw > 0).astype(np.uint8))
    assert s.editor.total_voxels() == int((raw > 0).sum())
    assert s.ai_mask.sum() == 0  # not the AI layer
    assert "heart.nii.gz" in s.editor.undo_label and s.editor.undo_steps == 1
    changed = {k for k in range(s.n_slices) if s.editor.area_px(k)}
    assert all(s.editor.review_states[k] == "not_reviewed" for k in changed)
    assert s.editor.modified
    w.controller.undo()
    assert s.editor.total_voxels() == 0 and not s.editor.can_undo
    assert not w.prompts.errors


def write_label_map(case: Path) -> tuple[Path, np.ndarray]:
    """``case/labels.nii.gz``: the heart as label 2 and a 1000-voxel block as label 7, on the CT's grid; returns
    its path and the heart (bool, the file's array order)."""
    heart_img = nib.load(str(case / "heart.nii.gz"))
    heart = np.asanyarray(heart_img.dataobj) > 0
    labels = np.zeros(heart.shape, np.uint8)
    labels[heart] = 2
    labels[:10, :10, :10] = 7  # another structure, away from the heart
    path = case / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, heart_img.affine, heart_img.header), str(path))
    return path, heart


def test_attach_a_label_map_asks_which_label(qtbot, make_window, ct_copy):
    path, heart = write_label_map(ct_copy)
    w = make_window(ct_copy / "ct.nii.gz")
    s = w.controller.session
    asked = []
    w.prompts.choose_open_file = lambda title, start="", filters="": str(path)

    # cancelled: nothing changes
    w.prompts.choose_label = lambda name, counts: asked.append((name, dict(counts))) or None
    w.actions.attach_mask.trigger()
    qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
    wait_interop(qtbot, w)
    assert asked[0] == ("labels.nii.gz", {2: int(heart.sum()), 7: 1000})
    assert s.editor.total_voxels() == 0 and not s.editor.can_undo

    # label 2 chosen: the heart
    w.prompts.choose_label = lambda name, counts: 2
    with qtbot.waitSignal(w.interop.maskAttached, timeout=WAIT_MS):
        w.actions.attach_mask.trigger()
    np.testing.assert_array_equal(s.editor.copy_mask(), read_nifti_mask(ct_copy / "heart.nii.gz", s.volume))
    assert "label 2" in s.editor.undo_label and s.editor.undo_steps == 1
    assert "label 2" in w.statusBar().currentMessage()
    assert not w.prompts.errors


def test_label_picker_lists_label_and_voxel_count(qtbot):
    from heartseg_gui.dialogs.label_picker import LabelPickerDialog

    dialog = LabelPickerDialog("labels.nii.gz", {7: 1000, 2: 198176})
    qtbot.addWidget(dialog)
    assert dialog.rows() == ["label 2 — 198,176 voxels", "label 7 — 1,000 voxels"]
    assert dialog.chosen_label() == 2
    select_label(dialog, 7)
    assert dialog.chosen_label() == 7


@pytest.mark.parametrize("change", ["shape", "affine"])
def test_attach_a_mask_on_another_grid_is_refused_in_one_line(qtbot, make_window, ct_copy, change):
    img = nib.load(str(ct_copy / "heart.nii.gz"))
    data = np.asanyarray(img.dataobj)
    affine = img.affine.copy()
    if change == "shape":
        data = data[:, :, :-3]
    else:
        affine[:3, 3] += [0.0, 0.0, 25.0]
    other = ct_copy / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), str(other))
    w = make_window(ct_copy / "ct.nii.gz")
    w.prompts.choose_open_file = lambda title, start="", filters="": str(other)
    w.prompts.choose_label = lambda name, counts: pytest.fail("no picker for a mask on another grid")
    w.actions.attach_mask.trigger()
    qtbot.waitUntil(lambda: bool(w.prompts.errors), timeout=WAIT_MS)
    wait_interop(qtbot, w)
    (title, message), = w.prompts.errors
    assert title == "Could not attach the mask"
    assert "\n" not in message and "other_grid.nii.gz" in message and "grid" in message
    assert [b.objectName() for b in w.prompts.open_error_boxes()] == ["heartsegErrorBox"]  # a dialog, non-blocking
    assert w.controller.session.editor.total_voxels() == 0 and not w.controller.session.editor.can_undo


def test_attach_a_dicom_seg_to_its_series(qtbot, make_window, dicom_copy, tmp_path):
    w = make_window(dicom_copy)
    mask = _paint(w, [7, 8])
    seg = tmp_path / "mine.seg.dcm"
    with qtbot.waitSignal(w.interop.segExported, timeout=WAIT_MS):
        w.interop.export_dicom_seg(seg)
    w.controller.undo()
    assert w.controller.session.editor.total_voxels() == 0
    with qtbot.waitSignal(w.interop.maskAttached, timeout=WAIT_MS):
        w.interop.attach_mask(seg)
    np.testing.assert_array_equal(w.controller.session.editor.copy_mask(), mask)


# ------------------------------------------------------------------------------------------- geometry notice
def test_geometry_warnings_are_shown_in_a_non_modal_bar(qtbot, make_window, ct_copy, dicom_copy):
    img = nib.load(str(ct_copy / "ct.nii.gz"))
    hdr = img.header.copy()
    qform = img.affine.copy()
    qform[0, 3] += 40.0  # a qform 40 mm off the sform
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, hdr)
    out.set_qform(qform, code=1)
    out.set_sform(img.affine, code=2)
    odd = ct_copy / "odd.nii.gz"
    nib.save(out, str(odd))
    w = make_window(odd)
    bar = w.interop.notice
    assert bar is not None and bar.isVisible()
    assert "qform and sform disagree" in bar.text() and "odd" in bar.text()
    assert "geometry warning" in w.statusBar().currentMessage()
    assert QApplication.activeModalWidget() is None  # nothing blocks painting
    # another scan without warnings: the bar goes
    assert w.files.open_path(ct_copy / "ct.nii.gz", ask=False)
    qtbot.waitUntil(lambda: w.controller.session.volume.name == "ct" and not w.controller.is_busy(), timeout=WAIT_MS)
    assert w.interop.notice is None
    # dismissed by its button
    assert w.files.open_path(odd, ask=False)
    qtbot.waitUntil(lambda: w.interop.notice is not None, timeout=WAIT_MS)
    w.interop.notice.dismiss_button.click()
    assert w.interop.notice is None or not w.interop.notice.isVisible()


def test_a_missing_slice_is_listed_as_irregular_spacing(qtbot, make_window, dicom_copy):
    missing = sorted(dicom_copy.iterdir())[9]  # a slice gone from the middle: irregular spacing
    missing.unlink()
    w = make_window(dicom_copy)
    bar = w.interop.notice
    assert bar is not None and "irregular" in bar.text()
    assert bar.warnings and all("\n" not in line for line in bar.warnings)


# -------------------------------------------------------------------------------------------- Save for NIfTI
def _no_png_dataset(w) -> None:
    w.prompts.choose_directory = lambda *a, **k: pytest.fail("Save of a NIfTI scan must not ask for a PNG dataset")


def test_save_writes_the_mask_nifti_back_on_its_grid_and_keeps_the_old_one(qtbot, make_window, ct_copy):
    heart = ct_copy / "heart.nii.gz"
    original = heart.read_bytes()
    before = nib.load(str(heart))
    w = make_window(ct_copy / "ct.nii.gz", heart)
    _no_png_dataset(w)
    s = w.controller.session
    assert s.editor.total_voxels() == int((np.asanyarray(before.dataobj) > 0).sum())
    w.controller.set_slice(5)
    w.controller.clear_slice()
    _paint(w, [60], rows=slice(0, 6), cols=slice(0, 6))
    assert s.editor.modified
    with qtbot.waitSignal(w.files.saved, timeout=WAIT_MS):
        w.actions.save.trigger()
    assert not s.editor.modified and not w.prompts.errors
    after = nib.load(str(heart))
    # nibabel: the file's own array order, dtype and header geometry, holding the working mask
    assert after.shape == before.shape and after.get_data_dtype() == before.get_data_dtype()
    np.testing.assert_array_equal(after.affine, before.affine)
    assert (int(after.header["qform_code"]), int(after.header["sform_code"])) == \
        (int(before.header["qform_code"]), int(before.header["sform_code"]))
    np.testing.assert_array_equal(np.asanyarray(after.dataobj), to_source_grid(s.editor.copy_mask(), s.volume))
    versions = list((ct_copy / ".heartseg" / "versions" / "heart").iterdir())
    assert len(versions) == 1 and versions[0].read_bytes() == original
    assert str(heart) in w.statusBar().currentMessage()
    assert sorted(p.name for p in ct_copy.iterdir()) == [".heartseg", "ct.nii.gz", "heart.nii.gz"]
    # reopened, the scan shows the saved mask
    np.testing.assert_array_equal(read_nifti_mask(heart, s.volume), s.editor.copy_mask())


def test_save_of_a_nifti_scan_without_a_mask_asks_once_then_writes_there(qtbot, make_window, ct_copy, tmp_path):
    (ct_copy / "heart.nii.gz").unlink()
    w = make_window(ct_copy / "ct.nii.gz")
    _no_png_dataset(w)
    asked = []
    target = tmp_path / "mine"
    w.prompts.choose_save_file = lambda title, start="", filters="": asked.append(start) or str(target)
    mask = _paint(w, [40, 41])
    assert w.files.save()
    written = tmp_path / "mine.nii.gz"
    assert asked == [str(ct_copy / "ct_heart.nii.gz")]
    s = w.controller.session
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(written)).dataobj), to_source_grid(mask, s.volume))
    _paint(w, [42])
    assert w.files.save() and len(asked) == 1  # the second Save goes to the same file
    assert read_nifti_mask(written, s.volume)[42].any()
    # opened again (no mask file known): the scan itself is refused as the mask file
    assert w.files.open_path(ct_copy / "ct.nii.gz", ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not s and not w.controller.is_busy(), timeout=WAIT_MS)
    scan_bytes = (ct_copy / "ct.nii.gz").read_bytes()
    w.prompts.choose_save_file = lambda *a, **k: str(ct_copy / "ct.nii.gz")
    _paint(w, [3])
    assert not w.files.save()
    (title, message), = w.prompts.errors
    assert "nothing was written" in message and "\n" not in message
    assert (ct_copy / "ct.nii.gz").read_bytes() == scan_bytes


def test_save_after_attaching_a_label_map_writes_its_label_back(qtbot, make_window, ct_copy):
    heart_img = nib.load(str(ct_copy / "heart.nii.gz"))
    heart = np.asanyarray(heart_img.dataobj) > 0
    labels = np.zeros(heart.shape, np.uint8)
    labels[heart] = 2
    labels[:10, :10, :10] = 7
    path = ct_copy / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, heart_img.affine, heart_img.header), str(path))
    w = make_window(ct_copy / "ct.nii.gz")
    _no_png_dataset(w)
    w.prompts.choose_label = lambda name, counts: 2
    with qtbot.waitSignal(w.interop.maskAttached, timeout=WAIT_MS):
        w.interop.attach_mask(path)
    s = w.controller.session
    w.controller.set_slice(int(np.flatnonzero(s.editor.copy_mask().reshape(s.n_slices, -1).any(1))[0]))
    w.controller.clear_slice()
    assert w.files.save()
    saved = np.asanyarray(nib.load(str(path)).dataobj)
    np.testing.assert_array_equal(saved == 2, to_source_grid(s.editor.copy_mask(), s.volume) > 0)
    assert int((saved == 7).sum()) == 1000  # the other label is kept
    assert (saved == 2).sum() < heart.sum()


def test_save_of_a_nifti_dataset_case_writes_its_labels_file(qtbot, make_window, chest_crop, tmp_path):
    root = tmp_path / "Task01"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    shutil.copy2(chest_crop / "ct.nii.gz", root / "imagesTr" / "case1_0000.nii.gz")
    shutil.copy2(chest_crop / "heart.nii.gz", root / "labelsTr" / "case1.nii.gz")
    w = make_window()
    _no_png_dataset(w)
    w.controller.open_dataset(root)
    w.controller.open_patient(w.controller.dataset.pids[0])
    wait_open(qtbot, w)
    s = w.controller.session
    assert s.volume.kind == "nifti" and s.editor.total_voxels() > 0
    w.controller.set_slice(60)
    w.controller.clear_slice()
    assert w.files.save()
    label = root / "labelsTr" / "case1.nii.gz"
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(label)).dataobj),
                                  to_source_grid(s.editor.copy_mask(), s.volume))
    assert (root / "labelsTr" / ".heartseg" / "versions" / "case1").is_dir()
    assert w.controller.dataset.pids == [w.controller.patient_id]  # the version folder is no new case


def test_save_of_the_bundled_sample_never_writes_into_the_package(qtbot, make_window, tmp_path):
    from core import resources

    w = make_window(resources.sample_scan_path(), resources.sample_mask_path())
    before = resources.sample_mask_path().read_bytes()
    w.prompts.choose_save_file = lambda *a, **k: pytest.fail("the sample goes to a dataset, as before")
    w.prompts.choose_directory = lambda *a, **k: None  # the "add to which dataset?" question, cancelled
    _paint(w, [10])
    assert w.files.save() is False
    assert resources.sample_mask_path().read_bytes() == before
    assert not (resources.sample_dir() / ".heartseg").exists()


def test_save_keeps_a_mask_file_stored_in_another_array_order_in_that_order(qtbot, make_window, ct_copy):
    """The scan is L-P-S; its mask file, on the same world grid, is stored R-A-S (flipped x and y): Save writes
    the file's own order back, so numpy pairs it with its old self and nibabel's world Dice is unchanged."""
    img = nib.load(str(ct_copy / "heart.nii.gz"))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [img.shape[0] - 1, img.shape[1] - 1]
    ras_affine = img.affine @ flip
    ras = np.ascontiguousarray(np.asanyarray(img.dataobj)[::-1, ::-1, :])
    path = ct_copy / "heart_ras.nii.gz"
    nib.save(nib.Nifti1Image(ras, ras_affine), str(path))
    assert nib.aff2axcodes(nib.load(str(path)).affine) == ("R", "A", "S")
    w = make_window(ct_copy / "ct.nii.gz", path)
    s = w.controller.session
    assert s.editor.total_voxels() == int(ras.astype(bool).sum())
    w.controller.set_slice(60)
    w.controller.clear_slice()
    assert w.files.save()
    saved = nib.load(str(path))
    np.testing.assert_array_equal(saved.affine, ras_affine)
    expected = to_source_grid(s.editor.copy_mask(), s.volume)[::-1, ::-1, :]  # scan order -> the file's order
    np.testing.assert_array_equal(np.asanyarray(saved.dataobj), expected)


def test_policy_enables_dicom_seg_export_only_for_dicom_scans():
    from heartseg_gui.actions import DICOM_SEG_NEEDS_DICOM, ActionPolicy, WindowState

    policy = ActionPolicy()
    assert not policy.verdict("export_dicom_seg", WindowState()).enabled
    for kind in ("nifti", "kaggle_patient", "png_folder"):
        verdict = policy.verdict("export_dicom_seg", WindowState(session_open=True, scan_kind=kind))
        assert not verdict.enabled and verdict.reason == DICOM_SEG_NEEDS_DICOM
    assert policy.verdict("export_dicom_seg", WindowState(session_open=True, scan_kind="dicom")).enabled
    # exporting reads the scan only: a read-only scan may export; attaching changes the mask: it may not
    read_only = WindowState(session_open=True, scan_kind="dicom", read_only_reason="held by pid 42")
    assert policy.verdict("export_dicom_seg", read_only).enabled
    assert not policy.verdict("attach_mask", read_only).enabled


def test_attach_a_nifti_mask_to_a_dicom_series(qtbot, make_window, dicom_copy, tmp_path):
    """The NIfTI heartseg (and SimpleITK / dcm2niix) writes for a DICOM series attaches back voxel for voxel."""
    from core.io import write_mask_nifti

    w = make_window(dicom_copy)
    mask = _paint(w, [6, 12])
    path = tmp_path / "series_heart.nii.gz"
    write_mask_nifti(path, mask, w.controller.session.volume)
    w.controller.undo()
    with qtbot.waitSignal(w.interop.maskAttached, timeout=WAIT_MS):
        w.interop.attach_mask(path)
    np.testing.assert_array_equal(w.controller.session.editor.copy_mask(), mask)
    assert not w.prompts.errors


def test_opening_a_scan_with_a_label_map_asks_which_label(qtbot, make_window, ct_copy):
    """File ▸ Open of a NIfTI with a label map of several labels: the picker, not the '--label N' error."""
    path, heart = write_label_map(ct_copy)
    w = make_window()
    asked = []
    w.prompts.choose_label = lambda name, counts: asked.append((name, dict(counts))) or None
    assert w.files.open_path(ct_copy / "ct.nii.gz", path, ask=False)
    qtbot.waitUntil(lambda: bool(asked) and not w.controller.is_busy(), timeout=WAIT_MS)
    assert asked == [("labels.nii.gz", {2: int(heart.sum()), 7: 1000})]
    assert w.controller.session is None and not w.prompts.errors  # cancelled: nothing opened, no error dialog

    w.prompts.choose_label = lambda name, counts: 2
    assert w.files.open_path(ct_copy / "ct.nii.gz", path, ask=False)
    wait_open(qtbot, w)
    s = w.controller.session
    np.testing.assert_array_equal(s.volume.mask, read_nifti_mask(ct_copy / "heart.nii.gz", s.volume))
    assert not w.prompts.errors
