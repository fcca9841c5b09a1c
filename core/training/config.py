"""Every training default, once: :class:`TrainConfig` (the seed notebook's recipe; ``heartseg train``'s options
and the Retrain dialog take their defaults from it, the dialog with :data:`FINE_TUNE_EPOCHS`) and :class:`TrainResult` (what a run produced).

``corrected_weight`` 2.0: a slice the radiologist corrected counts twice in the loss (the Retrain dialog's value
since it existed; ``heartseg train`` used 1.0 until both paths became one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from core.preprocess import DEFAULT_IMAGE_SIZE

#: Epochs of a retraining started from the window (Model ▸ Retrain…): a fine-tune of the active model on the
#: corrections, minutes on a laptop; ``heartseg train`` defaults to :attr:`TrainConfig.epochs` (from scratch).
FINE_TUNE_EPOCHS = 5


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (JSON-serialisable; stored with every model version).

    ``batch_size`` is the global batch: under a ``tf.distribute`` strategy it is split evenly over the replicas
    and ``learning_rate`` is used as given (no scaling; see :mod:`core.training.distribute`)."""
    epochs: int = 20
    batch_size: int = 16
    image_size: int = DEFAULT_IMAGE_SIZE
    loss: str = "bce_dice"
    learning_rate: float = 1e-4
    augment: bool = True
    geometric: str = "none"
    seed: int = 0
    lr_factor: float = 0.1
    lr_patience: int = 10
    min_lr: float = 1e-7
    early_stopping_patience: int = 15
    steps_per_epoch: Optional[int] = None  # cap (tiny test runs); None = one pass over the training slices
    corrected_weight: float = 2.0  # sample weight of slices whose review state is "corrected"
    filters: tuple = (16, 16, 32, 64, 128)
    bottleneck: int = 256
    bn_momentum: float = 0.9  # batch-norm moving-average momentum of a model built from scratch
    prior_bias: bool = True  # a model built from scratch starts at the training pixels' heart share (unet.prior_bias)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d


@dataclass
class TrainResult:
    """What a training run produced. ``best_model_path`` is None only if no epoch finished."""
    out_dir: Path
    best_model_path: Optional[Path]
    best_epoch: Optional[int]
    best_val_loss: Optional[float]
    history: list = field(default_factory=list)  # one dict of logs per finished epoch
    cancelled: bool = False
    seconds: float = 0.0
    images_per_second: float = 0.0  # global: every replica's images
    chief: bool = True  # False: a non-chief worker of a multi-worker run (it wrote nothing; no model path)
    replicas: int = 1  # replicas in sync (tf.distribute); 1 without a strategy
    resumed_from: Optional[int] = None  # the epoch a BackupAndRestore backup resumed after
