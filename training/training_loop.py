"""Main training loop: a short driver over the objects of one training run. Each step runs the G/D phases
(training/phases.py), updates G_ema (training/ema.py) and ADA (training/ada.py) and counts progress
(training/train_state.py); each tick prints a line, writes image grids and statistics (training/reporter.py)
and network snapshots with the exact-resume state and their metrics (training/snapshot_writer.py)."""

import copy
import json
import random
import time

import numpy as np
import torch

import dnnlib
from torch_utils import misc
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix
from training import ada
from training import ema
from training import phases
from training import preempt
from training.data_stream import RealStream
from training.phases import TrainingDiverged  # noqa: F401 (train.py and training/launch.py catch it here)
from training.reporter import Reporter
from training.snapshot import load_network_pkl
from training.snapshot_writer import SnapshotWriter
from training.train_state import TrainState

#----------------------------------------------------------------------------
# Setting up: each piece in the order the driver calls it (the order of random draws and collectives).

def _seed_and_configure(random_seed, cudnn_benchmark, allow_tf32):
    """The same seed on every rank: identical initial weights; per-step randomness comes from phases.seed_chunk."""
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    random.seed(random_seed)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    conv2d_gradfix.enabled = True
    grid_sample_gradfix.enabled = True

def _load_training_set(training_set_kwargs, log):
    log('Loading training set...')
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    log(f'Num images:  {len(training_set)}')
    log(f'Image shape: {training_set.image_shape}')
    log(f'Label shape: {training_set.label_shape}')
    log()
    return training_set

def _build_networks(training_set, G_kwargs, D_kwargs, device, log):
    """G, D and G_ema (a copy of G), in training mode without gradients until a phase asks for them."""
    log('Constructing networks...')
    common_kwargs = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution, img_channels=training_set.num_channels)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common_kwargs).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema

def _build_kd_terms(kd_kwargs, D, training_set, batch_size, device, log):
    """The knowledge-distillation terms, or None. They add D.kd_head, so they come before D's optimizer and the
    resume copy."""
    if kd_kwargs.get('kd', 'none') == 'none':
        return None
    from kd.loss import build_kd_terms  # Imported only when used: it pulls in open_clip.
    kd_terms = build_kd_terms(D=D, device=device, class_names=training_set.class_names, dataset_name=training_set.name,
        label_dim=training_set.label_dim, log=log, global_batch=batch_size, **kd_kwargs)
    D.requires_grad_(False)
    log(f'Knowledge distillation: {json.dumps(kd_terms.options, default=str)}')
    return kd_terms

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

def _print_summaries(G, D, batch_gpu, device):
    """Rank 0: the layer tables of G and D. In eval mode, so the pass does not advance state kept in buffers
    (spectral-norm vectors)."""
    G.eval(); D.eval()
    z = torch.empty([batch_gpu, G.z_dim], device=device)
    c = torch.empty([batch_gpu, G.c_dim], device=device)
    img = misc.print_module_summary(G, [z, c])
    misc.print_module_summary(D, [img, c])
    G.train(); D.train()

def _broadcast(modules, num_gpus, log):
    """Identical starting point on every rank: rank 0's parameters and buffers."""
    log(f'Distributing across {num_gpus} processes...')
    for module in modules:
        if module is not None:
            for tensor in misc.params_and_buffers(module):
                torch.distributed.broadcast(tensor, src=0)

def _due(ticks, state):
    """Whether a snapshot every `ticks` ticks (None = never) is due at the end of this step: its tick ended
    on a multiple of `ticks`, or the run did."""
    return ticks is not None and state.tick_end and (state.done or state.cur_tick % ticks == 0)

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
    # Over 80 lines: 38 documented parameters, then the driver read top to bottom (set-up, then one step per pass of
    # the loop), as edm's training_loop; every job it names lives in its own module.
    start_time = time.time()
    device = torch.device(device if device is not None else ('cuda' if torch.cuda.is_available() else 'cpu'))
    log = print if rank == 0 else (lambda *args, **kwargs: None)
    if batch_size % (batch_gpu * num_gpus) != 0:
        raise ValueError(f'batch_size={batch_size} must be a multiple of batch_gpu * num_gpus = {batch_gpu} * {num_gpus}')
    rounds = batch_size // (batch_gpu * num_gpus)
    if D_steps < 1:
        raise ValueError(f'D_steps must be at least 1, got {D_steps}')
    step_nimg = batch_size * D_steps  # Real images shown to D per training step.
    _seed_and_configure(random_seed=random_seed, cudnn_benchmark=cudnn_benchmark, allow_tf32=allow_tf32)

    # Data, networks, augmentation, and the weights to start from.
    training_set = _load_training_set(training_set_kwargs, log=log)
    G, D, G_ema = _build_networks(training_set, G_kwargs=G_kwargs, D_kwargs=D_kwargs, device=device, log=log)
    kd_terms = _build_kd_terms(kd_kwargs, D=D, training_set=training_set, batch_size=batch_size, device=device, log=log)
    augment_pipe = ada.build_augment_pipe(augment_kwargs, augment_p=augment_p, ada_target=ada_target, device=device)
    ada_control = ada.AdaController(augment_pipe, ada_target=ada_target, ada_interval=ada_interval, ada_kimg=ada_kimg,
        step_nimg=step_nimg)
    resume_state = None
    if resume_pkl is not None:
        resume_state = _resume_networks(resume_pkl, resume_mode, dict(G=G, D=D, G_ema=G_ema), log=log)
    if rank == 0:
        _print_summaries(G, D, batch_gpu=batch_gpu, device=device)
    if num_gpus > 1:
        _broadcast([G, D, G_ema, augment_pipe], num_gpus=num_gpus, log=log)

    # Loss, phases and the training state, restored for an exact resume.
    log('Setting up training phases...')
    loss = dnnlib.util.construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, kd=kd_terms, **loss_kwargs)
    phase_list, optimizers = phases.build_phases(G=G, D=D, G_opt_kwargs=G_opt_kwargs, D_opt_kwargs=D_opt_kwargs,
        G_reg_interval=G_reg_interval, D_reg_interval=D_reg_interval, D_steps=D_steps, timed=(rank == 0), device=device)
    runner = phases.PhaseRunner(phase_list, loss=loss, training_set=training_set, z_dim=G.z_dim, random_seed=random_seed,
        rank=rank, num_gpus=num_gpus, batch_gpu=batch_gpu, rounds=rounds, device=device, log=log)
    state = TrainState(optimizers=optimizers, loss=loss, ada=ada_control, step_nimg=step_nimg, total_kimg=total_kimg,
        kimg_per_tick=kimg_per_tick, rank=rank, num_gpus=num_gpus, device=device)
    if resume_state is not None:
        state.load_state_dict(resume_state)
        log(f'Continuing at {state.cur_nimg / 1000:g} kimg, tick {state.cur_tick}, step {state.batch_idx}.')

    # Reals from the saved stream position, image grids and logs, snapshots.
    reals = RealStream(training_set, batch_size=batch_size, batch_gpu=batch_gpu, D_steps=D_steps, rank=rank, num_gpus=num_gpus,
        seed=random_seed, start=state.sampler_pos, data_loader_kwargs=data_loader_kwargs, device=device)
    reporter = Reporter(run_dir, training_set=training_set, G_ema=G_ema, random_seed=random_seed, batch_gpu=batch_gpu,
        image_snapshot_ticks=image_snapshot_ticks, total_kimg=total_kimg, start_time=start_time, rank=rank, device=device, log=log)
    snapshots = SnapshotWriter(run_dir, modules=dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe),
        training_set_kwargs=training_set_kwargs, metrics=metrics, metric_data=metric_data, detector_dir=detector_dir,
        snapshot_keep=snapshot_keep, write_weights=write_weights, rank=rank, num_gpus=num_gpus, device=device, log=log)

    # Train.
    log(f'Training for {total_kimg} kimg...')
    log()
    reporter.begin_tick(cur_nimg=state.cur_nimg)
    while True:
        runner.run_step(reals.next_step(), batch_idx=state.batch_idx, cur_nimg=state.cur_nimg)
        runner.check_finite(cur_nimg=state.cur_nimg, last_snapshot=snapshots.last_snapshot)
        with torch.autograd.profiler.record_function('Gema'):
            ema.step_G_ema(G, G_ema, cur_nimg=state.cur_nimg, batch_size=batch_size, ema_kimg=ema_kimg, ema_rampup=ema_rampup,
                ema_start_kimg=ema_start_kimg)
        state.end_step()
        ada_control.end_step(batch_idx=state.batch_idx)

        # A signal on any process: every process stops after this same step; the end of the run comes first.
        stopping = stop_request is not None and preempt.agree(stop_request.requested, num_gpus, device) and not state.done
        if not (state.tick_end or stopping):
            continue  # Steps until the end of the tick (the first tick is a single step).

        # End of a tick (or a stop mid-tick): its line, ADA's carry, the image grid.
        if state.tick_end:
            reporter.end_tick(cur_tick=state.cur_tick, cur_nimg=state.cur_nimg, augment_pipe=augment_pipe)
        ada_control.end_tick()
        if _due(image_snapshot_ticks, state):
            reporter.save_grid(cur_nimg=state.cur_nimg)

        # Network snapshot with everything an exact resume needs; a signal writes one mid-tick too.
        snapshot_pkl = None
        if stopping or _due(network_snapshot_ticks, state):
            snapshot_pkl = snapshots.write(cur_nimg=state.cur_nimg, resume_state=state.state_dict(), stopping=stopping)
        if stopping:
            break

        # The tick's statistics, then the next tick.
        runner.end_tick()
        reporter.write_stats(cur_nimg=state.cur_nimg, metric_results=snapshots.metric_results,
            snapshot_written=(snapshot_pkl is not None))
        state.end_tick()
        reporter.begin_tick(cur_nimg=state.cur_nimg)
        if state.done:
            break

    reporter.close()
    if stopping:
        message = (f'Stopped by {stop_request.signal_name or "a signal to another process"} at {state.cur_nimg / 1000:g} kimg, '
            f'tick {state.cur_tick}; the training state is in {snapshots.last_snapshot}. Rerun the same command with '
            f'--resume=auto (or --resume={snapshots.last_snapshot}) to continue exactly.')
        log()
        log(message)
        raise preempt.Preempted(message)
    log()
    log('Exiting...')

#----------------------------------------------------------------------------
