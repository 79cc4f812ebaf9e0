"""Fixtures of the reliability tests (issue 16): a tiny generated dataset."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    """A 10-image SynthScenes folder (8 train, 2 val) of 48 px images."""
    from refinenet_edu.datasets import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("data") / "tiny", seed=5, size=48, train_count=8, val_count=2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_set, tmp_path_factory):
    """best.pt of a one-epoch run on ``tiny_set``."""
    from refinenet_edu.cli import main
    from _reliability import tiny_train

    out = tmp_path_factory.mktemp("run") / "run"
    assert main(tiny_train(tiny_set, out)) == 0
    return out / "best.pt"
