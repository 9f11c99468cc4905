"""The mixed-precision branch of the StyleGAN2 networks (fp16 blocks, conv_clamp=256, channels_last),
which CUDA takes by default, run on the CPU through misc.fp16_on_cpu() and compared with float32.

Tolerances: StyleGAN2-ADA's own fp16-vs-fp32 gap on small nets is about 1e-2 on G's images and
3e-4 on D's logits; the bounds below are of that order, relative to each output's largest value.
"""

import contextlib

import numpy as np
import pytest
import torch

from torch_utils import misc
from training import networks_stylegan2 as net
from training.loss import StyleGAN2Loss

FP16 = dict(channel_base=512, channel_max=64, num_fp16_res=2, conv_clamp=256)


def _G(architecture='skip', c_dim=0):
    return net.Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=16, img_channels=3, architecture=architecture,
        mapping_kwargs=dict(num_layers=2), fp16_channels_last=True, **FP16)


def _D(architecture='resnet', c_dim=0):
    return net.Discriminator(c_dim=c_dim, img_resolution=16, img_channels=3, architecture=architecture,
        block_kwargs=dict(fp16_channels_last=True), epilogue_kwargs=dict(mbstd_group_size=2), **FP16)


def _record_block_outputs(module, block_type):
    """Hooks that record (use_fp16, dtype, channels_last) of every block's feature output."""
    seen = []
    def hook(block, _inputs, outputs):
        x = outputs[0]
        seen.append((block.use_fp16, x.dtype, x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1))
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, block_type)]
    return seen, handles


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _grads(module):
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])

#----------------------------------------------------------------------------

def test_fp16_switch_defaults_to_cuda_only():
    assert misc.fp16_enabled_on('cuda') and not misc.fp16_enabled_on('cpu')
    with misc.fp16_on_cpu():
        assert misc.fp16_enabled_on('cpu')
        with misc.fp16_on_cpu(False):
            assert not misc.fp16_enabled_on('cpu')
    assert not misc.fp16_enabled_on('cpu')


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_generator_fp16_blocks_forward_backward(architecture):
    G = _G(architecture, c_dim=3).train()
    z, c = torch.randn(4, 32), torch.eye(3)[[0, 1, 2, 0]]
    seen, handles = _record_block_outputs(G, net.SynthesisBlock)
    with misc.fp16_on_cpu():
        img16 = G(z, c, noise_mode='const')
    for h in handles:
        h.remove()
    # fp16 blocks (8x8 and 16x16) really ran in float16 with channels_last; the 4x4 one in float32.
    assert [s[0] for s in seen] == [False, True, True]
    assert all((dtype == torch.float16) == use_fp16 for use_fp16, dtype, _ in seen)
    if architecture != 'resnet':  # resnet's output is the skip branch's, whose reference upfirdn2d returns contiguous.
        assert all(cl == use_fp16 for use_fp16, _, cl in seen)
    assert img16.dtype == torch.float32 and torch.isfinite(img16).all()
    img32 = G(z, c, noise_mode='const')
    assert 0 < _rel_err(img16, img32) < 1e-2  # Not zero: the fp16 branch did run.

    target = torch.randn_like(img32)
    G.zero_grad()
    with misc.fp16_on_cpu():
        (G(z, c, noise_mode='const') * target).sum().backward()
    g16 = _grads(G)
    G.zero_grad()
    (G(z, c, noise_mode='const') * target).sum().backward()
    g32 = _grads(G)
    assert torch.isfinite(g16).all() and ((g16 - g32).norm() / g32.norm()).item() < 5e-2


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_discriminator_fp16_blocks_forward_and_r1_double_backward(architecture):
    D = _D(architecture, c_dim=3)
    x, c = torch.randn(4, 3, 16, 16), torch.eye(3)[[0, 1, 2, 0]]
    seen, handles = _record_block_outputs(D, net.DiscriminatorBlock)
    with misc.fp16_on_cpu():
        logits16 = D(x, c)
    for h in handles:
        h.remove()
    assert [s[0] for s in seen] == [True, True]  # 16x16 and 8x8.
    assert all(dtype == torch.float16 and cl for _, dtype, cl in seen)
    logits32 = D(x, c)
    assert logits16.dtype == torch.float32 and 0 < _rel_err(logits16, logits32) < 3e-3

    def r1_step(ctx):
        D.zero_grad()
        with ctx:
            img = x.clone().requires_grad_()
            grads, = torch.autograd.grad(D(img, c).sum(), [img], create_graph=True)
            penalty = grads.square().sum([1, 2, 3]).mean()
            penalty.backward()  # Double backward through the fp16 convolutions, clamps and resampling.
        return penalty.detach(), _grads(D)
    p16, g16 = r1_step(misc.fp16_on_cpu())
    p32, g32 = r1_step(contextlib.nullcontext())
    assert torch.isfinite(g16).all() and abs(p16 - p32) / p32 < 2e-2
    assert ((g16 - g32).norm() / g32.norm()).item() < 5e-2


def test_path_length_and_r1_phases_of_the_loss_in_fp16():
    """The loss's own Greg (path-length double backward) and Dreg (R1) phases with fp16 blocks."""
    results = []
    for ctx in (misc.fp16_on_cpu, contextlib.nullcontext):
        torch.manual_seed(0)
        G, D = _G(), _D()
        loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=1, pl_weight=2)
        z, c, real = torch.randn(4, 32), torch.zeros(4, 0), torch.randn(4, 3, 16, 16)
        with ctx():
            torch.manual_seed(1)
            loss.accumulate_gradients('Greg', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
            loss.accumulate_gradients('Dreg', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
        results.append((loss.pl_mean.clone(), _grads(G.synthesis), _grads(D)))
    (pl16, gG16, gD16), (pl32, gG32, gD32) = results
    assert pl32 > 0 and abs(pl16 - pl32) / pl32 < 2e-2
    assert torch.isfinite(gG16).all() and ((gG16 - gG32).norm() / gG32.norm()).item() < 5e-2
    assert torch.isfinite(gD16).all() and ((gD16 - gD32).norm() / gD32.norm()).item() < 5e-2


@pytest.mark.parametrize('fused_modconv', [False, True])
def test_modulated_conv_fp16_rescale_prevents_overflow(fused_modconv):
    """Weights and styles large enough that their fp16 product overflows: the rescale before the
    product keeps the demodulated output finite and equal to float32's."""
    torch.manual_seed(0)
    x = torch.randn(2, 64, 8, 8)
    weight = torch.randn(32, 64, 3, 3) * 100
    styles = torch.randn(2, 64) * 100
    out32 = net.modulated_conv2d(x=x, weight=weight, styles=styles, padding=1, fused_modconv=fused_modconv)
    out16 = net.modulated_conv2d(x=x.half(), weight=weight, styles=styles, padding=1, fused_modconv=fused_modconv)
    assert out16.dtype == torch.float16 and torch.isfinite(out16).all()
    assert _rel_err(out16.float(), out32) < 1e-2
    # Without the rescale the same product overflows float16: the test can see a broken rescale.
    raw = torch.nn.functional.conv2d((x * styles.reshape(2, -1, 1, 1)).half(), weight.half(), padding=1)
    assert not torch.isfinite(raw).all()


def test_conv_clamp_acts_in_fp16_blocks():
    # A huge bias: fp16 blocks clamp their activations to +-256 (times the layer gain), fp32 ones do not overflow.
    G = _G()
    with torch.no_grad():
        G.synthesis.b16.conv1.bias.fill_(1e4)
    seen = []
    hook = G.synthesis.b16.conv1.register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item()))
    with misc.fp16_on_cpu():
        G(torch.randn(2, 32), torch.zeros(2, 0), noise_mode='const')
    hook.remove()
    assert seen[0] == pytest.approx(256, rel=1e-3)

#----------------------------------------------------------------------------

@pytest.mark.gpu
def test_fp16_on_cuda_with_the_kernels_matches_fp32():
    """The same comparisons on the GPU, where fp16 is the default and the custom kernels run."""
    torch.manual_seed(0)
    G, D = _G().cuda(), _D().cuda()
    z, c = torch.randn(4, 32, device='cuda'), torch.zeros(4, 0, device='cuda')
    img16 = G(z, c, noise_mode='const')
    img32 = G(z, c, noise_mode='const', force_fp32=True)
    assert 0 < _rel_err(img16, img32) < 1e-2
    x = torch.randn(4, 3, 16, 16, device='cuda')
    assert 0 < _rel_err(D(x, c), D(x, c, force_fp32=True)) < 3e-3
    results = []
    for force_fp32 in (False, True):
        D.zero_grad()
        img = x.clone().requires_grad_()
        grads, = torch.autograd.grad(D(img, c, force_fp32=force_fp32).sum(), [img], create_graph=True)
        grads.square().sum([1, 2, 3]).mean().backward()
        results.append(_grads(D))
    assert torch.isfinite(results[0]).all() and ((results[0] - results[1]).norm() / results[1].norm()).item() < 5e-2
