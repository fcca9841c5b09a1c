"""Build the training root of the bundled model from ../shared/data, in the Kaggle layout (outside the repository).

    python scripts/build_training_root.py ../shared/data runs/train_root

``OUT/data/train/`` then holds:

* the 16 real Kaggle ``ct-heart-segmentation`` patients of ``kaggle_strips`` (copied unchanged, with SOURCE.md:
  NLST images, CC BY 4.0, and the Kaggle ellipse masks; never copied into the repository);
* the four TotalSegmentator sample patients of ``scripts/build_bundled_training_set.py`` (``ts_pulm_a`` /
  ``ts_abd_a`` for training, ``ts_pulm_b`` / ``ts_abd_b`` held out), so the model keeps finding the heart of the
  bundled demo scan (a tight contrast-enhanced crop) and stays quiet on the abdomen.

Which of them a run trains on is chosen on the ``heartseg train`` command line (``--patients``, ``--val-patients``);
see ``resources/model/MODEL_CARD.md`` and ``scripts/cross_validate.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.build_bundled_training_set import main as build_sample  # noqa: E402


def main(shared_data: str, out: str) -> None:
    shared, root = Path(shared_data), Path(out) / "data" / "train"
    strips = shared / "kaggle_strips" / "train"
    root.mkdir(parents=True, exist_ok=True)
    for patient in sorted(p for p in strips.iterdir() if p.is_dir()):
        dest = root / patient.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(patient, dest)
        shutil.copy(shared / "kaggle_strips" / "SOURCE.md", dest / "SOURCE.md")
    build_sample(shared_data, out)
    print(f"training root ready: {root}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/build_training_root.py SHARED_DATA OUT")
    main(sys.argv[1], sys.argv[2])
