"""Per-slice review states for :class:`core.editing.MaskEditor`.

Each slice is ``"not_reviewed"`` until the radiologist accepts it, corrects it (painting or a slice tool does this
automatically unless the slice is flagged) or flags it for a second look.
"""

from __future__ import annotations

from typing import Optional, Sequence

from core.types import REVIEW_STATES  # the states, in the order the GUI offers them


def check_state(state: str) -> str:
    """Return ``state`` if it is one of :data:`REVIEW_STATES`, else raise ``ValueError``."""
    if state not in REVIEW_STATES:
        raise ValueError(f"review state must be one of {REVIEW_STATES}, got {state!r}")
    return state


def next_with_state(states: Sequence[str], start: int, direction: int = +1, *, wrap: bool = False,
                    wanted: str = "not_reviewed") -> Optional[int]:
    """The nearest index after ``start`` (before it with ``direction=-1``) whose state is ``wanted``.

    ``start`` itself is skipped (``-1`` / ``len(states)`` search from either end). With ``wrap`` the search goes
    round, ending at ``start``. Returns ``None`` when there is none.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    n = len(states)
    start = int(start)
    for k in range(1, n + 1):
        i = start + direction * k
        if wrap:
            i %= n
        elif not 0 <= i < n:
            return None
        if states[i] == wanted:
            return i
    return None


class ReviewStatesMixin:
    """:class:`core.editing.MaskEditor`'s review-state methods (its ``_review``, ``_saved_review``, ``_shape``
    and ``_check_index``)."""

    @property
    def review_states(self) -> list[str]:
        """A copy of every slice's review state."""
        return list(self._review)

    def review_state(self, i: int) -> str:
        return self._review[self._check_index(i)]

    def set_review_state(self, i: int, state: str) -> None:
        """Set slice ``i``'s review state (one of :data:`REVIEW_STATES`); not an undo step."""
        self._review[self._check_index(i)] = check_state(state)

    def load_review_states(self, states: Sequence[str]) -> None:
        """The review states last saved (read from the dataset's sidecar on open): set for every slice without
        counting as an unsaved change, so the next save merges onto them instead of resetting them."""
        states = [check_state(str(s)) for s in states]
        if len(states) != self._shape[0]:
            raise ValueError(f"{len(states)} review states for {self._shape[0]} slices")
        self._review = list(states)
        self._saved_review = list(states)

    def next_unreviewed(self, start: int, direction: int = +1, *, wrap: bool = False) -> Optional[int]:
        """The nearest slice after ``start`` (before it with ``direction=-1``) that is ``"not_reviewed"``.

        ``start`` itself is skipped (``-1`` / ``n_slices`` search from either end); ``wrap`` goes round the
        volume. Returns ``None`` when there is none.
        """
        return next_with_state(self._review, start, direction, wrap=wrap)
