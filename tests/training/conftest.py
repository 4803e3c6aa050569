"""Fixtures of the training tests."""

import pytest
from support.training import write_train_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved random toy base model, 16 DPO pairs (chosen names an object in the image, rejected an
    absent one) and the matching SFT examples (support/training.py)."""
    return write_train_world(tmp_path_factory.mktemp("train-world"))
