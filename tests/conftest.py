"""Fixtures shared across the test folders."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's small-image tests on one thread: on a busy 2-core machine torch's second
    thread mostly spins (measured 5x slower overall), and one thread is as fast for ~500 px images."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
