"""Crash-recovery journal payloads for :class:`core.editing.MaskEditor`.

A payload is a JSON-serialisable ``dict`` (so the caller may write it with ``json.dumps`` through
:mod:`core.atomic`) holding the working masks of the slices that differ from the last saved state, plus every
slice's review state::

    {"format": "heartseg-mask-journal", "version": 1,
     "shape": [n_slices, rows, cols],
     "revision": 123,                      # the editor's revision when written (informational)
     "review_states": ["not_reviewed", ...],   # one per slice
     "slices": [{"index": 12, "bits": "<base64>"}, ...]}

``bits`` is the slice's ``(rows, cols)`` 0/1 mask, row-major, packed 8 pixels per byte with ``np.packbits``,
zlib-compressed, then base64-encoded. Applying a payload to an editor that holds the saved mask (the one on
disk) reproduces the working state exactly.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Iterable, Optional

import numpy as np

from core.editing._history import Region
from core.errors import HeartsegError
from core.types import REVIEW_STATES

JOURNAL_FORMAT = "heartseg-mask-journal"
JOURNAL_VERSION = 1


def encode_slice(mask2d: np.ndarray) -> str:
    """Pack a ``(rows, cols)`` 0/1 mask into the journal's base64 text."""
    raw = np.packbits(mask2d != 0, axis=None).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_slice(text: str, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`encode_slice`: a ``(rows, cols)`` uint8 0/1 array."""
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, zlib.error, ValueError, AttributeError) as exc:
        raise HeartsegError(f"the edit journal is damaged ({exc})") from exc
    if len(raw) * 8 < rows * cols:
        raise HeartsegError("the edit journal is damaged (a slice mask is too short)")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=rows * cols)
    return bits.reshape(rows, cols)


def build_payload(mask: np.ndarray, slices: Iterable[int], review_states: list[str], revision: int,
                  encode=encode_slice) -> dict:
    """Journal payload for ``mask`` (``(n, rows, cols)`` uint8 0/1) restricted to ``slices``.

    ``encode(i) -> str`` may be given to reuse earlier encodings (default: :func:`encode_slice` of ``mask[i]``).
    """
    if encode is encode_slice:
        encode = lambda i: encode_slice(mask[i])  # noqa: E731
    return {
        "format": JOURNAL_FORMAT,
        "version": JOURNAL_VERSION,
        "shape": [int(s) for s in mask.shape],
        "revision": int(revision),
        "review_states": list(review_states),
        "slices": [{"index": int(i), "bits": encode(int(i))} for i in sorted(slices)],
    }


def parse_payload(payload: dict, shape: tuple[int, int, int], valid_states: tuple[str, ...]
                  ) -> tuple[dict[int, np.ndarray], list[str]]:
    """Validate a payload against an editor of ``shape``; return ``({slice: mask2d}, review_states)``.

    Raises :class:`HeartsegError` with a one-line reason when the payload is not a journal, has another version,
    was written for a scan of another size, or is damaged.
    """
    if not isinstance(payload, dict) or payload.get("format") != JOURNAL_FORMAT:
        raise HeartsegError("not a heartseg edit journal")
    if payload.get("version") != JOURNAL_VERSION:
        raise HeartsegError(f"edit journal version {payload.get('version')!r} is not supported "
                            f"(this heartseg reads version {JOURNAL_VERSION})")
    jshape = tuple(int(s) for s in payload.get("shape", ()))
    if jshape != tuple(shape):
        raise HeartsegError(f"the edit journal was written for a {jshape} mask, but this scan is {tuple(shape)}")
    n, rows, cols = shape
    states = list(payload.get("review_states", []))
    if len(states) != n or any(s not in valid_states for s in states):
        raise HeartsegError("the edit journal is damaged (bad review states)")
    masks: dict[int, np.ndarray] = {}
    for item in payload.get("slices", []):
        try:
            i = int(item["index"])
            text = item["bits"]
        except (KeyError, TypeError, ValueError) as exc:
            raise HeartsegError("the edit journal is damaged (bad slice entry)") from exc
        if not 0 <= i < n:
            raise HeartsegError(f"the edit journal is damaged (slice {i} out of range)")
        masks[i] = decode_slice(text, rows, cols)
    return masks, states


class JournalMixin:
    """:class:`core.editing.MaskEditor`'s crash-recovery journal methods (its mask, strokes, per-slice revisions,
    review states and the undoable ``_apply_new``)."""

    def journal_payload(self) -> dict:
        """JSON-serialisable snapshot of the unsaved work: the masks of :attr:`changed_slices` (including an open
        stroke), every review state and the revision. See :mod:`core.editing._journal` for the format."""
        return build_payload(self._mask, self.changed_slices, self._review, self.revision, self._encoded_slice)

    def _encoded_slice(self, i: int) -> str:
        """Journal text of slice ``i``, re-encoded only when its content revision changed since the last journal
        (the journal runs every few seconds on the GUI thread: after "accept AI on all slices" only the slices
        edited since are encoded again). A slice under an open stroke is always encoded afresh."""
        rev = int(self._slice_rev[i])
        cached = self._journal_cache.get(i)
        if self._stroke is not None and self._stroke.slice_index == i \
                or self._plane_stroke is not None and i in self._plane_stroke.touched_slices():
            return encode_slice(self._mask[i])
        if cached is None or cached[0] != rev:
            cached = (rev, encode_slice(self._mask[i]))
            self._journal_cache[i] = cached
        return cached[1]

    def apply_journal(self, payload: dict) -> list[Region]:
        """Restore a :meth:`journal_payload` onto this editor, which must hold the saved mask it was written
        against. The mask change is one undo step ("Recover unsaved edits"); review states are set directly.
        Raises :class:`~core.errors.HeartsegError` for a damaged or mismatched journal."""
        masks, states = parse_payload(payload, self._shape, REVIEW_STATES)
        self._finish_stroke()
        diffs = [d for i, m in sorted(masks.items())
                 if (d := self._make_diff(i, self._mask[i], m, 0, 0)) is not None]
        regions = self._apply_new("Recover unsaved edits", diffs, auto_correct=False)
        self._review = states
        return regions

    @classmethod
    def from_journal(cls, payload: dict, initial: Optional[np.ndarray] = None, **kwargs) -> "JournalMixin":
        """A new editor over the saved mask ``initial`` (``None``: empty) with ``payload`` applied."""
        shape = tuple(int(s) for s in payload.get("shape", ())) if isinstance(payload, dict) else ()
        if initial is not None:
            shape = np.asarray(initial).shape
        if len(shape) != 3:
            raise HeartsegError("not a heartseg edit journal (no mask shape)")
        editor = cls(shape, initial, **kwargs)  # type: ignore[arg-type]
        editor.apply_journal(payload)
        return editor
