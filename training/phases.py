"""The phases of a training step (G main, G reg, D main x D_steps, D reg): lazy regularisation, gradient
accumulation over the chunks of the global batch, the manual all-reduce of gradients and the stop on
non-finite gradients."""

import random

import numpy as np
import torch

import dnnlib
from torch_utils import accel
from torch_utils import misc
from torch_utils import training_stats

#----------------------------------------------------------------------------

NONFINITE_PATIENCE = 4  # Consecutive steps with NaN/inf gradients before the run stops.

class TrainingDiverged(RuntimeError):
    """Losses or gradients stayed non-finite; the snapshots on disk are the last good state."""

def seed_chunk(random_seed, batch_idx, phase_idx, chunk_idx):
    """Seed every RNG from (seed, step, phase, chunk): a chunk draws the same noise, latents, labels and
    augmentations whichever process runs it, so runs are independent of the GPU count and resume exactly."""
    state = np.random.SeedSequence([random_seed, batch_idx, phase_idx, chunk_idx]).generate_state(2)
    seed = (int(state[0]) << 32) | int(state[1])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(state)
    return np.random.RandomState(state)

#----------------------------------------------------------------------------

class Phase:
    """One phase: the loss phase `name` ('Gmain', 'Dreg', ...) trains `module` with `opt` every `interval`
    steps on the step's real_idx-th batch of reals; timed with events on rank 0."""

    def __init__(self, name, module, opt, interval, real_idx, timed, device):
        self.name, self.module, self.opt, self.interval, self.real_idx = name, module, opt, interval, real_idx
        self.start_event = self.end_event = None
        if timed:
            self.start_event, self.end_event = accel.timing_event(device), accel.timing_event(device)

    def begin_phase(self):
        if self.start_event is not None:
            self.start_event.record()

    def end_phase(self):
        if self.end_event is not None:
            self.end_event.record()

    def report_timing(self):
        """Timing/<name>: the phase's last run, when its events are done."""
        if self.start_event is not None and self.end_event.query():
            training_stats.report0('Timing/' + self.name, self.start_event.elapsed_time(self.end_event))

def build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, D_steps, timed, device):
    """The phases in their order and the optimizers {'G': ..., 'D': ...}. Lazy regularisation every k steps
    rescales Adam (lr * k/(k+1), betas ** (k/(k+1))) so that the main steps keep their meaning."""
    phases = []
    optimizers = dict()
    for name, module, opt_kwargs, reg_interval in [('G', G, G_opt_kwargs, G_reg_interval), ('D', D, D_opt_kwargs, D_reg_interval)]:
        opt_kwargs = dnnlib.EasyDict(opt_kwargs)
        if reg_interval is not None:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt_kwargs.lr = opt_kwargs.lr * mb_ratio
            opt_kwargs.betas = [beta ** mb_ratio for beta in opt_kwargs.betas]
        opt = dnnlib.util.construct_class_by_name(module.parameters(), **opt_kwargs)
        optimizers[name] = opt
        # D's main phase repeats D_steps times per step, the k-th on the k-th batch of reals.
        repeats = D_steps if name == 'D' else 1
        main = name + ('both' if reg_interval is None else 'main')
        phases += [(main, module, opt, 1, real_idx) for real_idx in range(repeats)]
        if reg_interval is not None:
            phases += [(name + 'reg', module, opt, reg_interval, 0)]
    phases = [Phase(name=name, module=module, opt=opt, interval=interval, real_idx=real_idx, timed=timed, device=device)
        for name, module, opt, interval, real_idx in phases]
    return phases, optimizers

#----------------------------------------------------------------------------

class PhaseRunner:
    """Runs the due phases of each training step. A chunk is batch_gpu images; each process runs `rounds`
    chunks per phase, and the chunk's RNG keys (seed_chunk) make the result independent of the split."""

    def __init__(self, phases, loss, training_set, z_dim, random_seed, rank, num_gpus, batch_gpu, rounds, device, log):
        self.phases = phases
        self.loss = loss
        self.training_set = training_set
        self.z_dim = z_dim
        self.random_seed = random_seed
        self.rank = rank
        self.num_gpus = num_gpus
        self.batch_gpu = batch_gpu
        self.rounds = rounds
        self.device = device
        self.log = log
        self.nonfinite_steps = 0  # Consecutive steps with non-finite gradients.

    def run_step(self, step_reals, batch_idx, cur_nimg):
        """Every phase due at step batch_idx; step_reals[k] = (image chunks, label chunks) of the k-th batch."""
        nonfinite = torch.zeros([], dtype=torch.bool, device=self.device)
        for phase_idx, phase in enumerate(self.phases):
            if batch_idx % phase.interval != 0:
                continue
            phase.begin_phase()
            self._accumulate(phase, phase_idx, step_reals[phase.real_idx], batch_idx=batch_idx, cur_nimg=cur_nimg)
            with torch.autograd.profiler.record_function(phase.name + '_opt'):
                nonfinite |= self._reduce_gradients(phase)
                phase.opt.step()
            phase.end_phase()
        # Gradients are averaged before the check, so every rank takes the same decision.
        self.nonfinite_steps = self.nonfinite_steps + 1 if bool(nonfinite) else 0

    def _accumulate(self, phase, phase_idx, reals, batch_idx, cur_nimg):
        """Accumulate the phase's gradients over this process's chunks; each chunk's loss is scaled by 1/rounds,
        so the gradient is the mean over the global batch, whatever batch_gpu and num_gpus are."""
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        self.loss.begin_phase(f'{self.random_seed}-{batch_idx}-{phase_idx}')  # Per-step draws (the AGKD gate).
        for round_idx, (real_img, real_c) in enumerate(zip(*reals)):
            label_rnd = seed_chunk(self.random_seed, batch_idx, phase_idx, self.rank * self.rounds + round_idx)
            gen_z = torch.randn([self.batch_gpu, self.z_dim], device=self.device)
            gen_c = np.stack([self.training_set.get_label(i) for i in label_rnd.randint(len(self.training_set), size=self.batch_gpu)])
            gen_c = torch.from_numpy(gen_c).to(self.device)
            self.loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                gain=phase.interval / self.rounds, cur_nimg=cur_nimg)
        phase.module.requires_grad_(False)
        self.loss.end_phase(cur_nimg)

    def _reduce_gradients(self, phase):
        """Average the gradients across processes by hand (covers any submodule, e.g. D.kd_head) in one flat
        all-reduce, replace NaN/inf; returns whether any was non-finite (a bool tensor)."""
        params = [param for param in phase.module.parameters() if param.grad is not None]
        if len(params) == 0:
            return torch.zeros([], dtype=torch.bool, device=self.device)
        flat = torch.cat([param.grad.flatten() for param in params])
        if self.num_gpus > 1:
            torch.distributed.all_reduce(flat)
            flat /= self.num_gpus
        nonfinite = ~torch.isfinite(flat).all()
        misc.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
        for param, grad in zip(params, flat.split([param.numel() for param in params])):
            param.grad = grad.reshape(param.shape)
        return nonfinite

    def check_finite(self, cur_nimg, last_snapshot):
        """Stop the run (TrainingDiverged) after NONFINITE_PATIENCE steps in a row with non-finite gradients."""
        if self.nonfinite_steps < NONFINITE_PATIENCE:
            return
        where = f'the last good snapshot is {last_snapshot}' if last_snapshot is not None else 'no snapshot was written yet'
        message = (f'Training stopped at {cur_nimg / 1000:g} kimg: losses/gradients were NaN or inf for '
            f'{self.nonfinite_steps} consecutive steps; {where}. Try a lower learning rate (--glr/--dlr) or --fp32.')
        self.log(message)
        raise TrainingDiverged(message)

    def end_tick(self):
        """Report each phase's time (rank 0) before the tick's statistics are collected."""
        for phase in self.phases:
            phase.report_timing()

#----------------------------------------------------------------------------
