"""Model ▸ Retrain…: dataset, start point (active model or scratch), epochs, learning rate, batch size,
augmentation, corrected-slice weight, held-out patients (default: the registry's fixed split), and how many
corrected slices will be used.

The counts come from :func:`core.versions.retrain.plan_retraining` (folder listings and review sidecars only, no
TensorFlow), recomputed whenever an option changes. :meth:`RetrainDialog.request` returns the
:class:`core.versions.retrain.RetrainRequest` to run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import HeartsegError
from core.store.dataset import open_dataset
from core.training.config import FINE_TUNE_EPOCHS, TrainConfig
from core.versions.registry import ModelRegistry, default_registry_dir
from core.versions.retrain import DEFAULT_CORRECTED_WEIGHT, RetrainRequest, plan_retraining


class RetrainDialog(QDialog):
    """``base_config``: the recipe the options are applied to (default: :class:`TrainConfig` with
    :data:`~core.training.config.FINE_TUNE_EPOCHS` epochs, a fine-tune);
    ``base_model``: version 0's file (None: the bundled model); ``choose_directory(title, start)`` picks a
    dataset folder (the window's :class:`~heartseg_gui.dialogs.prompts.Prompts`)."""

    def __init__(self, dataset_root: Optional[Path], *, base_config: Optional[TrainConfig] = None,
                 base_model: Optional[Path] = None, unsaved: bool = False,
                 choose_directory: Optional[Callable] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Retrain the model from corrections")
        self.setObjectName("retrainDialog")
        self.base_config = base_config or TrainConfig(epochs=FINE_TUNE_EPOCHS)
        self.base_model = base_model
        self._choose_directory = choose_directory
        self.plan = None
        self._registry: Optional[ModelRegistry] = None

        self.dataset_edit = QLineEdit(str(dataset_root) if dataset_root else "")
        self.dataset_edit.setPlaceholderText("a dataset folder (data/train/<patient>/image|mask)")
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose_dataset)
        row = QHBoxLayout()
        row.addWidget(self.dataset_edit, 1)
        row.addWidget(choose)
        self.fine_tune = QRadioButton("Fine-tune the active model")
        self.scratch = QRadioButton("Train from scratch")
        self.fine_tune.setChecked(True)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(int(self.base_config.epochs))
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(1e-6, 1e-2)
        self.learning_rate.setSingleStep(1e-5)
        self.learning_rate.setValue(float(self.base_config.learning_rate))
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 128)
        self.batch_size.setValue(int(self.base_config.batch_size))
        self.geometric = QComboBox()
        for level, text in (("none", "photometric only (the seed recipe)"), ("mild", "+ mild geometric"),
                            ("strong", "+ strong geometric (zoom out, rotate, shift)")):
            self.geometric.addItem(text, level)
        self.geometric.setCurrentIndex(max(0, self.geometric.findData(self.base_config.geometric)))
        self.weight_check = QCheckBox("Weight corrected slices higher")
        self.weight_check.setChecked(True)
        self.weight = QDoubleSpinBox()
        self.weight.setRange(1.0, 20.0)
        self.weight.setSingleStep(0.5)
        self.weight.setValue(DEFAULT_CORRECTED_WEIGHT)
        wrow = QHBoxLayout()
        wrow.addWidget(self.weight_check)
        wrow.addWidget(self.weight)
        self.fixed_split = QCheckBox("Hold out the fixed validation patients (the same for every version)")
        self.fixed_split.setChecked(True)
        self.patients = QListWidget()
        self.patients.setMaximumHeight(140)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("retrainSummary")
        self.warning = QLabel("Unsaved corrections in the open scan are not used — save them first (File ▸ Save)."
                              if unsaved else "")
        self.warning.setStyleSheet("color: #b35c00")
        self.warning.setWordWrap(True)
        self.warning.setVisible(unsaved)

        form = QFormLayout()
        form.addRow("Dataset", row)
        form.addRow("Start from", self.fine_tune)
        form.addRow("", self.scratch)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Augmentation", self.geometric)
        form.addRow("Corrections", wrow)
        form.addRow("Validation", self.fixed_split)
        form.addRow("Held-out patients", self.patients)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start retraining")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.warning)
        layout.addWidget(self.buttons)

        self.dataset_edit.editingFinished.connect(self._reload)
        self.fixed_split.toggled.connect(self._on_fixed_toggled)
        self.patients.itemChanged.connect(lambda _item: self.refresh())
        self.weight_check.toggled.connect(self.weight.setEnabled)
        self.weight_check.toggled.connect(lambda _on: self.refresh())
        self.weight.valueChanged.connect(lambda _v: self.refresh())
        self._reload()

    # --- state ---------------------------------------------------------------------------------------------------
    @property
    def dataset_root(self) -> Optional[Path]:
        text = self.dataset_edit.text().strip()
        return Path(text) if text else None

    def _choose_dataset(self) -> None:
        if self._choose_directory is None:
            return
        path = self._choose_directory("Dataset to retrain on", str(self.dataset_root or ""))
        if path:
            self.dataset_edit.setText(str(path))
            self._reload()

    def _reload(self) -> None:
        """A new dataset: fill the patient list (checked = held out, from the registry's split) and recount."""
        self.patients.blockSignals(True)
        self.patients.clear()
        self._registry = None
        root = self.dataset_root
        if root is not None:
            try:
                dataset = open_dataset(root)
                self._dataset = dataset
                self._registry = ModelRegistry(default_registry_dir(dataset.root), base_model=self.base_model)
                active = self._registry.active_version()
                self.fine_tune.setText(f"Fine-tune the active model (v{active})")
                plan = plan_retraining(dataset, self._registry)
                for pid in plan.train_pids + plan.val_pids:
                    item = QListWidgetItem(pid)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked if pid in plan.val_pids else Qt.CheckState.Unchecked)
                    self.patients.addItem(item)
                self.patients.sortItems()
            except HeartsegError as exc:
                self._registry = None
                self._set_summary(None, str(exc))
        self.patients.blockSignals(False)
        self._on_fixed_toggled(self.fixed_split.isChecked())

    def _on_fixed_toggled(self, on: bool) -> None:
        self.patients.setEnabled(not on)
        if on and self._registry is not None:
            self.patients.blockSignals(True)
            try:
                plan = plan_retraining(self._dataset, self._registry)
                for i in range(self.patients.count()):
                    item = self.patients.item(i)
                    item.setCheckState(Qt.CheckState.Checked if item.text() in plan.val_pids
                                       else Qt.CheckState.Unchecked)
            except HeartsegError:
                pass
            self.patients.blockSignals(False)
        self.refresh()

    def held_out(self) -> Optional[list[str]]:
        """None: the registry's fixed split; else the ticked patients."""
        if self.fixed_split.isChecked():
            return None
        return [self.patients.item(i).text() for i in range(self.patients.count())
                if self.patients.item(i).checkState() == Qt.CheckState.Checked]

    def corrected_weight(self) -> float:
        return float(self.weight.value()) if self.weight_check.isChecked() else 1.0

    def refresh(self) -> None:
        """Recount (no TensorFlow): the summary line and whether Start is possible."""
        if self._registry is None:
            if self.dataset_root is None:
                self._set_summary(None, "Choose a dataset with at least two patients with masks.")
            return
        try:
            self.plan = plan_retraining(self._dataset, self._registry, val_patients=self.held_out())
        except HeartsegError as exc:
            self._set_summary(None, str(exc))
            return
        self._set_summary(self.plan, self.plan.summary(self.corrected_weight()))

    def _set_summary(self, plan, text: str) -> None:
        self.plan = plan
        self.summary.setText(text)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(plan is not None)

    def request(self) -> RetrainRequest:
        """The retraining the options describe (raises :class:`HeartsegError` when no dataset fits)."""
        if self.plan is None or self._registry is None:
            raise HeartsegError(self.summary.text() or "choose a dataset first")
        config = dataclasses.replace(self.base_config, epochs=int(self.epochs.value()),
                                     learning_rate=float(self.learning_rate.value()),
                                     batch_size=int(self.batch_size.value()),
                                     geometric=str(self.geometric.currentData()),
                                     corrected_weight=self.corrected_weight())
        init = self._registry.active_version() if self.fine_tune.isChecked() else None
        return RetrainRequest(Path(self._dataset.root), config, registry_dir=self._registry.folder,
                              init_version=init, compare_version=None, val_patients=self.held_out(),
                              base_model=self.base_model)
