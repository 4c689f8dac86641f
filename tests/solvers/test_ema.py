"""ModuleDictEMA: the average it keeps, integer buffers, state round trip."""

import pytest
import torch
from torch import nn

from audioflow.optim.ema import ModuleDictEMA


def test_ema_follows_decay_formula_and_copies_int_buffers():
    lin, bn = nn.Linear(3, 2), nn.BatchNorm1d(2)
    ema = ModuleDictEMA({"lin": lin, "bn": bn}, decay=0.9)
    start = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    bn(torch.randn(4, 2))  # bumps num_batches_tracked and running stats in place
    ema.step()
    expected = 0.9 * start + 0.1 * lin.weight.detach()
    torch.testing.assert_close(ema.state["lin"]["weight"], expected)
    assert int(ema.state["bn"]["num_batches_tracked"]) == 1


def test_ema_state_round_trip_and_cpu_device():
    lin = nn.Linear(3, 2)
    ema = ModuleDictEMA({"m": lin}, decay=0.5, device="cpu")
    with torch.no_grad():
        lin.weight.mul_(3)
    ema.step()
    other = ModuleDictEMA({"m": nn.Linear(3, 2)}, decay=0.5)
    other.load_state_dict(ema.state_dict())
    torch.testing.assert_close(other.state["m"]["weight"], ema.state["m"]["weight"])


def test_ema_rejects_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        ModuleDictEMA({"m": nn.Linear(1, 1)}, decay=1.0)
