"""The training state of a run: progress counters, and the snapshot's resume_state (optimizers, progress,
ADA, loss, random generators) that lets a run continue exactly where it stopped."""

import random

import numpy as np
import torch

#----------------------------------------------------------------------------

def to_cpu(obj):
    """Deep copy of a (nested) state dict with every tensor moved to the CPU, for pickling."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {key: to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(value) for value in obj)
    return obj

def rng_states(device, cuda=torch.cuda):
    """Every generator a resumed run must continue. `cuda` is the module that owns the accelerator's
    generator (torch.cuda); tests pass a stand-in to run the CUDA branch without a GPU."""
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == 'cuda':
        states['cuda'] = cuda.get_rng_state(device)
    return states

def set_rng_states(states, device, cuda=torch.cuda):
    torch.set_rng_state(states['torch'])
    np.random.set_state(states['numpy'])
    random.setstate(states['python'])
    if device.type == 'cuda' and 'cuda' in states:
        cuda.set_rng_state(states['cuda'], device)

def gather_loss_states(loss, num_gpus):
    """Every process's loss state (pl_mean is kept per process, as in StyleGAN2-ADA), so that a run of N
    processes continues exactly; None for one process. A collective: call it on every rank."""
    if num_gpus == 1:
        return None
    states = [None] * num_gpus
    torch.distributed.all_gather_object(states, to_cpu(loss.state_dict()))
    return states

#----------------------------------------------------------------------------

class TrainState:
    """Where the run stands, and what a snapshot needs to continue it.

    cur_nimg:        reals shown to D so far (D_steps global batches per step).
    cur_tick:        index of the current tick; tick_start_nimg: cur_nimg when it began.
    batch_idx:       training steps taken.
    sampler_pos:     position in the data stream (training/data_stream.py).
    tick_end, done:  set by end_step(): the step ended a tick / the run.
    """

    def __init__(self, optimizers, loss, ada, step_nimg, total_kimg, kimg_per_tick, rank, num_gpus, device):
        self.optimizers = optimizers
        self.loss = loss
        self.ada = ada
        self.step_nimg = step_nimg
        self.total_kimg = total_kimg
        self.kimg_per_tick = kimg_per_tick
        self.rank = rank
        self.num_gpus = num_gpus
        self.device = device
        self.cur_nimg = self.cur_tick = self.tick_start_nimg = self.batch_idx = self.sampler_pos = 0
        self.tick_end = self.done = False

    def end_step(self):
        """Count the step; the run ends at total_kimg, a tick after kimg_per_tick (the first tick is one step)."""
        self.cur_nimg += self.step_nimg
        self.sampler_pos += self.step_nimg
        self.batch_idx += 1
        self.done = (self.cur_nimg >= self.total_kimg * 1000)
        self.tick_end = self.done or self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + self.kimg_per_tick * 1000

    def end_tick(self):
        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        self.tick_end = False

    def state_dict(self):
        """The snapshot's resume_state. After a tick's end it resumes at the next tick; mid-tick (a stop on a
        signal) inside the same tick. A collective when num_gpus > 1 (every process's loss state)."""
        next_tick, next_tick_start = (self.cur_tick + 1, self.cur_nimg) if self.tick_end else (self.cur_tick, self.tick_start_nimg)
        return dict(G_opt=to_cpu(self.optimizers['G'].state_dict()), D_opt=to_cpu(self.optimizers['D'].state_dict()),
            cur_nimg=self.cur_nimg, cur_tick=next_tick, tick_start_nimg=next_tick_start, batch_idx=self.batch_idx,
            sampler_pos=self.sampler_pos, **self.ada.state_dict(), loss=self.loss.state_dict(),
            loss_per_rank=gather_loss_states(self.loss, self.num_gpus), rng=rng_states(self.device))

    def load_state_dict(self, state):
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[f'{name}_opt'])
        self.cur_nimg, self.cur_tick = state['cur_nimg'], state['cur_tick']
        self.batch_idx, self.sampler_pos = state['batch_idx'], state['sampler_pos']
        self.tick_start_nimg = state.get('tick_start_nimg', self.cur_nimg)  # Mid-tick after a signal; older snapshots lack it.
        self.ada.load_state_dict(state)
        per_rank = state.get('loss_per_rank')  # Each process its own pl_mean, when the process count is the same.
        self.loss.load_state_dict(per_rank[self.rank] if per_rank is not None and len(per_rank) == self.num_gpus else state['loss'])
        set_rng_states(state['rng'], self.device)

#----------------------------------------------------------------------------
