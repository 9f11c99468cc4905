"""The augment pipe draws ADA's random numbers in ADA's order, stage by stage, whatever the gates decide,
and every probability holds at an intermediate p.

Stream: StyleGAN2-ADA's AugmentPipe.forward (training/augment.py of NVlabs/stylegan2-ada-pytorch) draws,
for a batch of N images, each stage's values and then its gate (torch.rand([N, ...]) < prob * p); the
noise stage always draws its per-pixel noise, even when every gate is off. The CPU generator's stream
depends only on the number of elements of each draw, so replaying the same calls by hand from the same
seed must leave it at the same position. A pipe that skips or adds a draw shifts every later draw of the
run (cutout's centres, the next step's latents come from their own seeds but augmentations do not).

Probabilities: the share of samples a stage changes, at p = 0.3, against its definition, over 4000 samples
(binomial standard deviation 0.007; the tolerance is 5 of them).
"""

import numpy as np
import pytest
import torch

from training.augment import AugmentPipe

N, C, H, W = 6, 3, 16, 16

# ADA's draws per stage: (function, number of elements), in order. Rotation is drawn twice, around aniso.
_DRAWS = {
    'xflip':      [('rand', N), ('rand', N)],
    'rotate90':   [('rand', N), ('rand', N)],
    'xint':       [('rand', 2 * N), ('rand', N)],
    'scale':      [('randn', N), ('rand', N)],
    'rotate':     [('rand', N), ('rand', N)],
    'aniso':      [('randn', N), ('rand', N)],
    'xfrac':      [('randn', 2 * N), ('rand', N)],
    'brightness': [('randn', N), ('rand', N)],
    'contrast':   [('randn', N), ('rand', N)],
    'lumaflip':   [('rand', N), ('rand', N)],
    'hue':        [('rand', N), ('rand', N)],
    'saturation': [('randn', N), ('rand', N)],
    'imgfilter':  [('randn', N), ('rand', N)] * 4,  # One gain and one gate per octave band.
    'noise':      [('randn', N), ('rand', N), ('randn', N * C * H * W)],  # The per-pixel noise, always.
    'cutout':     [('rand', N), ('rand', 2 * N)],  # The gate of the size, then the centre.
}
_ORDER = ['xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'rotate', 'xfrac', 'brightness', 'contrast', 'lumaflip',
    'hue', 'saturation', 'imgfilter', 'noise', 'cutout']

def _replay(stages):
    for stage in [s for s in _ORDER if s in stages]:
        for fn, numel in _DRAWS[stage]:
            getattr(torch, fn)([numel])

def _state_after_pipe(stages, p, seed=7):
    pipe = AugmentPipe(**{stage: 1 for stage in stages})
    pipe.p.copy_(torch.as_tensor(p))
    images = torch.rand([N, C, H, W], generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(seed)
    pipe(images)
    return torch.get_rng_state()

def _state_after_replay(stages, seed=7):
    torch.manual_seed(seed)
    _replay(stages)
    return torch.get_rng_state()

@pytest.mark.parametrize('p', [0.3, 1e-9])  # 1e-9: every gate off, the draws must still happen.
@pytest.mark.parametrize('stage', sorted(_DRAWS))
def test_stream_position_after_each_stage(stage, p):
    assert torch.equal(_state_after_pipe([stage], p), _state_after_replay([stage])), stage

@pytest.mark.parametrize('p', [0.3, 1.0, 1e-9])
def test_stream_position_after_the_whole_pipe(p):
    stages = sorted(_DRAWS)
    assert torch.equal(_state_after_pipe(stages, p), _state_after_replay(stages))

#----------------------------------------------------------------------------
# Probabilities at p = 0.3, transform by transform.

P = 0.3
M = 4000

def _changed_share(stage, height=16, **extra):
    pipe = AugmentPipe(**{stage: 1}, **extra)
    pipe.p.copy_(torch.as_tensor(P))
    gen = torch.Generator().manual_seed(3)
    base = torch.rand([1, C, height, height], generator=gen) * 2 - 1
    images = base.expand(M, -1, -1, -1).contiguous()
    torch.manual_seed(11)
    with torch.no_grad():
        out = pipe(images)
    changed = (out - images).abs().flatten(1).amax(dim=1) > 1e-3
    return changed.float().mean().item()

# The share of samples a stage changes, from its definition (ADA): the gate's probability times the chance
# that the drawn value is not the identity.
_EXPECTED = {
    'xflip': 0.5 * P,               # i = floor(2u): half the draws are the identity.
    'rotate90': 0.75 * P,           # i = floor(4u): a quarter are.
    'xint': (1 - 0.25 ** 2) * P,    # t = (2u - 1) * 0.125 per axis, rounded to pixels at W = 16: |t W| < 0.5 a quarter of the time.
    'scale': P,                     # Isotropic: 2^(0.2 n) is never exactly 1.
    'rotate': P,                    # Two rotations, each gated with 1 - sqrt(1 - p): some rotation with probability p.
    'aniso': P,
    'xfrac': P,
    'brightness': P,
    'contrast': P,
    'lumaflip': 0.5 * P,
    'hue': P,
    'saturation': P,
    'imgfilter': 1 - (1 - P) ** 4,  # Four bands, each gated on its own.
    'noise': P,
    'cutout': P,
}

@pytest.mark.parametrize('stage', sorted(_EXPECTED))
def test_each_transform_fires_with_its_probability(stage):
    share = _changed_share(stage)
    expected = _EXPECTED[stage]
    sd = np.sqrt(expected * (1 - expected) / M)
    assert abs(share - expected) < 5 * sd, f'{stage}: {share:.4f} changed, expected {expected:.4f} +- {5 * sd:.4f}'

def test_probability_multipliers_scale_the_gate():
    # A stage's multiplier (e.g. scale=0.5) multiplies p in its gate: half as often.
    pipe_kwargs = dict(scale=0.5)
    pipe = AugmentPipe(**pipe_kwargs)
    pipe.p.copy_(torch.as_tensor(P))
    base = torch.rand([1, C, H, W], generator=torch.Generator().manual_seed(3)) * 2 - 1
    images = base.expand(M, -1, -1, -1).contiguous()
    torch.manual_seed(5)
    with torch.no_grad():
        share = ((pipe(images) - images).abs().flatten(1).amax(dim=1) > 1e-3).float().mean().item()
    sd = np.sqrt(0.15 * 0.85 / M)
    assert abs(share - 0.15) < 5 * sd, share
