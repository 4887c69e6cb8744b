import copy

import torch
from torch import nn

from drlzero.accel.flat import FlatParams


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


def test_flat_params_give_the_same_training_as_plain_tensors() -> None:
    plain, flat_net = _net(), _net()
    flat = FlatParams(list(flat_net.parameters()))
    opt_a = torch.optim.Adam(plain.parameters(), lr=0.01)
    opt_b = torch.optim.Adam([flat.param], lr=0.01, fused=True)
    x = torch.randn(16, 3)
    for _ in range(5):
        opt_a.zero_grad()
        plain(x).pow(2).mean().backward()
        nn.utils.clip_grad_norm_(plain.parameters(), 0.1)
        opt_a.step()
        flat.zero_grad()
        flat_net(x).pow(2).mean().backward()
        flat.clip_grad_norm_(0.1)
        opt_b.step()
    for a, b in zip(plain.parameters(), flat_net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_params_are_views_and_state_dict_round_trips() -> None:
    net = _net()
    flat = FlatParams(list(net.parameters()))
    with torch.no_grad():
        flat.param.add_(1.0)
    first = next(net.parameters())
    assert first.data_ptr() == flat.param.data_ptr()
    state = copy.deepcopy(net.state_dict())
    with torch.no_grad():
        flat.param.zero_()
    net.load_state_dict(state)  # copies in place: the views stay linked
    assert float(flat.param.abs().sum()) > 0
    assert first.data_ptr() == flat.param.data_ptr()


def test_relink_after_zero_grad_none() -> None:
    net = _net()
    flat = FlatParams(list(net.parameters()))
    net.zero_grad(set_to_none=True)
    flat.relink()
    net(torch.randn(4, 3)).sum().backward()
    assert float(flat.param.grad.abs().sum()) > 0
