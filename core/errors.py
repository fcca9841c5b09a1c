"""The project's one documented error type.

Every problem a user can act on (a bad file, a missing folder, a model that does not fit) is raised as
:class:`HeartsegError` with a one-line message that names the file and the problem. The CLI prints that line
to stderr and exits non-zero; the window shows it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class HeartsegError(Exception):
    """A user-facing error: ``str(err)`` is one line, ``<path>: <problem>`` when a file is involved."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        text = " ".join(str(message).split())  # always one line
        where = None if self.path is None else "".join(  # a file name with a newline cannot add a line either
            c if ord(c) >= 32 and ord(c) != 127 else repr(c)[1:-1] for c in str(self.path))
        super().__init__(f"{where}: {text}" if where is not None else text)


class LabelChoiceNeeded(HeartsegError):
    """A mask is a label map of several labels and no label was named: ``counts`` maps each label to its voxel
    count (ascending labels), so a caller can ask which one is the heart (the CLI's ``--label N``, the window's
    label picker) and read the mask again with it."""

    def __init__(self, message: str, path: str | Path | None = None, counts: dict | None = None):
        super().__init__(message, path)
        self.counts = dict(counts or {})


class SeriesChoiceNeeded(HeartsegError):
    """A DICOM folder holds several series and none was named: ``series`` lists ``(SeriesInstanceUID, "SeriesNumber
    SeriesDescription", file count)`` each, so a caller can ask which one to open (the window's series picker) and
    read the folder again with it (:func:`core.io.dicom.read_dicom_series` ``series_uid``)."""

    def __init__(self, message: str, path: str | Path | None = None, series: list | None = None):
        super().__init__(message, path)
        self.series = list(series or [])


class Cancelled(Exception):
    """Raised inside a core job when its :class:`~core.types.CancelToken` was set."""
