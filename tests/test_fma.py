"""fma: a * b + c with broadcasting, against the plain expression and numeric gradients."""

import pytest
import torch

from torch_utils.ops import fma

SHAPES = [
    ([2, 3, 4], [2, 3, 4], [2, 3, 4]),
    ([2, 1, 4], [3, 1], [1]),
    ([4], [2, 3, 1], [2, 1, 4]),
    ([], [2, 3], [3]),
]

@pytest.mark.parametrize('sa,sb,sc', SHAPES)
def test_forward_and_grads_match_expression(sa, sb, sc):
    a, b, c = (torch.randn(s, dtype=torch.float64, requires_grad=True) for s in (sa, sb, sc))
    out = fma.fma(a, b, c)
    expect = a * b + c
    torch.testing.assert_close(out, expect)
    w = torch.randn_like(expect)
    got = torch.autograd.grad((out * w).sum(), [a, b, c])
    ref = torch.autograd.grad((expect * w).sum(), [a, b, c])
    for g, r, s in zip(got, ref, (sa, sb, sc)):
        assert list(g.shape) == s
        torch.testing.assert_close(g, r)

@pytest.mark.parametrize('sa,sb,sc', SHAPES)
def test_gradcheck(sa, sb, sc):
    args = tuple(torch.randn(s, dtype=torch.float64, requires_grad=True) for s in (sa, sb, sc))
    assert torch.autograd.gradcheck(fma.fma, args)
    assert torch.autograd.gradgradcheck(fma.fma, args)

def test_hand_computed():
    a = torch.tensor([[1.0], [2.0]], requires_grad=True)   # [2, 1]
    b = torch.tensor([3.0, 4.0, 5.0], requires_grad=True)  # [3]
    c = torch.tensor(10.0, requires_grad=True)             # []
    out = fma.fma(a, b, c)
    assert out.tolist() == [[13.0, 14.0, 15.0], [16.0, 18.0, 20.0]]
    out.sum().backward()
    assert a.grad.tolist() == [[12.0], [12.0]]  # sum of b for each row
    assert b.grad.tolist() == [3.0, 3.0, 3.0]   # sum of a for each column
    assert c.grad.item() == 6.0                 # one per output element
