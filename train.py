"""Train a GAN (StyleGAN2 or BigGAN backbone, optional ADA / DiffAugment / LeCam and KD-DLGAN distillation).

Examples:
    python train.py --outdir=runs --data=datasets/cifar10.zip --cfg=cifar --gpus=2
    python train.py --outdir=runs --data=datasets/obama.zip --cfg=low_shot --mirror=1 --kd=agg,corr
    python train.py --outdir=runs --data=datasets/obama.zip --cfg=low_shot --resume=auto          (first launch and every requeue)
    python train.py --outdir=ft --data=datasets/100shot.zip --cfg=low_shot --resume=runs/00000-.../network-snapshot-000300.pkl
    python train.py --outdir=runs --data=datasets/cifar10-train.zip --cfg=biggan-cifar --cond=1 --subset=5000 \
        --metric-data=datasets/cifar10-test.zip --metrics=fid10k_full --kd=agg,corr
    torchrun --nnodes=2 --nproc_per_node=8 ... train.py --outdir=runs --data=...   (multi-node)
"""

import json
import os
import sys

import click
import torch

import dnnlib
from kd import options as kd_options
from kd.teacher import CLIPWeightsUnavailableError
from torch_utils import distributed
from training import launch
from training import options as builders
from training import preempt
from training import provenance
from training import resume
from training import run_dir as run_names
from training import training_loop
from training.augment import augpipe_specs
from training.lecam import DECAY as LECAM_DECAY
from training.presets import CONFIG_PRESETS
from training.resume import RESUME_SPECS  # noqa: F401 (public: the named transfer sources)

KD = kd_options.DEFAULTS  # The --kd-* defaults, shown in the help.

#----------------------------------------------------------------------------

def fetch_metric_detectors(metrics, detector_dir):
    """Fetch the metrics' detector files now, so that a missing one stops the run before training
    rather than at the first snapshot."""
    if len(metrics) == 0:
        return
    from metrics import metric_main, metric_utils  # Only when metrics are asked for: the stack is heavy.
    for url in sorted({url for metric in metrics for url in metric_main.detector_urls(metric)}):
        try:
            metric_utils.resolve_detector_file(url, detector_dir=detector_dir)
        except metric_utils.DetectorUnavailableError as err:
            raise click.ClickException(f'{err}\n(or train with --metrics=none and run calc_metrics.py later)')

def print_summary(c, facts, opts):
    print()
    print('Training options:')
    print(json.dumps(c, indent=2))
    print()
    print(f'Output directory:    {c.run_dir}')
    print(f'Number of processes: {c.num_gpus} ({c.device})')
    print(f'Batch size:          {c.batch_size} images ({c.batch_gpu} per pass)')
    print(f'Training duration:   {c.total_kimg:g} kimg')
    print(f'Dataset:             {facts["num_images"]} images at {facts["resolution"]}x{facts["resolution"]}'
        + (f' (subset of {opts["subset"]}, seed {opts["subset_seed"]})' if opts['subset'] is not None else ''))
    print(f'Augmentation:        {"ada" if c.ada_target is not None else "fixed" if c.augment_p > 0 else "none"}'
        + (f', DiffAugment {c.loss_kwargs["diffaugment"]}' if c.loss_kwargs['diffaugment'] else ''))
    print(f'Distillation:        {c.kd_kwargs["kd"]}')
    print()

def make_run_dir(outdir, desc, c, resume_notes):
    """The run directory with its records: the options, what produced the run, and the resume decision
    (first lines of log.txt, which the training processes append to)."""
    record = provenance.collect(argv=sys.argv)  # Before the folder exists: git may take a moment.
    print('Creating output directory...')
    if os.path.exists(c.run_dir):
        raise click.ClickException(f'run directory {c.run_dir} already exists')
    os.makedirs(c.run_dir)
    with dnnlib.util.atomic_write(os.path.join(c.run_dir, 'training_options.json'), 'w') as f:
        json.dump(c, f, indent=2)
    provenance.write(c.run_dir, *record)
    if resume_notes:
        with open(os.path.join(c.run_dir, 'log.txt'), 'a') as f:
            f.write(''.join(line + '\n' for line in resume_notes))

#----------------------------------------------------------------------------

@click.command()
# General.
@click.option('--outdir', help='Where to save the results', metavar='DIR', required=True)
@click.option('--data', help='Training data (folder or zip)', metavar='PATH', required=True)
@click.option('--gpus', help='Number of processes (GPUs, or CPU processes with --device=cpu)', type=int, default=1, show_default=True)
@click.option('--batch', help='Total batch size [default: from --cfg]', type=int)
@click.option('--batch-gpu', help='Images per process per pass [default: batch / gpus]', type=int)
@click.option('--cfg', help='Base configuration', type=click.Choice(sorted(CONFIG_PRESETS)), default='auto', show_default=True)
@click.option('--gamma', help='R1 regularisation weight [default: from --cfg]', type=float)
@click.option('--kimg', help='Training length in thousands of images (fractions allowed) [default: from --cfg]', type=float)
@click.option('--snap', help='Snapshot (and metric) interval in ticks [default: 50; 10 for low_shot, 200 for biggan-cifar]', type=int)
@click.option('--seed', help='Random seed', type=int, default=0, show_default=True)
@click.option('--metrics', help='Comma-separated metrics after each snapshot, or "none"', default='fid50k_full', show_default=True)
@click.option('--metric-data', help='Reference dataset of the metrics [default: the training data]', metavar='PATH')
@click.option('--detector-dir', help='Folder with the metric detector files (offline use)', metavar='DIR')
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--desc', help='String appended to the run directory name', type=str)
@click.option('--dry-run', '-n', 'dry_run', help='Print the options and exit', is_flag=True)
# Dataset.
@click.option('--cond', help='Train a conditional model (needs labels)', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--mirror', help='Add x-flipped copies of the images [default: from --cfg, off except biggan-cifar]', type=bool, metavar='BOOL')
@click.option('--subset', help='Train on a seeded random subset of N images', type=int, metavar='N')
@click.option('--subset-seed', help='Seed of the --subset choice', type=int, default=0, show_default=True)
# Augmentation.
@click.option('--aug', help='Augmentation mode [default: ada, noaug for low_shot]', type=click.Choice(['ada', 'noaug', 'fixed']))
@click.option('--p', help='Augmentation probability for --aug=fixed', type=float)
@click.option('--target', help='ADA target value [default: 0.6]', type=float)
@click.option('--augpipe', help='ADA augmentation pipeline [default: bgc]', type=click.Choice(sorted(augpipe_specs)))
@click.option('--diffaugment', help='DiffAugment policy, a subset of color,translation,cutout [default: none, all three for low_shot]', type=str)
# Transfer learning and resume.
@click.option('--resume', help='Resume from a snapshot: PKL path/URL, RUN_DIR (its newest), "latest" (newest run in --outdir), a transfer source (ffhq256, ffhq512, ffhq1024, celebahq256, lsundog256), or "auto": continue the newest run in --outdir that this command continues, else start a new run ("auto,SOURCE": else transfer from SOURCE). Continue or transfer is decided from the data and options (docs/training.md)', metavar='PKL|DIR|latest|NAME|auto[,SOURCE]')
@click.option('--resume-mode', help='Force "continue" (exactly, an error when data or options differ) or "transfer" (weights only, progress from 0)', type=click.Choice(list(resume.MODES)), default='auto', show_default=True)
@click.option('--keep', help='Keep only the N newest network snapshots (the best by the first metric is kept besides) [default: all]', type=int, metavar='N')
@click.option('--freezed', help='Freeze the first layers of D', type=int, default=0, show_default=True)
# Performance.
@click.option('--fp32', help='Disable mixed precision', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--nhwc', help='Use NHWC memory format with FP16', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--weights-only', help='Also write a weights-only file (no code inside) beside each snapshot', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--nobench', help='Disable cuDNN benchmarking', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--allow-tf32', help='Allow TF32 for matmul and convolutions', type=bool, default=False, metavar='BOOL', show_default=True)
@click.option('--workers', help='DataLoader worker processes', type=int, default=3, show_default=True)
@click.option('--peer-timeout', help='Seconds without a heartbeat before a lost process ends a multi-process run', type=float, default=30, show_default=True)
# Overrides.
@click.option('--cbase', help='Capacity multiplier (channel_base) [default: from --cfg]', type=int)
@click.option('--cmax', help='Max. feature maps (channel_max) [default: 512]', type=int)
@click.option('--map-depth', help='Mapping network depth [default: from --cfg]', type=int)
@click.option('--mbstd-group', help='Minibatch std group size [default: from --cfg]', type=int)
@click.option('--glr', help='G learning rate [default: from --cfg]', type=float)
@click.option('--dlr', help='D learning rate [default: from --cfg]', type=float)
@click.option('--tick', help='Progress print interval in kimg', type=float)
@click.option('--lecam', help='LeCam regularisation weight (0.3 in the paper\'s best CIFAR runs) [default: 0; 0.3 with --kd-preset=authors]', type=float)
@click.option('--lecam-decay', help=f'LeCam anchor EMA decay [default: {LECAM_DECAY["stylegan2"]}; {LECAM_DECAY["biggan"]} for biggan-cifar]', type=float)
# Knowledge distillation (KD-DLGAN).
@click.option('--kd', help='Distillation: none, agg, corr or agg,corr', default='none', show_default=True)
@click.option('--kd-preset', help='Defaults of the --kd-* options: this project\'s, or the KD-DLGAN authors\' code (see docs/kd.md)', type=click.Choice(list(kd_options.KD_PRESETS)), default='project', show_default=True)
@click.option('--kd-agg-weight', help=f'Weight of the aggregated KD loss [default: {KD["kd_agg_weight"]:g}]', type=float)
@click.option('--kd-corr-weight', help=f'Weight of each correlated KD loss [default: {KD["kd_corr_weight"]:g}]', type=float)
@click.option('--kd-agg-p', help=f'Probability of the cross terms per step [default: {KD["kd_agg_p"]}]', type=float)
@click.option('--kd-dist', help=f'Per-sample distance [default: {KD["kd_dist"]}]', type=click.Choice(list(kd_options.DISTANCES)))
@click.option('--kd-corr-norm', help=f'Correlation normalisation [default: {KD["kd_corr_norm"]}]', type=click.Choice(list(kd_options.NORMS)))
@click.option('--kd-clip', help=f'open_clip model name, or a model config .json [default: {KD["kd_clip"]}]', type=str)
@click.option('--kd-clip-pretrained', help=f'open_clip pretrained tag [default: {KD["kd_clip_pretrained"]}]', type=str)
@click.option('--kd-clip-weights', help='Local CLIP weights file (offline use)', type=click.Path(exists=True, dir_okay=False))
@click.option('--kd-clip-norm', help=f'CLIP input normalisation [default: {KD["kd_clip_norm"]}]', type=click.Choice(list(kd_options.CLIP_NORMS)))
@click.option('--kd-clip-precision', help=f'CLIP teacher precision; auto: fp16 on CUDA, fp32 on CPU [default: {KD["kd_clip_precision"]}]', type=click.Choice(list(kd_options.PRECISIONS)))
@click.option('--kd-resize', help=f'Resize to the CLIP input size [default: {KD["kd_resize"]}]', type=click.Choice(list(kd_options.RESIZE_MODES)))
@click.option('--kd-prompts', help='Prompt file (one per line) or named set', type=str)
@click.option('--kd-teacher', help=f'Teacher weights [default: {KD["kd_teacher"]}]', type=click.Choice(list(kd_options.TEACHER_KINDS)))
@click.option('--kd-div', help=f'Weight of the diversity term on G [default: {KD["kd_div"]:g}]', type=float)
def main(**opts):
    """Train a GAN. Every option lands in RUN_DIR/training_options.json."""
    torchrun = launch.torchrun_env()
    rank = 0 if torchrun is None else torchrun[0]
    if torchrun is not None:
        opts['gpus'] = torchrun[1]  # The launcher decides the process count.
    try:
        c, desc, facts, resumed = builders.build_training_options(dict(opts, torchrun=torchrun is not None), fetch=not opts['dry_run'])
    except CLIPWeightsUnavailableError as err:
        raise click.ClickException(str(err))  # Before any run directory exists.
    except ValueError as err:
        raise click.UsageError(str(err))
    if rank == 0 and resumed.notes:
        print('\n'.join(resumed.notes))
    if resumed.finished:
        return
    if not opts['dry_run']:
        fetch_metric_detectors(c.metrics, c.get('detector_dir'))
    if rank == 0:
        c.run_dir = os.path.join(opts['outdir'], f'XXXXX-{desc}') if opts['dry_run'] else run_names.next_run_dir(opts['outdir'], desc)
        print_summary(c, facts, opts)
        if not opts['dry_run']:
            make_run_dir(opts['outdir'], desc, c, resumed.notes)
    if opts['dry_run']:
        print('Dry run; exiting.')
        return
    try:
        launch.launch(c, torchrun=torchrun)
    except preempt.Preempted:  # Rank 0 wrote the snapshot and said where; the scheduler may requeue.
        sys.exit(preempt.EXIT_PREEMPTED)
    except training_loop.TrainingDiverged as err:
        raise click.ClickException(str(err))
    except torch.multiprocessing.ProcessRaisedException as err:
        raise click.ClickException(f'a training process failed:\n{err}')
    except distributed.PeerLost as err:  # A spawned process was lost; the survivors were stopped.
        raise click.ClickException(str(err))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
