"""Graph tests run many tiny tensor operations; one intra-op thread avoids thread
start-up costs that dominate them on small or busy machines."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
