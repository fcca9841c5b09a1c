"""Mask editing: :class:`MaskEditor`, the one owner of an editable mask (undo/redo, strokes, slice tools, review
states, journal payloads). The ``_``-prefixed modules are its private helpers."""

from core.editing._brush import line_points
from core.editing._history import Region
from core.editing._review import REVIEW_STATES
from core.editing._threshold import intensity_limit, range_around
from core.editing.editor import MaskEditor

__all__ = ["MaskEditor", "REVIEW_STATES", "Region", "intensity_limit", "line_points", "range_around"]
