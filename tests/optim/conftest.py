"""Fixtures of the optim tests."""

from __future__ import annotations

import pytest
import torch

from .helpers import EncDec


@pytest.fixture
def model() -> EncDec:
    torch.manual_seed(0)
    return EncDec()
