"""LeCam regularisation (Tseng et al., CVPR 2021) for data-limited GAN training.

D's outputs on reals are pulled toward the moving average of its outputs on fakes and vice versa:

    R_LC = mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2)

with a_R, a_F exponential moving averages of the batch means of D(x) and D(G(z)): decay 0.99 in
lecam-gan's StyleGAN2 code (stylegan2/lecam_loss.py), 0.9 in its BigGAN code, whose anchors follow
the latest batch means, with the penalty off, until G iteration 1000. The ReLU-clipped form is the
one of the authors' public code, which produced the published numbers. The anchors move once per D
phase with the means of its whole global batch (split-independent); each pass's penalty uses the
anchors as the phase began, one phase behind lecam-gan, which moves them before the penalty.
"""

import torch

# Anchor EMA decay by backbone, lecam-gan's values (above); the training options and the losses read it here.
DECAY = dict(stylegan2=0.99, biggan=0.9)

#----------------------------------------------------------------------------

def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake):
    real_term = torch.relu(real_logits - anchor_fake).square().mean()
    fake_term = torch.relu(anchor_real - fake_logits).square().mean()
    return real_term + fake_term

#----------------------------------------------------------------------------

class LeCamAnchors:
    """Moving averages of D's mean output on reals and fakes; part of the resumable state."""

    def __init__(self, decay=DECAY['stylegan2']):
        if not 0 <= decay < 1:
            raise ValueError(f'LeCam EMA decay must be in [0, 1), got {decay}')
        self.decay = decay
        self.real = None    # Python floats, identical on every rank after the logits are reduced.
        self.fake = None

    def update(self, real_mean, fake_mean, decay=None):
        """One EMA step toward the batch means; decay=None uses self.decay (0 follows the means)."""
        real_mean, fake_mean = float(real_mean), float(fake_mean)
        decay = self.decay if decay is None else decay
        if self.real is None:
            self.real, self.fake = real_mean, fake_mean
        else:
            self.real = decay * self.real + (1 - decay) * real_mean
            self.fake = decay * self.fake + (1 - decay) * fake_mean

    def state_dict(self):
        return dict(decay=self.decay, real=self.real, fake=self.fake)

    def load_state_dict(self, state):
        self.decay, self.real, self.fake = state['decay'], state['real'], state['fake']

#----------------------------------------------------------------------------
