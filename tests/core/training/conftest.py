"""Fixtures shared by the multi-worker training tests (test_distribute*.py)."""

import pytest

from tests.helpers import kaggle_root_from_patient, sample_kaggle_patient


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """Two patients cut from the bundled sample in Kaggle layout: p1 (24 slices) trains, p2 (6) validates."""
    return kaggle_root_from_patient(sample_kaggle_patient(), tmp_path_factory.mktemp("ds"),
                                    {"p1": slice(30, 54), "p2": slice(54, 60)})
