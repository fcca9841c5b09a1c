"""The non-modal notice of what the reader flagged about a scan's geometry (irregular slice spacing, merged
series, a non-axial series, qform / sform disagreement): a bar in the status bar, like the "Use the new model?"
bar (:mod:`~heartseg_gui.dialogs.activate_bar`).

A modal box on opening would take the focus from the slice (keys meant for it would close the box); the bar
takes no focus, lists every warning (one line each in its tooltip), and stays until dismissed or until another
scan opens.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class GeometryNoticeBar(QFrame):
    """``warnings`` (one line each, :func:`core.io.geometry_warnings`) of scan ``name``; "Dismiss" hides it."""

    dismissed = Signal()

    def __init__(self, name: str, warnings: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("geometryNoticeBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.warnings = list(warnings)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        head = f"Geometry of {name}: " if len(self.warnings) == 1 else f"Geometry of {name} ({len(self.warnings)}): "
        self.label = QLabel(head + " · ".join(self.warnings))
        self.label.setToolTip("\n".join(f"• {w}" for w in self.warnings))
        self.label.setWordWrap(True)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.dismiss_button.setAutoDefault(False)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.dismiss_button)
        self.dismiss_button.clicked.connect(self._dismiss)

    def text(self) -> str:
        return self.label.text()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
        self.deleteLater()
