"""Retraining in the window (heartseg_gui.controllers.retraining), offscreen with pytest-qt: the menu entries, the dialog's counts,
a tiny run through the QThread worker (progress in the dock, a registered version, old vs new asked before
activation, predictions held off meanwhile), cancel through the worker, and Model ▸ Versions rollback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from core.store.dataset import open_dataset, set_review_states  # noqa: E402
from core.versions.registry import ModelRegistry, default_registry_dir  # noqa: E402
from core.versions.retrain import RetrainRequest  # noqa: E402
from tests.core.versions.test_retraining import PIDS, TINY, make_kaggle_root, make_tiny_model  # noqa: E402
from tests.helpers import select_version  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.shared, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 120_000


def test_retrain_package_imports_no_tensorflow():
    code = ("import sys; import heartseg_gui.controllers.retraining, heartseg_gui.dialogs.retrain_dialog, "
            "heartseg_gui.widgets.retrain_dock, heartseg_gui.dialogs.versions_dialog, heartseg_gui.jobs, "
            "core.versions.retrain, core.versions.registry; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60,
                   env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def assets(tmp_path_factory, kaggle_patient):
    tmp = tmp_path_factory.mktemp("gui_retrain")
    return {"kaggle_patient": kaggle_patient, "base": make_tiny_model(tmp / "bundled" / "v0.keras"), "tmp": tmp}


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, assets):
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    from heartseg_gui.controllers.retraining import install_retraining
    from heartseg_gui.main_window import MainWindow
    from heartseg_gui.state import settings as st

    w = MainWindow(settings=st.make_settings())
    qtbot.addWidget(w)
    w.controller.set_model(assets["base"])
    root = make_kaggle_root(tmp_path / "ct-heart", assets["kaggle_patient"])
    for pid in PIDS:
        set_review_states(open_dataset(root).patient_dir(pid), {"1-002": "corrected", "1-005": "flagged"})
    w.controller.open_dataset(root)
    ui = install_retraining(w, w.controller, base_model=assets["base"], base_config=TINY)
    ui.manager.asked = []
    yield w, ui, root
    w.controller.shutdown()


def _model_menu_texts(w):
    for action in w.menuBar().actions():
        if action.text().replace("&", "") == "Model":
            return [a.text().replace("&", "") for a in action.menu().actions()]
    return []


def test_menu_and_dialog_count_corrected_slices(window, qtbot):
    w, ui, root = window
    assert {"Retrain…", "Versions…"} <= set(_model_menu_texts(w))
    dialog = ui.open_retrain_dialog()
    assert dialog.isVisible() and dialog.dataset_root == root
    assert "2 of them corrected, weighted ×2" in dialog.summary.text()
    assert "2 flagged slice(s) left out" not in dialog.summary.text()  # 3 patients -> 3 flagged
    assert "3 flagged slice(s) left out" in dialog.summary.text()
    req = dialog.request()
    assert req.val_patients is None and req.init_version == 0 and req.config.corrected_weight == 2.0
    # choose the held-out patients by hand: the counts follow
    dialog.fixed_split.setChecked(False)
    for i in range(dialog.patients.count()):
        item = dialog.patients.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text() in ("p01", "p02") else Qt.CheckState.Unchecked)
    assert dialog.request().val_patients == ["p01", "p02"]
    assert "1 of them corrected" in dialog.summary.text()
    dialog.weight_check.setChecked(False)
    dialog.scratch.setChecked(True)
    req = dialog.request()
    assert req.config.corrected_weight == 1.0 and req.init_version is None and req.config.epochs == TINY.epochs
    assert req.config.learning_rate == pytest.approx(TINY.learning_rate) and req.config.batch_size == TINY.batch_size
    dialog.learning_rate.setValue(5e-5)
    dialog.batch_size.setValue(4)
    dialog.geometric.setCurrentIndex(dialog.geometric.findData("strong"))
    req = dialog.request()
    assert req.config.learning_rate == pytest.approx(5e-5) and req.config.batch_size == 4
    assert req.config.geometric == "strong"
    dialog.reject()
    assert not (root / ".heartseg" / "models" / "split.json").exists()  # the preview fixes nothing


def test_worker_run_registers_asks_and_activates_then_rollback(window, qtbot, assets):
    w, ui, root = window
    m = ui.manager
    asked = []
    m.ask_activate = lambda outcome: asked.append(outcome) or True
    request = RetrainRequest(root, TINY, registry_dir=default_registry_dir(root), init_version=0,
                             base_model=assets["base"])
    c = w.controller
    ds = open_dataset(root)
    c.set_volume(ds.load("p01"))  # a prediction is running: the retraining waits for it
    assert c.is_busy("predict")
    assert m.start(request)
    assert m.running and not m.dock.isHidden() and m.job is None
    qtbot.waitUntil(lambda: m.job is not None, timeout=WAIT_MS)
    c.set_volume(ds.load("p02"))  # while training runs, the new scan's prediction waits
    assert not c.is_busy("predict") and not c.session.prediction_complete
    assert not w.actions.run_prediction.isEnabled() and not w.actions.load_model.isEnabled()
    assert "one model job at a time" in w.actions.load_model.toolTip()
    assert not ui.retrain_action.isEnabled()
    qtbot.waitUntil(lambda: not m.running, timeout=WAIT_MS)
    assert not w.prompts.errors, w.prompts.errors
    panel = m.dock.panel
    assert len(panel.loss.data["val"][0]) == 2 and len(panel.dice.data["train"][0]) == 2
    assert len(panel.loss.data["batch"][0]) == 4 and panel.epoch_bar.value() == 2
    assert "pooled Dice" in panel.result_label.text()
    # asked with old vs new on the same held-out patients, then switched
    (outcome,) = asked
    assert outcome.version == 1 and outcome.old_metrics["patients"] == outcome.new_metrics["patients"]
    reg = ModelRegistry(default_registry_dir(root), base_model=assets["base"])
    assert reg.active_version() == 1 and w.controller.model_path == reg.folder / "v1.keras"
    assert reg.get(1).record["validation"]["pooled_dice"] is not None
    assert w.actions.load_model.isEnabled() and ui.retrain_action.isEnabled()
    assert w.controller.auto_predict
    qtbot.waitUntil(lambda: c.session.prediction_complete and not c.is_busy(), timeout=WAIT_MS)  # it ran after

    dialog = ui.open_versions_dialog()
    assert dialog.table.rowCount() == 2 and dialog.table.item(1, 1).text() == "●"
    dialog.rollback()
    assert reg.active_version() == 0 and w.controller.model_path == assets["base"]
    select_version(dialog, 1)
    dialog.activate_selected()
    assert reg.active_version() == 1 and w.controller.model_path == reg.folder / "v1.keras"
    dialog.accept()
    qtbot.waitUntil(lambda: not c.is_busy() and c.session.prediction_complete, timeout=WAIT_MS)


def test_cancel_through_the_worker_keeps_nothing(window, qtbot, assets):
    w, ui, root = window
    m = ui.manager
    outcomes = []
    m.finished.connect(lambda outcome, detail: outcomes.append(outcome))
    m.ask_activate = lambda outcome: pytest.fail("a cancelled run must not ask")
    config = dataclasses.replace(TINY, epochs=5)
    request = RetrainRequest(root, config, registry_dir=default_registry_dir(root), init_version=None,
                             base_model=assets["base"])
    m.start(request)
    m.job.progress.connect(lambda item: m.cancel())  # cancel at the first progress report
    qtbot.waitUntil(lambda: not m.running, timeout=WAIT_MS)
    assert outcomes == ["cancelled"]
    reg = ModelRegistry(default_registry_dir(root), base_model=assets["base"])
    assert reg.version_numbers() == [0] and reg.active_version() == 0
    assert not list(reg.folder.glob(".training-*")) and not list(reg.folder.glob("v*.keras"))
    assert "cancelled" in m.dock.panel.stage_label.text() and w.actions.load_model.isEnabled()
    assert w.controller.model_path == assets["base"]


@pytest.mark.gui
def test_main_window_has_retraining_menu_once(qtbot):
    from heartseg_gui.controllers.retraining import install_retraining
    from heartseg_gui.main_window import MainWindow
    from heartseg_gui.state import settings as st

    w = MainWindow(settings=st.make_settings())
    qtbot.addWidget(w)
    assert install_retraining(w) is w.retraining  # idempotent
    names = [a.objectName() for a in w.findChildren(type(w.retraining.retrain_action))]
    assert names.count("retrainAction") == 1 and names.count("versionsAction") == 1
    w.close()


def test_closing_the_window_during_retraining_cancels_it_and_keeps_nothing(window, qtbot, assets):
    """Issue 5: closing the window while a training job runs cancels it and waits for the thread (no
    'QThread destroyed while running' abort); no version is registered."""
    w, ui, root = window
    m = ui.manager
    long = dataclasses.replace(TINY, epochs=50)
    request = RetrainRequest(root, long, registry_dir=default_registry_dir(root), init_version=0,
                             base_model=assets["base"])
    assert m.start(request)
    qtbot.waitUntil(lambda: m.job is not None and m.dock.panel.batch_bar.value() > 0, timeout=WAIT_MS)
    w.files.has_unsaved = lambda: False
    w.close()  # returns only once every job thread has stopped
    assert w.controller.runner.jobs == []
    reg = ModelRegistry(default_registry_dir(root), base_model=assets["base"])
    assert reg.version_numbers() in ([], [0])
    assert not list(reg.folder.glob("v1*"))
