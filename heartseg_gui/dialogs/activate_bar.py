"""The non-modal "Use the new model?" question after a retraining: a bar in the status bar with two buttons.

A modal box popping up while the radiologist paints would swallow the keys meant for the slice; the bar takes no
focus (its buttons are clicked, never focused) and stays until answered or replaced by the next run's bar.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class ActivateModelBar(QFrame):
    """``text`` and the buttons "Use vN" (:attr:`accepted`) and "Keep the current model" (:attr:`declined`); either
    answer hides the bar."""

    accepted = Signal()
    declined = Signal()

    def __init__(self, version: int, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("activateNewModelBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        self.label = QLabel(text)
        self.label.setToolTip(text)
        self.use_button = QPushButton(f"Use v{version}")
        self.keep_button = QPushButton("Keep the current model")
        for b in (self.use_button, self.keep_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setAutoDefault(False)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.use_button)
        layout.addWidget(self.keep_button)
        self.use_button.clicked.connect(lambda: self._answer(self.accepted))
        self.keep_button.clicked.connect(lambda: self._answer(self.declined))

    def _answer(self, signal) -> None:
        self.hide()
        signal.emit()
        self.deleteLater()
