"""LeCam regularisation (Tseng et al., CVPR 2021) for data-limited GAN training.

D's outputs on reals are pulled toward the moving average of its outputs on fakes and vice versa:

    R_LC = mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2)

with a_R, a_F exponential moving averages (decay 0.99) of the batch means of D(x) and D(G(z)).
The ReLU-clipped form is the one of the authors' public code, which produced the published numbers.
"""

import torch

#----------------------------------------------------------------------------

def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake):
    real_term = torch.relu(real_logits - anchor_fake).square().mean()
    fake_term = torch.relu(anchor_real - fake_logits).square().mean()
    return real_term + fake_term

#----------------------------------------------------------------------------

class LeCamAnchors:
    """Moving averages of D's mean output on reals and fakes; part of the resumable state."""

    def __init__(self, decay=0.99):
        if not 0 <= decay < 1:
            raise ValueError(f'LeCam EMA decay must be in [0, 1), got {decay}')
        self.decay = decay
        self.real = None    # Python floats, identical on every rank after the logits are reduced.
        self.fake = None

    def update(self, real_mean, fake_mean):
        real_mean, fake_mean = float(real_mean), float(fake_mean)
        if self.real is None:
            self.real, self.fake = real_mean, fake_mean
        else:
            self.real = self.decay * self.real + (1 - self.decay) * real_mean
            self.fake = self.decay * self.fake + (1 - self.decay) * fake_mean

    def state_dict(self):
        return dict(decay=self.decay, real=self.real, fake=self.fake)

    def load_state_dict(self, state):
        self.decay, self.real, self.fake = state['decay'], state['real'], state['fake']

#----------------------------------------------------------------------------
