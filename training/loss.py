"""GAN losses: StyleGAN2 (non-saturating logistic, lazy R1, path-length regularisation, style mixing) and
BigGAN (hinge), both with optional LeCam regularisation and the KD hook in D's main phase."""

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from training.diffaugment import DiffAugment
from training.lecam import DECAY as LECAM_DECAY
from training.lecam import LeCamAnchors, lecam_penalty

#----------------------------------------------------------------------------

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')

class GANLoss:
    """What every backbone's loss shares: augmentation of reals and fakes, D with features for KD,
    the KD terms, and LeCam. Subclasses implement accumulate_gradients()."""

    def __init__(self, device, G, D, augment_pipe=None, diffaugment='', lecam=0, lecam_decay=LECAM_DECAY['stylegan2'], lecam_start_kimg=0,
            kd=None):
        if lecam < 0:
            raise ValueError(f'lecam weight must be non-negative, got {lecam}')
        if lecam_start_kimg < 0:
            raise ValueError(f'lecam_start_kimg must be non-negative, got {lecam_start_kimg}')
        self.device = torch.device(device)
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.diffaugment = diffaugment or ''
        self.lecam = lecam
        self.lecam_anchors = LeCamAnchors(decay=lecam_decay)
        self.lecam_start_kimg = lecam_start_kimg
        self._lecam_sums = None  # [sum real, sum fake, count real, count fake] of the current D phase.
        self.kd = kd

    def begin_phase(self, key):
        """Called by the training loop before the passes of each phase of a step."""
        self._lecam_sums = None
        if self.kd is not None:
            self.kd.begin_phase(key)

    def end_phase(self, cur_nimg):
        """Called by the training loop after the passes of each phase (every rank, same order): the
        LeCam anchors move once, with the means over the phase's whole global batch, so they do not
        depend on how the batch was split into passes and processes."""
        if self._lecam_sums is None:
            return
        sums = self._lecam_sums
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        real_mean, fake_mean = (sums[0] / sums[2]).item(), (sums[1] / sums[3]).item()
        # Before lecam_start_kimg (BigGAN form: G iteration 1000) the anchors follow the latest means.
        self.lecam_anchors.update(real_mean, fake_mean, decay=(0.0 if cur_nimg < self.lecam_start_kimg * 1000 else None))
        self._lecam_sums = None

    # Training state that must survive a resume.
    def state_dict(self):
        return dict(lecam_anchors=self.lecam_anchors.state_dict())

    def load_state_dict(self, state):
        if 'lecam_anchors' in state:
            self.lecam_anchors.load_state_dict(state['lecam_anchors'])

    def augment(self, img):
        # Reals and fakes go through the same pipeline so that D cannot tell them apart by augmentation.
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        if self.diffaugment:
            img = DiffAugment(img, policy=self.diffaugment)
        return img

    def run_D(self, img, c, return_features=False, update_emas=False):
        aug = self.augment(img)
        out = self.D(aug, c, return_features=return_features, update_emas=update_emas)
        if return_features:
            logits, feat = out
        else:
            logits, feat = out, None
        return aug, logits, feat

    def _report_logits(self, domain, logits):
        """D's scores on 'real' or 'fake' images and their signs; ADA's controller (training/ada.py) moves p by
        the mean of Loss/signs/real."""
        training_stats.report(f'Loss/scores/{domain}', logits)
        training_stats.report(f'Loss/signs/{domain}', logits.sign())

    def _report_kd(self, terms):
        total = 0
        for name, value in terms.items():
            training_stats.report(f'Loss/kd/{name}', value)
            total = total + value
        return total

    def _G_main(self, gen_img_fn, gen_c, gain, loss_fn):
        """G's main phase for both backbones: D's verdict on augmented fakes through loss_fn, plus the
        KD terms on G (--kd-div), one backward. gen_img_fn builds the fakes inside the profiled block."""
        with torch.autograd.profiler.record_function('Gmain_forward'):
            gen_img = gen_img_fn()
            gen_aug, gen_logits, _ = self.run_D(gen_img, gen_c)
            self._report_logits('fake', gen_logits)
            loss_G = loss_fn(gen_logits)
            training_stats.report('Loss/G/loss', loss_G)
            total = loss_G.mean()
            if self.kd is not None:
                total = total + self._report_kd(self.kd.g_terms(gen_img=gen_aug))
        with torch.autograd.profiler.record_function('Gmain_backward'):
            total.mul(gain).backward()

    def _D_main(self, gen_img_fn, gen_c, real_img, real_c, cur_nimg, loss_fn, update_emas=False):
        """D's main phase for both backbones: fakes (no graph through G) then reals through D, the loss terms
        loss_fn(gen_logits, real_logits) -> (fake term, real term), reported summed as Loss/D/loss and added as
        means, LeCam and the KD terms. One graph, so the KD cross terms (teacher of one domain vs student of
        the other) share one backward. Returns the total and the reals' logits (for R1)."""
        use_kd = self.kd is not None
        with torch.no_grad():  # D's phase: no graph through G.
            gen_img = gen_img_fn()
        gen_aug, gen_logits, gen_feat = self.run_D(gen_img, gen_c, return_features=use_kd, update_emas=update_emas)
        self._report_logits('fake', gen_logits)
        real_aug, real_logits, real_feat = self.run_D(real_img, real_c, return_features=use_kd)
        self._report_logits('real', real_logits)
        loss_fake, loss_real = loss_fn(gen_logits, real_logits)
        training_stats.report('Loss/D/loss', loss_fake + loss_real)
        total = loss_fake.mean() + loss_real.mean() + self._lecam_term(real_logits, gen_logits, cur_nimg)
        if use_kd:
            terms = self.kd.d_terms(real_img=real_aug, real_feat=real_feat, gen_img=gen_aug, gen_feat=gen_feat)
            total = total + self._report_kd(terms)
        return total, real_logits

    def _lecam_term(self, real_logits, gen_logits, cur_nimg):
        """Weighted LeCam penalty against the anchors as the phase began (end_phase() moves them).
        Off (zero) before lecam_start_kimg and before the first anchors exist."""
        if self.lecam == 0:
            return 0
        batch = torch.stack([real_logits.detach().sum(), gen_logits.detach().sum(),
            torch.tensor(float(real_logits.numel()), device=real_logits.device),
            torch.tensor(float(gen_logits.numel()), device=gen_logits.device)]).to(torch.float64)
        self._lecam_sums = batch if self._lecam_sums is None else self._lecam_sums + batch
        if self.lecam_anchors.real is None or cur_nimg < self.lecam_start_kimg * 1000:
            return 0
        penalty = lecam_penalty(real_logits, gen_logits, self.lecam_anchors.real, self.lecam_anchors.fake)
        training_stats.report('Loss/lecam_penalty', penalty)
        return penalty * self.lecam

#----------------------------------------------------------------------------

class StyleGAN2Loss(GANLoss):
    def __init__(self, device, G, D, augment_pipe=None, diffaugment='', r1_gamma=10, style_mixing_prob=0,
                 pl_weight=0, pl_batch_shrink=2, pl_decay=0.01, pl_no_weight_grad=False, lecam=0, lecam_decay=LECAM_DECAY['stylegan2'],
                 lecam_start_kimg=0, kd=None):
        super().__init__(device=device, G=G, D=D, augment_pipe=augment_pipe, diffaugment=diffaugment, lecam=lecam,
            lecam_decay=lecam_decay, lecam_start_kimg=lecam_start_kimg, kd=kd)
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_no_weight_grad = pl_no_weight_grad
        self.pl_mean = torch.zeros([], device=self.device)

    def state_dict(self):
        return dict(super().state_dict(), pl_mean=self.pl_mean.detach().cpu().clone())

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.pl_mean.copy_(state['pl_mean'].to(self.device))

    def run_G(self, z, c, update_emas=False):
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            with torch.autograd.profiler.record_function('style_mixing'):
                num_ws = ws.shape[1]
                cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
                cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff, torch.full_like(cutoff, num_ws))
                mixed = self.G.mapping(torch.randn_like(z), c, update_emas=False)
                layer_idx = torch.arange(num_ws, device=ws.device)[None, :, None]
                ws = torch.where(layer_idx < cutoff, ws, mixed)
        img = self.G.synthesis(ws, update_emas=update_emas)
        return img, ws

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        if phase not in PHASES:
            raise ValueError(f'unknown loss phase "{phase}"; expected one of {", ".join(PHASES)}')
        if self.pl_weight == 0:
            phase = {'Greg': 'none', 'Gboth': 'Gmain'}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {'Dreg': 'none', 'Dboth': 'Dmain'}.get(phase, phase)
        do_Gmain = phase in ('Gmain', 'Gboth')
        do_Gpl = phase in ('Greg', 'Gboth')
        do_Dmain = phase in ('Dmain', 'Dboth')
        do_Dr1 = phase in ('Dreg', 'Dboth')

        # Gmain: make D call the fakes real (non-saturating loss).
        # w_avg moves on every mapping call of G's main, G's regularisation and D's main phase, as in
        # StyleGAN2-ADA (its mapping updates w_avg whenever it runs in training mode), except style mixing's.
        if do_Gmain:
            self._G_main(lambda: self.run_G(gen_z, gen_c, update_emas=True)[0], gen_c, gain, loss_fn=lambda logits: F.softplus(-logits))

        # Greg: path-length regularisation on a shrunk batch.
        if do_Gpl:
            with torch.autograd.profiler.record_function('Gpl_forward'):
                batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
                gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size], update_emas=True)
                pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
                with torch.autograd.profiler.record_function('pl_grads'), conv2d_gradfix.no_weight_gradients(self.pl_no_weight_grad):
                    pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True, only_inputs=True)[0]
                pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
                pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
                self.pl_mean.copy_(pl_mean.detach())
                pl_penalty = (pl_lengths - pl_mean).square()
                training_stats.report('Loss/pl_penalty', pl_penalty)
                loss_Gpl = pl_penalty * self.pl_weight
                training_stats.report('Loss/G/reg', loss_Gpl)
            with torch.autograd.profiler.record_function('Gpl_backward'):
                loss_Gpl.mean().mul(gain).backward()

        # Dmain and/or Dreg: D's main loss (logistic) and R1 on the same reals share one backward.
        if do_Dmain or do_Dr1:
            name = 'Dboth' if do_Dmain and do_Dr1 else 'Dmain' if do_Dmain else 'Dreg'
            with torch.autograd.profiler.record_function(name + '_forward'):
                real_img_tmp = real_img.detach().requires_grad_(do_Dr1)
                if do_Dmain:
                    total, real_logits = self._D_main(lambda: self.run_G(gen_z, gen_c, update_emas=True)[0], gen_c, real_img_tmp,
                        real_c, cur_nimg, loss_fn=lambda gen, real: (F.softplus(gen), F.softplus(-real)), update_emas=True)
                else:
                    total = 0
                    _real_aug, real_logits, _real_feat = self.run_D(real_img_tmp, real_c)
                    self._report_logits('real', real_logits)
                if do_Dr1:
                    with torch.autograd.profiler.record_function('r1_grads'), conv2d_gradfix.no_weight_gradients():
                        r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True, only_inputs=True)[0]
                    r1_penalty = r1_grads.square().sum([1, 2, 3])
                    loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                    training_stats.report('Loss/r1_penalty', r1_penalty)
                    training_stats.report('Loss/D/reg', loss_Dr1)
                    total = total + loss_Dr1.mean()
            with torch.autograd.profiler.record_function(name + '_backward'):
                total.mul(gain).backward()

#----------------------------------------------------------------------------

def _hinge_D(gen_logits, real_logits):
    """BigGAN's D terms, each a batch mean: relu(1 + D(G(z))) and relu(1 - D(x))."""
    loss_real = F.relu(1 - real_logits).mean()  # First, as the graph has always been built.
    return F.relu(1 + gen_logits).mean(), loss_real

class BigGANLoss(GANLoss):
    """Hinge loss of BigGAN: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).
    No regularisation phases: Gboth/Dboth are the main phases."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        phase = {'Gboth': 'Gmain', 'Dboth': 'Dmain'}.get(phase, phase)
        if phase not in ('Gmain', 'Dmain'):
            raise ValueError(f'BigGANLoss has no phase "{phase}"; expected Gmain or Dmain (no lazy regularisation)')
        if phase == 'Gmain':
            self._G_main(lambda: self.G(gen_z, gen_c), gen_c, gain, loss_fn=lambda logits: -logits)
            return

        with torch.autograd.profiler.record_function('Dmain_forward'):
            total, _real_logits = self._D_main(lambda: self.G(gen_z, gen_c), gen_c, real_img.detach(), real_c, cur_nimg,
                loss_fn=_hinge_D)
        with torch.autograd.profiler.record_function('Dmain_backward'):
            total.mul(gain).backward()

#----------------------------------------------------------------------------
