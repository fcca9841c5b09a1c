"""Retraining from corrections in the window: Model ▸ Retrain…, the training dock, Model ▸ Versions….

Everything computes in :mod:`core.versions.retrain` / :mod:`core.versions.registry`; this package only shows it. No module here
imports TensorFlow at import time (the job imports it on its worker thread).
"""

from heartseg_gui.retrain.install import install_retraining

__all__ = ["install_retraining"]
