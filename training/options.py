"""From command-line values to the training loop's keyword arguments: one builder per concern.

Each builder owns the defaults and checks of its options, returns its part of the keyword arguments
(a plain dict) and its part of the run name, and reads nothing but its own arguments. Builders raise
ValueError with one line for the user; train.py shows it as a usage error. build_training_options()
calls them in order and merges the parts: a `*_kwargs` dict may be built by several builders (the
loss gets its terms from the backbone, the augmentation and LeCam), but no entry is set twice.

The result is training_loop()'s keyword arguments plus the launcher's (num_gpus, device,
launch_kwargs) and one record (data_fingerprint), which is what training_options.json holds."""

import os

import torch

import dnnlib
from kd import options as kd_options
from torch_utils.launcher import DEFAULT_LAUNCH
from training import dataset as datasets
from training import presets
from training import resume as resumes
from training import run_dir as run_names
from training.augment import augpipe_specs
from training.diffaugment import parse_policy
from training.lecam import DECAY as LECAM_DECAY

# training_options.json's key order, kept as it has always been so that runs compare line by line; BACKBONE stands
# for the backbone builder's keys, in its own order.
BACKBONE = '<backbone>'
OPTION_ORDER = ('num_gpus', 'random_seed', 'image_snapshot_ticks', 'network_snapshot_ticks', 'device', 'launch_kwargs', 'metrics',
    'training_set_kwargs', 'data_loader_kwargs', 'data_fingerprint', 'metric_data', 'detector_dir', 'batch_size', 'batch_gpu',
    'total_kimg', 'kimg_per_tick', 'ema_kimg', 'ema_rampup', BACKBONE, 'write_weights', 'snapshot_keep', 'cudnn_benchmark',
    'allow_tf32', 'ada_target', 'augment_p', 'augment_kwargs', 'kd_kwargs', 'resume_pkl', 'resume_mode', 'ada_kimg', 'run_dir')

#----------------------------------------------------------------------------

def build_launch(outdir, gpus, device, peer_timeout, torchrun=False, cuda=torch.cuda):
    """Processes and device. `cuda`: the module that reports CUDA devices (a stand-in in tests)."""
    try:
        run_names.check_outdir(outdir)
    except ValueError as err:
        raise ValueError(f'--outdir: {err}') from None
    if gpus < 1:
        raise ValueError('--gpus must be at least 1')
    device = ('cuda' if cuda.is_available() else 'cpu') if device == 'auto' else device
    if device == 'cuda':
        if not cuda.is_available():
            raise ValueError('--device=cuda: no CUDA device is visible; use --device=cpu')
        if not torchrun and gpus > cuda.device_count():
            raise ValueError(f'--gpus={gpus}, but only {cuda.device_count()} CUDA devices are visible')
    if peer_timeout <= 2:
        raise ValueError('--peer-timeout must be more than 2 seconds (twice the heartbeat interval)')
    return dict(num_gpus=gpus, device=device, launch_kwargs=dict(DEFAULT_LAUNCH, peer_timeout=peer_timeout)), ''

def build_dataset(data, cfg, cond, mirror, subset, subset_seed, workers, device, metric_data=None, detector_dir=None):
    """The training set (opened now: every image's header is read), the loader and the metrics' reference data.
    Returns (kwargs, name, facts): facts are what later builders need to know of the data."""
    if subset is not None and subset < 1:
        raise ValueError('--subset must be at least 1')
    if workers < 0:
        raise ValueError('--workers must be non-negative')
    mirror = mirror if mirror is not None else presets.CONFIG_PRESETS[cfg].get('mirror', False)
    set_kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=data, use_labels=cond, xflip=mirror, subset=subset,
        subset_seed=subset_seed)
    training_set = datasets.open_checked(set_kwargs, flag='--data')
    channels, height, width = training_set.image_shape
    if height != width or height < 4 or height & (height - 1) != 0:
        raise ValueError(f'--data: images must be square with a power-of-two side >= 4, got {width}x{height}')
    if cond and not training_set.has_labels:
        raise ValueError('--cond=1 requires labels in dataset.json, but the dataset has none')
    set_kwargs['resolution'] = height
    kwargs = dict(training_set_kwargs=set_kwargs,
        data_loader_kwargs=dict(pin_memory=(device == 'cuda'), num_workers=workers, prefetch_factor=(2 if workers > 0 else None)),
        data_fingerprint=training_set.fingerprint())  # Decides, with the options, whether a --resume continues a run.
    if metric_data is not None:
        datasets.open_checked(dict(set_kwargs, path=metric_data, subset=None), flag='--metric-data')  # Now, not at the first snapshot.
        kwargs['metric_data'] = metric_data
    if detector_dir is not None:
        if not os.path.isdir(detector_dir):
            raise ValueError(f'--detector-dir: {detector_dir} is not a folder')
        kwargs['detector_dir'] = detector_dir
    name = training_set.name + ('-cond' if cond else '') + (f'-subset{subset}s{subset_seed}' if subset is not None else '') \
        + ('-mirror' if mirror else '')
    facts = dict(resolution=height, channels=channels, name=training_set.name, num_images=len(training_set),
        class_names=training_set.class_names, label_dim=training_set.label_dim)
    return kwargs, name, facts

def build_schedule(spec, cfg, gpus, seed, kimg, gamma, batch, batch_gpu, tick, snap, keep, metrics):
    """Length, batch, ticks, snapshots, metrics, EMA and seed. `spec`: the resolved preset (training/presets.py)."""
    if seed < 0:
        raise ValueError('--seed must be non-negative')
    if snap is not None and snap < 1:
        raise ValueError('--snap must be at least 1')
    metrics = [] if metrics.strip().lower() == 'none' else dnnlib.util.parse_comma_list(metrics)
    _check_metrics(metrics)
    name = f'-{cfg}'
    if kimg is not None:
        if not kimg > 0:
            raise ValueError('--kimg must be positive')
        name += f'-kimg{kimg:g}'
    if gamma is not None:  # R1 belongs to the backbone's loss; the run name has always listed it here.
        name += f'-gamma{gamma:g}'
    batch_size, per_gpu = spec['mb'], max(spec['mb'] // spec['ref_gpus'], 1)
    if batch is not None:
        if batch < 1 or batch % gpus != 0:
            raise ValueError(f'--batch={batch} must be a positive multiple of --gpus={gpus}')
        batch_size, per_gpu = batch, batch // gpus
        name += f'-batch{batch}'
    if batch_gpu is not None:
        if batch_gpu < 1:
            raise ValueError('--batch-gpu must be at least 1')
        per_gpu = batch_gpu
    if batch_size % (per_gpu * gpus) != 0:
        raise ValueError(f'batch size {batch_size} must be a multiple of --batch-gpu ({per_gpu}) times --gpus ({gpus})')
    kimg_per_tick = 4 if tick is None else tick
    if not kimg_per_tick > 0:
        raise ValueError('--tick must be positive')
    if keep is not None and keep < 1:
        raise ValueError('--keep must be at least 1 (the newest snapshots to keep; the best is kept besides)')
    snap = snap if snap is not None else spec.get('snap', presets.DEFAULT_SNAP)
    kwargs = dict(random_seed=seed, image_snapshot_ticks=snap, network_snapshot_ticks=snap, metrics=metrics, batch_size=batch_size,
        batch_gpu=per_gpu, total_kimg=kimg if kimg is not None else spec['kimg'], kimg_per_tick=kimg_per_tick, ema_kimg=spec['ema'],
        ema_rampup=spec['ramp'], snapshot_keep=keep)
    return kwargs, name

def _check_metrics(metrics):
    if len(metrics) > 0:
        from metrics import metric_main  # Only when asked for: the metrics stack is heavy.
        invalid = [m for m in metrics if not metric_main.is_valid_metric(m)]
        if invalid:
            raise ValueError(f'--metrics: unknown metric(s) {", ".join(invalid)}; valid: {", ".join(metric_main.list_valid_metrics())}')

def build_performance(weights_only, nobench, allow_tf32):
    return dict(write_weights=bool(weights_only), cudnn_benchmark=not nobench, allow_tf32=allow_tf32), ''

#----------------------------------------------------------------------------
# Backbones: networks, optimizers and the loss.

def _learning_rates(spec, glr, dlr):
    glr = spec['lrate'] if glr is None else glr
    dlr = spec['lrate'] if dlr is None else dlr
    if not (glr > 0 and dlr > 0):
        raise ValueError('--glr and --dlr must be positive')
    return glr, dlr

def _mbstd_group(spec, gpus, batch, mbstd_group):
    """The minibatch-std group: the preset's, capped by the images per GPU of an explicit --batch."""
    if mbstd_group is not None:
        if mbstd_group < 1:
            raise ValueError('--mbstd-group must be at least 1')
        return mbstd_group
    return spec['mbstd'] if batch is None else min(spec['mbstd'], batch // gpus)

def build_stylegan2(spec, cfg, gpus, batch, batch_gpu, gamma, cbase, cmax, map_depth, mbstd_group, glr, dlr, freezed, fp32, nhwc):
    """Networks, optimizers and loss of the StyleGAN2 presets. batch_gpu: the schedule's images per process."""
    if gamma is not None and gamma < 0:
        raise ValueError('--gamma must be non-negative')
    mbstd = _mbstd_group(spec, gpus, batch, mbstd_group)
    if batch_gpu % min(mbstd, batch_gpu) != 0:
        raise ValueError(f'images per GPU ({batch_gpu}) must be a multiple of the minibatch-std group size ({mbstd}); set --mbstd-group')
    channel_base = int(spec['fmaps'] * 32768) if cbase is None else cbase
    channel_max = 512 if cmax is None else cmax
    map_depth = spec['map'] if map_depth is None else map_depth
    for flag, value in [('--cbase', channel_base), ('--cmax', channel_max), ('--map-depth', map_depth)]:
        if value < 1:
            raise ValueError(f'{flag} must be at least 1')
    G_kwargs = dict(class_name='training.networks_stylegan2.Generator', z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=map_depth),
        channel_base=channel_base, channel_max=channel_max, num_fp16_res=4, conv_clamp=256)
    D_kwargs = dict(class_name='training.networks_stylegan2.Discriminator', block_kwargs=dict(), mapping_kwargs=dict(),
        epilogue_kwargs=dict(mbstd_group_size=mbstd), channel_base=channel_base, channel_max=channel_max, num_fp16_res=4, conv_clamp=256)
    glr, dlr = _learning_rates(spec, glr, dlr)
    loss_kwargs = dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec['gamma'] if gamma is None else gamma,
        style_mixing_prob=0.9, pl_weight=2)
    if cfg == 'cifar':  # StyleGAN2-ADA's cifar: no path length, no mixing, no residual D.
        loss_kwargs.update(pl_weight=0, style_mixing_prob=0)
        D_kwargs['architecture'] = 'orig'
    if freezed < 0:
        raise ValueError('--freezed must be non-negative')
    if freezed > 0:
        D_kwargs['block_kwargs']['freeze_layers'] = freezed
    if fp32:
        G_kwargs.update(num_fp16_res=0, conv_clamp=None)
        D_kwargs.update(num_fp16_res=0, conv_clamp=None)
    if nhwc:
        G_kwargs['fp16_channels_last'] = D_kwargs['block_kwargs']['fp16_channels_last'] = True
    kwargs = dict(G_reg_interval=4, D_reg_interval=16,  # Lazy path-length regularisation and R1.
        G_kwargs=G_kwargs, D_kwargs=D_kwargs, G_opt_kwargs=dict(class_name='torch.optim.Adam', lr=glr, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(class_name='torch.optim.Adam', lr=dlr, betas=[0, 0.99], eps=1e-8), loss_kwargs=loss_kwargs)
    return kwargs, (f'-freezed{freezed}' if freezed > 0 else '')

def build_biggan(spec, gamma, cbase, cmax, map_depth, mbstd_group, glr, dlr, freezed, nhwc):
    """Networks, optimizers and loss of --cfg=biggan-cifar; --cbase sets the channel multiplier (G_ch = D_ch)."""
    if gamma is not None:
        raise ValueError('--gamma (R1) does not apply to --cfg=biggan-cifar, which uses the hinge loss without R1')
    for flag, value in [('--cmax', cmax), ('--map-depth', map_depth), ('--mbstd-group', mbstd_group)]:
        if value is not None:
            raise ValueError(f'{flag} does not apply to --cfg=biggan-cifar (use --cbase for the channel multiplier)')
    if freezed != 0:
        raise ValueError('--freezed does not apply to --cfg=biggan-cifar')
    if nhwc:
        raise ValueError('--nhwc does not apply to --cfg=biggan-cifar (it has no FP16 blocks)')
    ch = spec['ch'] if cbase is None else cbase
    if ch < 1:
        raise ValueError('--cbase must be at least 1')
    glr, dlr = _learning_rates(spec, glr, dlr)
    kwargs = dict(G_kwargs=dict(class_name='training.networks_biggan.Generator', z_dim=128, ch=ch),
        D_kwargs=dict(class_name='training.networks_biggan.Discriminator', ch=ch),
        G_opt_kwargs=dict(class_name='torch.optim.Adam', lr=glr, betas=list(spec['betas']), eps=1e-8),
        D_opt_kwargs=dict(class_name='torch.optim.Adam', lr=dlr, betas=list(spec['betas']), eps=1e-8),
        loss_kwargs=dict(class_name='training.loss.BigGANLoss'),
        G_reg_interval=None, D_reg_interval=None,  # No lazy regularisation.
        D_steps=spec['d_steps'], ema_start_kimg=spec['ema_start'])
    return kwargs, ''

#----------------------------------------------------------------------------

def build_augmentation(spec, aug, p, target, augpipe, diffaugment):
    """ADA (or a fixed p) and DiffAugment; the DiffAugment policy is a term of the loss."""
    aug = aug if aug is not None else spec.get('aug', 'ada')
    kwargs = dict(ada_target=None, augment_p=0, augment_kwargs=None)
    if aug == 'ada':
        kwargs['ada_target'] = 0.6 if target is None else target
        if not 0 <= kwargs['ada_target'] <= 1:
            raise ValueError('--target must be between 0 and 1')
    elif target is not None:
        raise ValueError('--target can only be specified with --aug=ada')
    if aug == 'fixed':
        if p is None:
            raise ValueError('--aug=fixed requires --p')
        if not 0 <= p <= 1:
            raise ValueError('--p must be between 0 and 1')
        kwargs['augment_p'] = p
    elif p is not None:
        raise ValueError('--p can only be specified with --aug=fixed')
    if aug == 'noaug' and augpipe is not None:
        raise ValueError('--augpipe cannot be specified with --aug=noaug')
    name = ''
    if aug != 'noaug':
        pipe = 'bgc' if augpipe is None else augpipe
        kwargs['augment_kwargs'] = dict(class_name='training.augment.AugmentPipe', **augpipe_specs[pipe])
        name += f'-{aug}' + ('' if augpipe is None else f'-{pipe}') + (f'{p:g}' if aug == 'fixed' else '')
    diffaugment = diffaugment if diffaugment is not None else spec.get('diffaugment', '')
    try:
        policy = parse_policy(diffaugment)
    except ValueError as err:
        raise ValueError(f'--diffaugment: {err}') from None
    kwargs['loss_kwargs'] = dict(diffaugment=diffaugment)
    if diffaugment:
        name += '-da-' + '-'.join(policy)
    return kwargs, name

def build_lecam(spec, lecam, lecam_decay, kd, kd_preset):
    """LeCam regularisation, a term of the loss. The default anchor decay by backbone is training/lecam.py's; for
    BigGAN the penalty is off until G iteration 1000 (the preset's ema_start), as in lecam-gan."""
    if lecam is None:
        lecam = kd_options.KD_PRESET_LECAM[kd_preset] if kd_options.parse_kd(kd) else 0.0
    if lecam < 0:
        raise ValueError('--lecam must be non-negative')
    if lecam_decay is not None and not 0 <= lecam_decay < 1:
        raise ValueError('--lecam-decay must lie in [0, 1)')
    if lecam_decay is not None and lecam == 0:
        raise ValueError('--lecam-decay has no effect without --lecam')
    if lecam == 0:
        return dict(), ''
    biggan = spec.get('backbone') == 'biggan'
    loss_kwargs = dict(lecam=lecam, lecam_decay=lecam_decay if lecam_decay is not None else LECAM_DECAY[spec.get('backbone', 'stylegan2')],
        lecam_start_kimg=spec['ema_start'] if biggan else 0)
    return dict(loss_kwargs=loss_kwargs), f'-lecam{lecam:g}'

#----------------------------------------------------------------------------

def _merge(c, part):
    """Add a builder's part to the options; a `*_kwargs` dict may be shared, but no entry is set twice."""
    for key, value in part.items():
        if key.endswith('_kwargs') and isinstance(value, dict) and isinstance(c.get(key), dict):
            twice = set(c[key]) & set(value)
            assert not twice, f'{key}: {sorted(twice)} set by two builders'
            c[key].update(value)
        else:
            assert key not in c, f'{key} set by two builders'
            c[key] = value

def _pick(o, names):
    return {name: o[name] for name in names}

def build_training_options(o, fetch=True):
    """All builders in order: (options as training_options.json holds them, run name, dataset facts, resume
    decision). o: the command-line values (train.py's option names). fetch: look for (or download) the CLIP
    weights now, so that a missing file stops the command before any run directory exists."""
    o = dnnlib.EasyDict(o)
    c = dict()
    _merge(c, build_launch(**_pick(o, ['outdir', 'gpus', 'device', 'peer_timeout', 'torchrun']))[0])
    data, name, facts = build_dataset(**_pick(o, ['data', 'cfg', 'cond', 'mirror', 'subset', 'subset_seed', 'workers',
        'metric_data', 'detector_dir']), device=c['device'])
    _merge(c, data)
    spec = presets.resolve_preset(o.cfg, facts['resolution'], o.gpus)
    biggan = spec.get('backbone') == 'biggan'
    schedule = build_schedule(spec, **_pick(o, ['cfg', 'gpus', 'seed', 'kimg', 'gamma', 'batch', 'batch_gpu', 'tick', 'snap', 'keep',
        'metrics']))
    if biggan:
        backbone = build_biggan(spec, **_pick(o, ['gamma', 'cbase', 'cmax', 'map_depth', 'mbstd_group', 'glr', 'dlr', 'freezed', 'nhwc']))
    else:
        backbone = build_stylegan2(spec, batch_gpu=schedule[0]['batch_gpu'], **_pick(o, ['cfg', 'gpus', 'batch', 'gamma', 'cbase',
            'cmax', 'map_depth', 'mbstd_group', 'glr', 'dlr', 'freezed', 'fp32', 'nhwc']))
    parts = dict(schedule=schedule, backbone=backbone,  # In the run name's order.
        lecam=build_lecam(spec, **_pick(o, ['lecam', 'lecam_decay', 'kd', 'kd_preset'])),
        augmentation=build_augmentation(spec, **_pick(o, ['aug', 'p', 'target', 'augpipe', 'diffaugment'])),
        performance=build_performance(**_pick(o, ['weights_only', 'nobench', 'allow_tf32'])),
        kd=kd_options.build_kd({k: v for k, v in o.items() if k.startswith('kd')}, facts=facts,
            head_kind=('spectral' if biggan else 'equalized'), fetch_weights=fetch))
    for part in ['schedule', 'backbone', 'augmentation', 'lecam', 'performance', 'kd']:  # The loss's terms in this order.
        _merge(c, parts[part][0])
    name += ''.join(part_name for _kwargs, part_name in parts.values())
    if o.desc is not None:
        name += f'-{o.desc}'
    resumed, resume_name = resumes.build_resume(**_pick(o, ['resume', 'resume_mode', 'outdir']), requested=c, facts=facts,
        backbone=presets.backbone(o.cfg))
    _merge(c, resumed.kwargs)
    if resumed.kwargs['resume_pkl'] is not None:  # How the run began decides these, over the schedule's values.
        for key in resumes.FROM_THE_RUN:
            if key in resumed.settings:
                c[key] = resumed.settings[key]
            else:
                c.pop(key, None)
    order = [key for slot in OPTION_ORDER for key in (backbone[0] if slot == BACKBONE else [slot])]
    ordered = {key: c[key] for key in order if key in c}
    assert len(ordered) == len(c), f'not in OPTION_ORDER: {sorted(set(c) - set(ordered))}'
    return dnnlib.EasyDict(ordered), name + resume_name, facts, resumed
