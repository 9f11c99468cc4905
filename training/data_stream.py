"""The reals of each training step: D_steps global batches, cut from one seeded index stream that every
process replays, so the data order does not depend on the process count and a resume continues it."""

import torch

from torch_utils import misc
from training import preempt

#----------------------------------------------------------------------------

class GlobalBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's contiguous share of each global batch, cut from one seeded index stream that
    every rank replays, starting after `start` indices (the position saved in a snapshot)."""

    def __init__(self, dataset, batch_size, rank, num_gpus, seed, start=0):
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.rank = rank
        self.num_gpus = num_gpus
        self.seed = seed
        self.start = start

    def __iter__(self):
        stream = iter(misc.InfiniteSampler(self.dataset, seed=self.seed))
        for _ in range(self.start):
            next(stream)
        per_rank = self.batch_size // self.num_gpus
        while True:
            batch = [next(stream) for _ in range(self.batch_size)]
            yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]

#----------------------------------------------------------------------------

class RealStream:
    """This process's reals, step after step, from data-stream position `start` (TrainState.sampler_pos).
    Creating it draws the loader's base seed from torch's generator: make it after the RNG states are set."""

    def __init__(self, training_set, batch_size, batch_gpu, D_steps, rank, num_gpus, seed, start, data_loader_kwargs, device):
        self.batch_gpu = batch_gpu
        self.D_steps = D_steps
        self.device = device
        sampler = GlobalBatchSampler(training_set, batch_size=batch_size, rank=rank, num_gpus=num_gpus, seed=seed, start=start)
        worker_init = dict(worker_init_fn=preempt.ignore_in_worker) if data_loader_kwargs.get('num_workers', 0) > 0 else {}
        self.iterator = iter(torch.utils.data.DataLoader(dataset=training_set, batch_sampler=sampler, **data_loader_kwargs,
            **worker_init))

    def next_step(self):
        """D_steps pairs (image chunks, label chunks): images in [-1, 1], chunks of batch_gpu. The fakes' latents
        and labels are drawn per chunk from the chunk's seed (training/phases.py)."""
        with torch.autograd.profiler.record_function('data_fetch'):
            step_reals = []
            for _ in range(self.D_steps):
                real_img, real_c = next(self.iterator)
                step_reals.append(((real_img.to(self.device).to(torch.float32) / 127.5 - 1).split(self.batch_gpu),
                    real_c.to(self.device).split(self.batch_gpu)))
            return step_reals

#----------------------------------------------------------------------------
