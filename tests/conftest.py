"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread, as the train stage runs (`--threads 1`): tiny nets gain nothing
    from more, and spinning threads are slow when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
