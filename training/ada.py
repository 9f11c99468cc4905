"""Adaptive discriminator augmentation (ADA): the augment pipe's probability p follows the sign of D on reals.

The loss reports every D(real) sign as 'Loss/signs/real' (training/loss.py, GANLoss._report_logits); the
controller collects them, carries an unfinished interval across ticks (and snapshots), and moves p every
ada_interval steps."""

import numpy as np
import torch

import dnnlib
from torch_utils import training_stats

#----------------------------------------------------------------------------

def ada_adjust(p, sign_mean, ada_target, num_images, ada_kimg):
    """ADA: move p toward making E[sign(D(real))] equal ada_target; full range 0 -> 1 takes ada_kimg kimg."""
    adjust = np.sign(sign_mean - ada_target) * num_images / (ada_kimg * 1000)
    return max(p + adjust, 0.0)

def fold_ada_stats(ada_stats, ada_carry):
    """Add the D(real) signs collected since the last call to the carried [count, sum]."""
    ada_stats.update()
    num = ada_stats.num('Loss/signs/real')
    if num == 0:
        return ada_carry
    return [ada_carry[0] + num, ada_carry[1] + num * ada_stats.mean('Loss/signs/real')]

def build_augment_pipe(augment_kwargs, augment_p, ada_target, device):
    """The augment pipe at its initial p; None without augmentation (no options, or p 0 and no target)."""
    if augment_kwargs is None or not (augment_p > 0 or ada_target is not None):
        return None
    augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
    augment_pipe.p.copy_(torch.as_tensor(augment_p))
    return augment_pipe

#----------------------------------------------------------------------------

class AdaController:
    """Adjusts augment_pipe.p every ada_interval steps; a fixed p (ada_target None) or no pipe: does nothing.
    Creating it with a target creates a statistics collector, a collective: every rank, same point."""

    def __init__(self, augment_pipe, ada_target, ada_interval, ada_kimg, step_nimg):
        self.augment_pipe = augment_pipe
        self.ada_target = ada_target
        self.ada_interval = ada_interval
        self.ada_kimg = ada_kimg
        self.step_nimg = step_nimg  # Reals shown per step: D_steps global batches.
        self.stats = None
        if augment_pipe is not None and ada_target is not None:
            self.stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False)
        self.carry = [0, 0.0]  # Count and sum of D(real) signs since the last adjustment, across ticks.

    def end_step(self, batch_idx):
        """After step batch_idx - 1: every ada_interval steps, adjust p by the mean sign of the interval."""
        if self.stats is None or batch_idx % self.ada_interval != 0:
            return
        num, total = fold_ada_stats(self.stats, self.carry)
        if num > 0:
            new_p = ada_adjust(float(self.augment_pipe.p), total / num, self.ada_target, self.step_nimg * self.ada_interval,
                self.ada_kimg)
            self.augment_pipe.p.copy_(torch.as_tensor(new_p))
        self.carry = [0, 0.0]

    def end_tick(self):
        """The signs of the unfinished interval go into the carry, so a snapshot holds them and a resume continues."""
        if self.stats is not None:
            self.carry = fold_ada_stats(self.stats, self.carry)

    # The snapshot's resume_state holds these two entries.
    def state_dict(self):
        return dict(augment_p=float(self.augment_pipe.p) if self.augment_pipe is not None else None, ada_carry=list(self.carry))

    def load_state_dict(self, state):
        self.carry = list(state['ada_carry'])
        if self.augment_pipe is not None and state['augment_p'] is not None:
            self.augment_pipe.p.copy_(torch.as_tensor(state['augment_p']))

#----------------------------------------------------------------------------
