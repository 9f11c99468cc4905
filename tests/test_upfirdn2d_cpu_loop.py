"""The upfirdn2d plugin's CPU loop, which runs the CUDA kernel's per-sample math (upfirdn2d_sample in
upfirdn2d.h) on the host, against the reference path: every dtype the dispatcher instantiates, every
configuration the networks and the augment pipe use (recorded from them, not typed by hand),
non-contiguous inputs, and the gradient routes of the autograd Function built on the kernel.
Needs nvcc to build the plugin, not a GPU."""

import contextlib

import numpy as np
import pytest
import torch

from torch_utils.ops import upfirdn2d
from training import networks_stylegan2 as net
from training.augment import AugmentPipe

pytestmark = pytest.mark.cuda_build

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# Relative to the output's largest value: the accumulation is in float (double for float64) and
# only the final store rounds, so the error is that of one rounding of the result's dtype.
TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def plugin():
    from torch_utils import custom_ops
    return custom_ops.build_plugin(**upfirdn2d._PLUGIN_SPEC)  # Raises with the compiler's message.

@pytest.fixture
def kernel(plugin, monkeypatch):
    """Function(up, down, padding, flip_filter, gain) -> callable(x, f) running the plugin's CPU loop."""
    monkeypatch.setattr(upfirdn2d, '_plugin', plugin)
    return lambda **cfg: upfirdn2d._upfirdn2d_cuda(**cfg).apply

def _ref(x, f, **cfg):
    return upfirdn2d._upfirdn2d_ref(x.double(), None if f is None else f.double(), **cfg)

def _assert_close(got, expect, dtype, what):
    scale = max(expect.abs().max().item(), 1e-30)
    err = (got.double() - expect).abs().max().item() / scale
    assert got.dtype == dtype and got.shape == expect.shape, what
    assert err <= TOL[dtype], f'{what}: relative error {err:.3g} > {TOL[dtype]:.3g}'

#----------------------------------------------------------------------------
# The configurations the project itself uses, recorded from the networks and the augment pipe.

def _record_calls():
    calls = []
    real = upfirdn2d.upfirdn2d
    def recorder(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
        calls.append(dict(shape=tuple(x.shape), f=None if f is None else f.detach().clone(),
            cfg=dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)))
        return real(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)
    mp = pytest.MonkeyPatch()
    mp.setattr(upfirdn2d, 'upfirdn2d', recorder)
    try:
        torch.manual_seed(0)
        small = dict(channel_base=128, channel_max=8)
        for arch in ('orig', 'skip', 'resnet'):
            G = net.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, architecture=arch,
                mapping_kwargs=dict(num_layers=1), **small)
            D = net.Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture=arch,
                epilogue_kwargs=dict(mbstd_group_size=2), **small)
            for fused in (True, False):  # Fused: grouped convolutions; unfused: the training path.
                D(G(torch.randn(2, 8), torch.zeros(2, 0), fused_modconv=fused), torch.zeros(2, 0))
        pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)
        pipe.p.fill_(1.0)
        pipe(torch.randn(2, 3, 16, 16))
    finally:
        mp.undo()
    unique = dict()
    for call in calls:
        key = (call['shape'][1:], None if call['f'] is None else tuple(call['f'].flatten().tolist()),
            repr(sorted(call['cfg'].items())))
        unique.setdefault(key, call)
    return list(unique.values())

PROJECT_CALLS = _record_calls()

def _call_id(call):
    c = call['cfg']
    taps = 'none' if call['f'] is None else 'x'.join(map(str, call['f'].shape))
    return f"{'x'.join(map(str, call['shape'][1:]))}-f{taps}-up{c['up']}-down{c['down']}-pad{c['padding']}-flip{int(c['flip_filter'])}-g{c['gain']:g}"

def test_recorded_configurations_cover_the_projects_uses():
    ids = {_call_id(call) for call in PROJECT_CALLS}
    assert len(ids) == len(PROJECT_CALLS) >= 6
    cfgs = [call['cfg'] for call in PROJECT_CALLS]
    assert any(c['up'] == 2 for c in cfgs) and any(c['down'] == 2 for c in cfgs)          # Networks' resampling.
    assert any(c['up'] == 1 and c['down'] == 1 and c['gain'] != 1 for c in cfgs)          # Transposed-conv filtering.
    assert any(call['f'] is not None and call['f'].ndim == 1 for call in PROJECT_CALLS)   # The augment pipe's separable filter.

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('call', PROJECT_CALLS, ids=_call_id)
def test_project_configurations_every_dtype(kernel, call, dtype):
    torch.manual_seed(1)
    x = torch.randn(2, min(call['shape'][1], 3), *call['shape'][2:], dtype=torch.float64)
    got = kernel(**call['cfg'])(x.to(dtype), call['f'])
    _assert_close(got, _ref(x.to(dtype), call['f'], **call['cfg']), dtype, _call_id(call))

#----------------------------------------------------------------------------
# Hand-picked configurations beyond the project's: asymmetric up/down, negative padding (crops),
# odd and 2D filters, flips and negative gains.

EXTRA = [
    # (input [h, w], taps, separable, up, down, padding, flip_filter, gain)
    ((5, 6), [1, 3, 3, 1], False, 1, 1, 0, False, 1),
    ((5, 6), [1, 3, 3, 1], False, 2, 1, [2, 1], False, 4),
    ((6, 5), [1, 3, 3, 1], False, 1, 2, [1, 1, 1, 1], True, 1),
    ((5, 4), [1, 2, 5, 3, 1], True, 2, 2, [2, 1, 0, 3], True, 2.5),
    ((4, 4), [1, 2, 5, 3, 1], True, 1, 1, [1, 2], False, -3),
    ((4, 5), [[1, 2], [3, 5], [-1, 4]], False, [2, 3], [1, 2], [1, 0, 2, 1], False, 1),
    ((4, 5), [[1, 2], [3, 5], [-1, 4]], False, [3, 1], [2, 1], [0, 2, 1, 0], True, 0.5),
    ((7, 7), [1, 3, 3, 1], False, 1, 1, [-1, -2, 1, -1], False, 1),
    ((9, 8), [1, 2, 4, 2, 3, 1, 5, 2], None, 1, 3, [3, 4], False, 1),
    ((3, 4), None, None, 3, 1, 0, False, 9),
]

def _extra(case):
    hw, taps, separable, up, down, padding, flip, gain = case
    f = None if taps is None else upfirdn2d.setup_filter(taps, separable=separable, normalize=False)
    return hw, f, dict(up=up, down=down, padding=padding, flip_filter=flip, gain=gain)

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('case', EXTRA, ids=[f'extra{i}' for i in range(len(EXTRA))])
def test_extra_configurations_every_dtype(kernel, case, dtype):
    hw, f, cfg = _extra(case)
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    _assert_close(kernel(**cfg)(x.to(dtype), f), _ref(x.to(dtype), f, **cfg), dtype, str(case))

@pytest.mark.parametrize('layout', ['channel-slice', 'transposed', 'channels_last', 'strided-rows'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16], ids=str)
def test_non_contiguous_inputs(kernel, layout, dtype):
    base = torch.randn(2, 6, 10, 10, dtype=torch.float64)
    x = dict(transposed=base.transpose(2, 3), channels_last=base.to(memory_format=torch.channels_last),
        **{'channel-slice': base[:, ::2], 'strided-rows': base[:, :, ::2, 1:]})[layout]
    assert not x.is_contiguous()
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for cfg in (dict(up=2, padding=[2, 1]), dict(down=2, padding=[1, 1]), dict(padding=[1, 2, 2, 1], gain=4)):
        _assert_close(kernel(**cfg)(x.to(dtype), f), _ref(x.to(dtype), f, **cfg), dtype, f'{layout} {cfg}')
    if layout == 'channels_last':  # The output keeps the input's memory format, as on CUDA.
        assert kernel(up=2, padding=[2, 1])(x.float(), f).is_contiguous(memory_format=torch.channels_last)

#----------------------------------------------------------------------------
# Gradient routes: the Function's backward is again the kernel (the adjoint configuration), so first
# and second derivatives both go through the per-sample math.

@pytest.mark.parametrize('call', PROJECT_CALLS, ids=_call_id)
def test_backward_and_double_backward_match_reference(kernel, call):
    torch.manual_seed(2)
    shape = (2, min(call['shape'][1], 3), *call['shape'][2:])
    f, cfg = call['f'], call['cfg']
    results = []
    for fn in (kernel(**cfg), lambda x, f: upfirdn2d._upfirdn2d_ref(x, f, **cfg)):
        torch.manual_seed(3)
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        y = fn(x, f)
        w = torch.randn_like(y, requires_grad=True)
        dx, = torch.autograd.grad((y * w).sum(), [x], create_graph=True)
        v = torch.randn_like(dx)
        dw, = torch.autograd.grad((dx * v).sum(), [w])  # Second order: through the backward kernel.
        results.append((y, dx, dw))
    for name, got, expect in zip(['y', 'dx', 'd(dx)/dw'], results[0], results[1]):
        _assert_close(got.detach(), expect.detach(), torch.float64, f'{_call_id(call)} {name}')

@pytest.mark.parametrize('case', EXTRA[:6], ids=[f'extra{i}' for i in range(6)])
def test_gradcheck_and_gradgradcheck(kernel, case):
    hw, f, cfg = _extra(case)
    f = None if f is None else f.double()
    x = torch.randn(1, 2, *hw, dtype=torch.float64, requires_grad=True)
    fn = lambda x: kernel(**cfg)(x, f)
    assert torch.autograd.gradcheck(fn, [x])
    assert torch.autograd.gradgradcheck(fn, [x])

def test_half_gradients_stay_in_half(kernel):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float16, requires_grad=True)
    kernel(up=2, padding=[2, 1], gain=4)(x, f).float().square().sum().backward()
    expect = torch.autograd.grad(_ref(x, f, up=2, padding=[2, 1], gain=4).square().sum(), [x])[0]
    _assert_close(x.grad, expect.detach(), torch.float16, 'half backward')

def test_cpu_tensors_take_the_reference_path_in_training(plugin, monkeypatch):
    """The CPU loop is for tests: the public op never sends CPU tensors to the plugin."""
    class Spy:
        def upfirdn2d(self, *args):
            raise AssertionError('a CPU tensor reached the plugin')
    monkeypatch.setattr(upfirdn2d, '_plugin', Spy())
    monkeypatch.setattr(upfirdn2d, '_init_attempted', True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f, impl='cuda'), upfirdn2d.upsample2d(x, f, impl='ref'))
