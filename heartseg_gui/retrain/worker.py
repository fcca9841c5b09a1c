"""The retraining job on a worker thread: :func:`core.versions.retrain.run_retraining` adapted to
:class:`heartseg_gui.workers.Job` signals (``started / progress / returned / errored / cancelled / finished``).

The job gets a plain :class:`core.versions.retrain.RetrainRequest` (paths and numbers, no shared arrays) and returns a
:class:`core.versions.retrain.RetrainOutcome`. TensorFlow is imported inside the running job only.
"""

from __future__ import annotations

from heartseg_gui.workers import Job

JOB_NAME = "retraining"


def retrain_job_fn(request):
    """``fn(*, progress, cancel, partial)`` running one retraining (see :mod:`heartseg_gui.workers`)."""

    def run(*, progress, cancel, partial):
        from core.versions.retrain import run_retraining  # imports TensorFlow lazily, on this worker thread

        return run_retraining(request, progress=progress, cancel=cancel)

    return run


def make_retrain_job(request, generation: int = 0) -> Job:
    """A :class:`Job` for ``request``; start it with a :class:`heartseg_gui.workers.JobRunner`."""
    return Job(JOB_NAME, retrain_job_fn(request), generation)
