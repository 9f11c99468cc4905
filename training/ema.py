"""The exponential moving average of G (G_ema): the generator that snapshots, image grids and metrics use."""

import torch

#----------------------------------------------------------------------------

def ema_beta(cur_nimg, batch_size, ema_kimg, ema_rampup):
    """Decay of G_ema for one step: half-life of ema_kimg thousand images, shorter early in training."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))

@torch.no_grad()
def update_ema(G, G_ema, beta):
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers are copied."""
    params = dict(G.named_parameters())
    for name, p_ema in G_ema.named_parameters():
        p_ema.copy_(params[name].detach().lerp(p_ema, beta))
    buffers = dict(G.named_buffers())
    for name, b_ema in G_ema.named_buffers():
        b_ema.copy_(buffers[name])

def step_G_ema(G, G_ema, cur_nimg, batch_size, ema_kimg, ema_rampup, ema_start_kimg=0):
    """One G_ema update after a training step: a plain copy of G before ema_start_kimg (BigGAN's ema_start),
    the moving average after."""
    beta = ema_beta(cur_nimg, batch_size, ema_kimg, ema_rampup) if cur_nimg >= ema_start_kimg * 1000 else 0
    update_ema(G, G_ema, beta)

#----------------------------------------------------------------------------
