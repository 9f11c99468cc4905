"""Main training loop: lazy-regularised G/D phases, gradient accumulation with a manual all-reduce,
EMA of G, ADA, ticks with statistics, image grids, snapshots with an exact-resume state, metrics."""

import copy
import json
import os
import random
import time

import numpy as np
import psutil
import torch

import dnnlib
from torch_utils import accel
from torch_utils import misc
from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix
from training import image_grid
from training import preempt
from training import run_dir as run_names
from training.retention import SnapshotKeeper
from training.snapshot import load_network_pkl, save_snapshot

#----------------------------------------------------------------------------

NONFINITE_PATIENCE = 4  # Consecutive steps with NaN/inf gradients before the run stops.

class TrainingDiverged(RuntimeError):
    """Losses or gradients stayed non-finite; the snapshots on disk are the last good state."""

#----------------------------------------------------------------------------
# Small pieces kept separate so tests can check them against hand computations.

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

def ada_adjust(p, sign_mean, ada_target, num_images, ada_kimg):
    """ADA: move p toward making E[sign(D(real))] equal ada_target; full range 0 -> 1 takes ada_kimg kimg."""
    adjust = np.sign(sign_mean - ada_target) * num_images / (ada_kimg * 1000)
    return max(p + adjust, 0.0)

def _seed_chunk(random_seed, batch_idx, phase_idx, chunk_idx):
    """Seed every RNG from (seed, step, phase, chunk): a chunk draws the same noise, latents, labels and
    augmentations whichever process runs it, so runs are independent of the GPU count and resume exactly."""
    state = np.random.SeedSequence([random_seed, batch_idx, phase_idx, chunk_idx]).generate_state(2)
    seed = (int(state[0]) << 32) | int(state[1])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(state)
    return np.random.RandomState(state)

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

def _to_cpu(obj):
    """Deep copy of a (nested) state dict with every tensor moved to the CPU, for pickling."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj

def _rng_states(device, cuda=torch.cuda):
    """Every generator a resumed run must continue. `cuda` is the module that owns the accelerator's
    generator (torch.cuda); tests pass a stand-in to run the CUDA branch without a GPU."""
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == 'cuda':
        states['cuda'] = cuda.get_rng_state(device)
    return states

def _set_rng_states(states, device, cuda=torch.cuda):
    torch.set_rng_state(states['torch'])
    np.random.set_state(states['numpy'])
    random.setstate(states['python'])
    if device.type == 'cuda' and 'cuda' in states:
        cuda.set_rng_state(states['cuda'], device)

def _fold_ada_stats(ada_stats, ada_carry):
    """Add the D(real) signs collected since the last call to the carried [count, sum]."""
    ada_stats.update()
    num = ada_stats.num('Loss/signs/real')
    if num == 0:
        return ada_carry
    return [ada_carry[0] + num, ada_carry[1] + num * ada_stats.mean('Loss/signs/real')]

def _tick_line(cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time, tick_timing_nimg, total_kimg, maintenance_time,
        device, augment_pipe):
    """Report the tick's progress, timing and resources to training_stats; return the line to print."""
    fields = []
    fields += [f"tick {training_stats.report0('Progress/tick', cur_tick):<5d}"]
    fields += [f"kimg {training_stats.report0('Progress/kimg', cur_nimg / 1e3):<8.3f}"]
    fields += [f"time {dnnlib.util.format_time(training_stats.report0('Timing/total_sec', tick_end_time - start_time)):<12s}"]
    fields += [f"sec/tick {training_stats.report0('Timing/sec_per_tick', tick_end_time - tick_start_time):<7.1f}"]
    sec_per_kimg = (tick_end_time - tick_start_time) / max(cur_nimg - tick_timing_nimg, 1) * 1e3
    fields += [f"sec/kimg {training_stats.report0('Timing/sec_per_kimg', sec_per_kimg):<7.2f}"]
    fields += [f"ETA {dnnlib.util.format_time(max(total_kimg - cur_nimg / 1e3, 0) * sec_per_kimg):<12s}"]
    fields += [f"maintenance {training_stats.report0('Timing/maintenance_sec', maintenance_time):<6.1f}"]
    fields += [f"cpumem {training_stats.report0('Resources/cpu_mem_gb', psutil.Process(os.getpid()).memory_info().rss / 2**30):<6.2f}"]
    peak_gpu_mem = accel.peak_memory_gb(device)
    if peak_gpu_mem is not None:
        fields += [f"gpumem {training_stats.report0('Resources/peak_gpu_mem_gb', peak_gpu_mem):<6.2f}"]
    fields += [f"augment {training_stats.report0('Progress/augment', float(augment_pipe.p) if augment_pipe is not None else 0):.3f}"]
    training_stats.report0('Timing/total_hours', (tick_end_time - start_time) / (60 * 60))
    training_stats.report0('Timing/total_days', (tick_end_time - start_time) / (24 * 60 * 60))
    return ' '.join(fields)

def _gather_loss_states(loss, num_gpus):
    """Every process's loss state (pl_mean is kept per process, as in StyleGAN2-ADA), so that a run of N
    processes continues exactly; None for one process. A collective: call it on every rank."""
    if num_gpus == 1:
        return None
    states = [None] * num_gpus
    torch.distributed.all_gather_object(states, _to_cpu(loss.state_dict()))
    return states

def _snapshot_data(modules, num_gpus, training_set_kwargs, resume_state):
    """The pickle's contents: CPU copies of the networks (checked equal across processes) and the state."""
    data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in modules.items():
        if module is not None:
            if num_gpus > 1:
                misc.check_ddp_consistency(module, ignore_regex=r'.*\.[^.]+_(avg|ema)')
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        data[name] = module
    data['resume_state'] = resume_state
    return data

def _evaluate_metrics(metrics, G_ema, snapshot_pkl, cur_nimg, keeper, dataset_kwargs, num_gpus, rank, device, detector_dir,
        run_dir, log):
    """Every metric of a snapshot (every rank computes its share, rank 0 writes); the first one picks the best."""
    from metrics import metric_main  # Imported only when used: it pulls in the detectors' stack.
    log('Evaluating metrics...')
    results = dict()
    for idx, metric in enumerate(metrics):
        result_dict = metric_main.calc_metric(metric=metric, G=G_ema, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus,
            rank=rank, device=device, detector_dir=detector_dir)
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
            if idx == 0:
                keeper.scored(snapshot_pkl, metric, result_dict['results'], cur_nimg)
        results.update(result_dict['results'])
    return results

def _resume_networks(resume_pkl, resume_mode, modules, log):
    """Load the networks of the --resume snapshot into `modules`; returns its training state when the run
    continues, None for transfer learning (weights that match by name and shape, listed when some do not)."""
    data = load_network_pkl(resume_pkl)
    if resume_mode == 'continue':
        if data['resume_state'] is None:
            raise ValueError(f'{resume_pkl}: the snapshot holds no training state to continue from')
        for name, module in modules.items():
            misc.copy_params_and_buffers(data[name], module, require_all=True)
        log(f'Continuing the run of "{resume_pkl}".')
        return data['resume_state']
    left, unused = [], []
    for name, module in modules.items():
        if data[name] is None:
            left.append(f'{name} (not in the pickle)')
            continue
        module_left, module_unused = misc.copy_matching_params_and_buffers(data[name], module)
        left += [f'{name}.{entry}' for entry in module_left]
        unused += [f'{name}.{entry}' for entry in module_unused]
    log(f'Transfer learning from "{resume_pkl}": the weights that match by name and shape; progress starts at 0.')
    if left or unused:
        log(f'Transfer: {len(left)} tensors left at their initialisation: {", ".join(left) or "none"}; '
            f'{len(unused)} tensors of the pickle unused: {", ".join(unused) or "none"}.')
    return None

#----------------------------------------------------------------------------

def training_loop(
    run_dir                 = '.',      # Output directory.
    training_set_kwargs     = {},       # Options for the training set.
    data_loader_kwargs      = {},       # Options for torch.utils.data.DataLoader.
    G_kwargs                = {},       # Options for the generator.
    D_kwargs                = {},       # Options for the discriminator.
    G_opt_kwargs            = {},       # Options for the generator optimizer.
    D_opt_kwargs            = {},       # Options for the discriminator optimizer.
    augment_kwargs          = None,     # Options for the ADA pipeline; None = no ADA.
    loss_kwargs             = {},       # Options for the loss.
    kd_kwargs               = {},       # Options for knowledge distillation (kd.loss.build_kd_terms).
    metrics                 = [],       # Metrics evaluated after each network snapshot.
    metric_data             = None,     # Reference dataset of the metrics (path); None = the training set.
    detector_dir            = None,     # Folder holding the metrics' detector files (offline use).
    random_seed             = 0,        # Global random seed.
    num_gpus                = 1,        # Number of processes taking part.
    rank                    = 0,        # Rank of this process in [0, num_gpus).
    batch_size              = 4,        # Total batch size of one training step, over all processes.
    batch_gpu               = 4,        # Images per forward/backward pass on one process.
    ema_kimg                = 10,       # Half-life of the EMA of G, in thousands of images.
    ema_rampup              = 0.05,     # EMA ramp-up coefficient; None = no ramp-up.
    ema_start_kimg          = 0,        # G_ema is a plain copy of G until this many kimg (BigGAN's ema_start).
    D_steps                 = 1,        # D steps per G step, each on its own batch of reals (BigGAN: 4).
    G_reg_interval          = 4,        # Lazy regularisation interval for G; None = every step with the main loss.
    D_reg_interval          = 16,       # Lazy regularisation interval for D; None = every step with the main loss.
    augment_p               = 0,        # Initial ADA probability.
    ada_target              = None,     # ADA target value; None = fixed p.
    ada_interval            = 4,        # Steps between ADA adjustments.
    ada_kimg                = 500,      # ADA speed: kimg for p to go from 0 to 1.
    total_kimg              = 25000,    # Length of training, in thousands of images.
    kimg_per_tick           = 4,        # Progress print interval, in thousands of images.
    image_snapshot_ticks    = 50,       # Ticks between image grids; None = none.
    network_snapshot_ticks  = 50,       # Ticks between network snapshots; None = none.
    resume_pkl              = None,     # Network pickle to resume from (path or URL).
    resume_mode             = 'transfer', # 'continue': weights and training state; 'transfer': matching weights only.
    snapshot_keep           = None,     # Keep the newest N network snapshots (and the best); None = all.
    write_weights           = False,    # Also write a weights-only file (training/weights.py) beside each snapshot.
    cudnn_benchmark         = True,     # torch.backends.cudnn.benchmark.
    allow_tf32              = False,    # TF32 for matmul and convolutions.
    device                  = None,     # Device of this process; None = CUDA when available.
    stop_request            = None,     # preempt.StopRequest of this process: a signal stops after the current step.
):
    # Over 80 lines: the phases, ADA, training state, reporter and snapshots as small objects of one protocol is
    # the restructuring that issue "one home per concern" asks for; until then the driver is written out here.
    start_time = time.time()
    device = torch.device(device if device is not None else ('cuda' if torch.cuda.is_available() else 'cpu'))
    log = print if rank == 0 else (lambda *args, **kwargs: None)
    if batch_size % (batch_gpu * num_gpus) != 0:
        raise ValueError(f'batch_size={batch_size} must be a multiple of batch_gpu * num_gpus = {batch_gpu} * {num_gpus}')
    rounds = batch_size // (batch_gpu * num_gpus)
    if D_steps < 1:
        raise ValueError(f'D_steps must be at least 1, got {D_steps}')
    step_nimg = batch_size * D_steps  # Real images shown to D per training step.

    # The same seed on every rank: identical initial weights; per-step randomness comes from _seed_chunk.
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    random.seed(random_seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    conv2d_gradfix.enabled = True
    grid_sample_gradfix.enabled = True

    # Training set.
    log('Loading training set...')
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    log(f'Num images:  {len(training_set)}')
    log(f'Image shape: {training_set.image_shape}')
    log(f'Label shape: {training_set.label_shape}')
    log()

    # Networks.
    log('Constructing networks...')
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution, img_channels=training_set.num_channels)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()

    # Knowledge distillation adds D.kd_head, so it must come before D's optimizer and the resume copy.
    kd_terms = None
    if kd_kwargs.get('kd', 'none') != 'none':
        from kd.loss import build_kd_terms  # Imported only when used: it pulls in open_clip.
        kd_terms = build_kd_terms(D=D, device=device, class_names=training_set.class_names, dataset_name=training_set.name,
            label_dim=training_set.label_dim, log=log, global_batch=batch_size, **kd_kwargs)
        D.requires_grad_(False)
        log(f'Knowledge distillation: {json.dumps(kd_terms.options, default=str)}')

    # Augmentation.
    augment_pipe = None
    ada_stats = None
    if augment_kwargs is not None and (augment_p > 0 or ada_target is not None):
        augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
        augment_pipe.p.copy_(torch.as_tensor(augment_p))
        if ada_target is not None:
            ada_stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False)

    # Resume.
    state = None
    if resume_pkl is not None:
        state = _resume_networks(resume_pkl, resume_mode, dict(G=G, D=D, G_ema=G_ema), log)

    # Summaries.
    if rank == 0:
        # In eval mode, so the pass does not advance state kept in buffers (spectral-norm vectors).
        G.eval(); D.eval()
        z = torch.empty([batch_gpu, G.z_dim], device=device)
        c = torch.empty([batch_gpu, G.c_dim], device=device)
        img = misc.print_module_summary(G, [z, c])
        misc.print_module_summary(D, [img, c])
        G.train(); D.train()

    # Identical starting point on every rank.
    if num_gpus > 1:
        log(f'Distributing across {num_gpus} processes...')
        for module in [G, D, G_ema, augment_pipe]:
            if module is not None:
                for tensor in misc.params_and_buffers(module):
                    torch.distributed.broadcast(tensor, src=0)

    # Loss and optimizers; lazy regularisation rescales Adam so the main steps keep their meaning.
    log('Setting up training phases...')
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, kd=kd_terms, **loss_kwargs)
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
        for real_idx in range(repeats):
            if reg_interval is None:
                phases += [dnnlib.EasyDict(name=name + 'both', module=module, opt=opt, interval=1, real_idx=real_idx)]
            else:
                phases += [dnnlib.EasyDict(name=name + 'main', module=module, opt=opt, interval=1, real_idx=real_idx)]
        if reg_interval is not None:
            phases += [dnnlib.EasyDict(name=name + 'reg', module=module, opt=opt, interval=reg_interval, real_idx=0)]
    for phase in phases:
        phase.start_event = phase.end_event = None
        if rank == 0:
            phase.start_event, phase.end_event = accel.timing_event(device), accel.timing_event(device)

    # Progress counters, restored for an exact resume.
    cur_nimg, cur_tick, batch_idx, sampler_pos = 0, 0, 0, 0
    ada_carry = [0, 0.0]  # Count and sum of D(real) signs since the last ADA adjustment, across ticks.
    if state is not None:
        for name, opt in optimizers.items():
            opt.load_state_dict(state[f'{name}_opt'])
        cur_nimg, cur_tick, batch_idx, sampler_pos = state['cur_nimg'], state['cur_tick'], state['batch_idx'], state['sampler_pos']
        ada_carry = list(state['ada_carry'])
        per_rank = state.get('loss_per_rank')  # Each process its own pl_mean, when the process count is the same.
        loss.load_state_dict(per_rank[rank] if per_rank is not None and len(per_rank) == num_gpus else state['loss'])
        if augment_pipe is not None and state['augment_p'] is not None:
            augment_pipe.p.copy_(torch.as_tensor(state['augment_p']))
        _set_rng_states(state['rng'], device)
        log(f'Continuing at {cur_nimg / 1000:g} kimg, tick {cur_tick}, step {batch_idx}.')
    tick_start_nimg = state.get('tick_start_nimg', cur_nimg) if state is not None else 0  # Mid-tick after a signal.

    # Data.
    sampler = GlobalBatchSampler(training_set, batch_size=batch_size, rank=rank, num_gpus=num_gpus, seed=random_seed, start=sampler_pos)
    worker_init = dict(worker_init_fn=preempt.ignore_in_worker) if data_loader_kwargs.get('num_workers', 0) > 0 else {}
    training_set_iterator = iter(torch.utils.data.DataLoader(dataset=training_set, batch_sampler=sampler, **data_loader_kwargs,
        **worker_init))

    # Image grids.
    grid_size = grid_z = grid_c = None
    if rank == 0 and image_snapshot_ticks is not None:
        log('Exporting sample images...')
        grid_size, images, labels = image_grid.setup_snapshot_image_grid(training_set, random_seed,
            max_size=image_grid.grid_max_size(device))
        image_grid.save_image_grid(images, os.path.join(run_dir, 'reals.png'), drange=[0, 255], grid_size=grid_size)
        grid_rnd = torch.Generator(device='cpu').manual_seed(random_seed)
        grid_z = torch.randn([labels.shape[0], G.z_dim], generator=grid_rnd).to(device).split(batch_gpu)
        grid_c = torch.from_numpy(labels).to(device).split(batch_gpu)
        image_grid.save_image_grid(image_grid.generate_grid(G_ema, grid_z, grid_c), os.path.join(run_dir, 'fakes_init.png'),
            drange=[-1, 1], grid_size=grid_size)

    # Statistics outputs.
    log('Initializing logs...')
    stats_collector = training_stats.Collector(regex='.*')
    stats_metrics = dict()
    stats_jsonl = None
    stats_tfevents = None
    if rank == 0:
        stats_jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
        try:
            import torch.utils.tensorboard as tensorboard
            stats_tfevents = tensorboard.SummaryWriter(run_dir)
        except ImportError:
            pass  # TensorBoard is optional.

    # Train.
    log(f'Training for {total_kimg} kimg...')
    log()
    tick_timing_nimg = cur_nimg  # Where this process's timing of the tick starts (a resumed tick starts mid-way).
    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    nonfinite_steps = 0
    last_snapshot = None
    snapshot_names, grid_names = set(), set()
    keeper = SnapshotKeeper(run_dir, keep=snapshot_keep, log=log)

    while True:
        # Fetch reals; latents and labels for fakes are drawn per chunk from the chunk's seed.
        with torch.autograd.profiler.record_function('data_fetch'):
            step_reals = []
            for _ in range(D_steps):
                real_img, real_c = next(training_set_iterator)
                step_reals.append(((real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu),
                    real_c.to(device).split(batch_gpu)))

        nonfinite = torch.zeros([], dtype=torch.bool, device=device)
        for phase_idx, phase in enumerate(phases):
            if batch_idx % phase.interval != 0:
                continue
            if phase.start_event is not None:
                phase.start_event.record()

            # Accumulate gradients over the chunks; each chunk's loss is scaled by 1/rounds so the
            # gradient is the mean over the global batch, whatever batch_gpu and num_gpus are.
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            loss.begin_phase(f'{random_seed}-{batch_idx}-{phase_idx}')  # Per-step draws (the AGKD gate).
            phase_real_img, phase_real_c = step_reals[phase.real_idx]
            for round_idx, (real_img, real_c) in enumerate(zip(phase_real_img, phase_real_c)):
                label_rnd = _seed_chunk(random_seed, batch_idx, phase_idx, rank * rounds + round_idx)
                gen_z = torch.randn([batch_gpu, G.z_dim], device=device)
                gen_c = np.stack([training_set.get_label(i) for i in label_rnd.randint(len(training_set), size=batch_gpu)])
                gen_c = torch.from_numpy(gen_c).to(device)
                loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                    gain=phase.interval / rounds, cur_nimg=cur_nimg)
            phase.module.requires_grad_(False)
            loss.end_phase(cur_nimg)

            # Average gradients across processes by hand (covers any submodule, e.g. D.kd_head), then step.
            with torch.autograd.profiler.record_function(phase.name + '_opt'):
                params = [param for param in phase.module.parameters() if param.grad is not None]
                if len(params) > 0:
                    flat = torch.cat([param.grad.flatten() for param in params])
                    if num_gpus > 1:
                        torch.distributed.all_reduce(flat)
                        flat /= num_gpus
                    nonfinite |= ~torch.isfinite(flat).all()
                    misc.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
                    for param, grad in zip(params, flat.split([param.numel() for param in params])):
                        param.grad = grad.reshape(param.shape)
                phase.opt.step()

            if phase.end_event is not None:
                phase.end_event.record()

        # Gradients are averaged before the check, so every rank takes the same decision.
        nonfinite_steps = nonfinite_steps + 1 if bool(nonfinite) else 0
        if nonfinite_steps >= NONFINITE_PATIENCE:
            where = f'the last good snapshot is {last_snapshot}' if last_snapshot is not None else 'no snapshot was written yet'
            message = (f'Training stopped at {cur_nimg / 1000:g} kimg: losses/gradients were NaN or inf for '
                f'{nonfinite_steps} consecutive steps; {where}. Try a lower learning rate (--glr/--dlr) or --fp32.')
            log(message)
            raise TrainingDiverged(message)

        # EMA of G.
        with torch.autograd.profiler.record_function('Gema'):
            step_G_ema(G, G_ema, cur_nimg=cur_nimg, batch_size=batch_size, ema_kimg=ema_kimg, ema_rampup=ema_rampup,
                ema_start_kimg=ema_start_kimg)

        cur_nimg += step_nimg
        sampler_pos += step_nimg
        batch_idx += 1

        # ADA: adjust p from the signs of D on reals over the last ada_interval steps.
        if ada_stats is not None and batch_idx % ada_interval == 0:
            num, total = _fold_ada_stats(ada_stats, ada_carry)
            if num > 0:
                new_p = ada_adjust(float(augment_pipe.p), total / num, ada_target, step_nimg * ada_interval, ada_kimg)
                augment_pipe.p.copy_(torch.as_tensor(new_p))
            ada_carry = [0, 0.0]

        # A signal on any process: every process stops after this same step.
        stopping = stop_request is not None and preempt.agree(stop_request.requested, num_gpus, device)

        # Continue until the end of the tick; the first tick is a single step.
        done = (cur_nimg >= total_kimg * 1000)
        stopping = stopping and not done  # The end of the run comes first.
        tick_end = done or cur_tick == 0 or cur_nimg >= tick_start_nimg + kimg_per_tick * 1000
        if not (tick_end or stopping):
            continue
        if tick_end:
            tick_end_time = time.time()
            log(_tick_line(cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time, tick_timing_nimg, total_kimg,
                maintenance_time, device, augment_pipe))

        # ADA statistics of the unfinished interval are carried in the state, so a resume continues them.
        if ada_stats is not None:
            ada_carry = _fold_ada_stats(ada_stats, ada_carry)

        # Image grid.
        if (rank == 0) and (image_snapshot_ticks is not None) and tick_end and (done or cur_tick % image_snapshot_ticks == 0):
            grid_name = run_names.progress_name('fakes', '.png', cur_nimg, taken=grid_names)
            grid_names.add(grid_name)
            image_grid.save_image_grid(image_grid.generate_grid(G_ema, grid_z, grid_c), os.path.join(run_dir, grid_name),
                drange=[-1, 1], grid_size=grid_size)

        # Network snapshot with everything an exact resume needs; a signal writes one mid-tick too.
        snapshot_pkl = None
        snapshot_data = None
        if stopping or ((network_snapshot_ticks is not None) and tick_end and (done or cur_tick % network_snapshot_ticks == 0)):
            next_tick, next_tick_start = (cur_tick + 1, cur_nimg) if tick_end else (cur_tick, tick_start_nimg)
            snapshot_data = _snapshot_data(dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe), num_gpus, training_set_kwargs,
                resume_state=dict(G_opt=_to_cpu(optimizers['G'].state_dict()), D_opt=_to_cpu(optimizers['D'].state_dict()),
                cur_nimg=cur_nimg, cur_tick=next_tick, tick_start_nimg=next_tick_start, batch_idx=batch_idx,
                sampler_pos=sampler_pos, augment_p=float(augment_pipe.p) if augment_pipe is not None else None,
                ada_carry=list(ada_carry), loss=loss.state_dict(), loss_per_rank=_gather_loss_states(loss, num_gpus),
                rng=_rng_states(device)))
            snapshot_pkl = os.path.join(run_dir, run_names.snapshot_name(cur_nimg, taken=snapshot_names))
            snapshot_names.add(os.path.basename(snapshot_pkl))
            if rank == 0:
                save_snapshot(snapshot_pkl, snapshot_data)
                if write_weights:
                    from training.weights import save_weights, weights_path
                    save_weights(weights_path(snapshot_pkl), snapshot_data)  # Beside it: a file that runs no code.
                keeper.written(snapshot_pkl)
            last_snapshot = snapshot_pkl

        # Metrics: every rank computes its share; rank 0 writes. Skipped when stopping: time may be short.
        if (snapshot_data is not None) and (len(metrics) > 0) and stopping:
            log('Metrics skipped: stopping on a signal (calc_metrics.py can evaluate the snapshot later).')
        elif (snapshot_data is not None) and (len(metrics) > 0):
            stats_metrics.update(_evaluate_metrics(metrics, snapshot_data['G_ema'], snapshot_pkl, cur_nimg, keeper,
                dict(training_set_kwargs) if metric_data is None else dict(training_set_kwargs, path=metric_data),
                num_gpus=num_gpus, rank=rank, device=device, detector_dir=detector_dir, run_dir=run_dir, log=log))
        del snapshot_data

        if stopping:
            break

        # Collect statistics.
        for phase in phases:
            if phase.start_event is not None and phase.end_event.query():
                training_stats.report0('Timing/' + phase.name, phase.start_event.elapsed_time(phase.end_event))
        stats_collector.update()
        stats_dict = stats_collector.as_dict()

        # Write statistics.
        timestamp = time.time()
        if stats_jsonl is not None:
            stats_jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
            stats_jsonl.flush()
            if snapshot_pkl is not None:
                from training.curves import save_run_curves
                save_run_curves(run_dir)  # RUN_DIR/curves.png: the run so far, at every snapshot.
        if stats_tfevents is not None:
            global_step = int(cur_nimg / 1e3)
            walltime = timestamp - start_time
            for name, value in stats_dict.items():
                stats_tfevents.add_scalar(name, value.mean, global_step=global_step, walltime=walltime)
            for name, value in stats_metrics.items():
                stats_tfevents.add_scalar(f'Metrics/{name}', value, global_step=global_step, walltime=walltime)
            stats_tfevents.flush()

        # Next tick.
        cur_tick += 1
        tick_start_nimg = tick_timing_nimg = cur_nimg
        tick_start_time = time.time()
        maintenance_time = tick_start_time - tick_end_time
        if done:
            break

    if stats_jsonl is not None:
        stats_jsonl.close()
    if stats_tfevents is not None:
        stats_tfevents.close()
    if stopping:
        message = (f'Stopped by {stop_request.signal_name or "a signal to another process"} at {cur_nimg / 1000:g} kimg, '
            f'tick {cur_tick}; the training state is in {last_snapshot}. Rerun the same command with --resume=auto '
            f'(or --resume={last_snapshot}) to continue exactly.')
        log()
        log(message)
        raise preempt.Preempted(message)
    log()
    log('Exiting...')

#----------------------------------------------------------------------------
