"""Compute quality metrics (FID, KID, precision/recall, IS, PPL) of a network snapshot.

Examples:
    python calc_metrics.py --metrics=fid50k_full,kid50k_full --network=runs/00000-cifar/network-snapshot-000500.pkl
    python calc_metrics.py --metrics=fid10k_full,is10k --data=datasets/cifar10-test.zip --network=...
"""

import copy
import os
import tempfile

import click
import torch

import dnnlib
from metrics import metric_main
from metrics import metric_utils
from torch_utils import launcher
from training import snapshot

#----------------------------------------------------------------------------


def subprocess_fn(rank, args, temp_dir):
    """Compute and report every requested metric as process `rank` of args.num_gpus."""
    device = launcher.process_device(args.device_type, args.local_rank if args.torchrun else rank)
    launcher.use_device(device)
    if args.num_gpus > 1:
        if device.type == 'cpu':  # CPU processes of one machine share its cores.
            launcher.share_cpu_threads(world_size=args.num_gpus, torchrun=args.torchrun)
        launcher.init_group(rank=rank, world_size=args.num_gpus, device=device, temp_dir=None if args.torchrun else temp_dir)

    for metric in args.metrics:
        if rank == 0 and args.verbose:
            print(f'Calculating {metric}...', flush=True)
        result = metric_main.calc_metric(metric=metric, G=args.G, dataset_kwargs=args.dataset_kwargs,
            num_gpus=args.num_gpus, rank=rank, device=device, progress=args.verbose, detector_dir=args.detector_dir,
            mirror=args.mirror)
        if rank == 0:
            metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)

    if args.num_gpus > 1:
        torch.distributed.destroy_process_group()

#----------------------------------------------------------------------------


def parse_metrics(_ctx, _param, value):
    metrics = [m.strip() for m in value.split(',') if m.strip()]
    if not metrics:
        raise click.BadParameter('give at least one metric name')
    unknown = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if unknown:
        raise click.BadParameter(f'unknown metric(s) {", ".join(unknown)}; valid metrics: {", ".join(metric_main.list_valid_metrics())}')
    return metrics


def find_run_dir(network_pkl):
    """The run directory holding the snapshot (a folder with training_options.json), or None."""
    if dnnlib.util.is_url(network_pkl, allow_file_urls=True):
        return None
    run_dir = os.path.dirname(os.path.abspath(network_pkl))
    return run_dir if os.path.isfile(os.path.join(run_dir, 'training_options.json')) else None


@click.command()
@click.option('--network', 'network_pkl', help='Network pickle: path or URL', metavar='PATH', required=True)
@click.option('--metrics', help='Comma-separated metric names', metavar='LIST', default='fid50k_full', show_default=True, callback=parse_metrics)
@click.option('--data', help='Reference dataset (zip or folder) [default: the snapshot\'s training set]', metavar='PATH')
@click.option('--mirror', help='Add x-flipped reference images (no published protocol does)', type=bool, default=False, show_default=True, metavar='BOOL')
@click.option('--gpus', 'num_gpus', help='Number of processes (GPUs; CPU processes with --device=cpu)', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--verbose', help='Print progress', type=bool, default=True, show_default=True, metavar='BOOL')
@click.option('--detector-dir', help=f'Folder with inception-2015-12-05.pt / vgg16.pt (no download) [default: ${metric_utils.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--device', 'device_type', help='Where to compute [default: cuda when available, else cpu]', type=click.Choice(['cpu', 'cuda']))
def main(network_pkl, metrics, data, mirror, num_gpus, verbose, detector_dir, device_type):
    """Compute metrics of a network snapshot; append them to metric-<name>.jsonl when it lies in a run directory.

    Metrics: fid50k_full, fid10k_full, fid5k_full, kid50k_full, pr50k3_full, is50k, is10k, ppl2_wend.
    The Inception and VGG16 feature detectors are downloaded once and cached; offline, download
    them elsewhere and pass their folder with --detector-dir.
    """
    args = dnnlib.EasyDict(network_pkl=network_pkl, metrics=metrics, mirror=mirror, verbose=verbose,
        detector_dir=detector_dir, num_gpus=num_gpus, torchrun=False, local_rank=0)

    # Launched by torchrun: join its group instead of spawning.
    torchrun = launcher.torchrun_env()
    if torchrun is not None:
        args.update(torchrun=True, rank=torchrun[0], num_gpus=torchrun[1], local_rank=torchrun[2])

    args.device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.device_type == 'cuda' and torch.cuda.device_count() < (1 if args.torchrun else args.num_gpus):
        raise click.ClickException(f'--device=cuda with {args.num_gpus} process(es) needs as many CUDA devices; '
            f'{torch.cuda.device_count()} visible')

    # Fetch the detectors here, so a missing one gives one clear message before any process starts.
    try:
        for url in sorted({url for metric in args.metrics for url in metric_main.detector_urls(metric)}):
            metric_utils.resolve_detector_file(url, detector_dir=detector_dir, verbose=verbose)
    except metric_utils.DetectorUnavailableError as e:
        raise click.ClickException(str(e)) from None

    if verbose:
        print(f'Loading network from "{network_pkl}"...', flush=True)
    try:
        network = snapshot.load_network_pkl(network_pkl)
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    args.G = network['G_ema']

    if data is not None:
        args.dataset_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data)
    elif network.get('training_set_kwargs') is not None:
        args.dataset_kwargs = dnnlib.EasyDict(copy.deepcopy(network['training_set_kwargs']))
    else:
        raise click.ClickException('The snapshot does not name its training set; pass the reference dataset with --data')
    args.dataset_kwargs.update(resolution=args.G.img_resolution, use_labels=(args.G.c_dim != 0))
    try:
        dnnlib.util.construct_class_by_name(**args.dataset_kwargs)  # Fail here, with the dataset's own message.
    except (ValueError, OSError) as e:
        r = args.G.img_resolution
        raise click.ClickException(f'Reference dataset: {e}; the network generates {r}x{r} images, so the reference '
            f'set must have that size (dataset_tool.py --resolution={r}x{r} makes one)') from None

    args.run_dir = find_run_dir(network_pkl)
    if verbose:
        print(f'Reference dataset: {args.dataset_kwargs.path}; results go to '
            f'{args.run_dir or "the screen only (the snapshot is not in a run directory)"}', flush=True)

    with tempfile.TemporaryDirectory() as temp_dir:
        if args.torchrun:
            subprocess_fn(rank=args.rank, args=args, temp_dir=temp_dir)
        elif args.num_gpus == 1:
            subprocess_fn(rank=0, args=args, temp_dir=temp_dir)
        else:
            launcher.spawn(subprocess_fn, args=(args, temp_dir), nprocs=args.num_gpus)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
