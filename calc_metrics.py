"""Compute quality metrics (FID, KID, precision/recall, IS, PPL) of a network snapshot or of a folder of images,
and write FID reference statistics in the npz layout of EDM's fid.py.

Examples:
    python calc_metrics.py --metrics=fid50k_full,kid50k_full --network=runs/00000-cifar/network-snapshot-000500.pkl
    python calc_metrics.py --metrics=fid10k_full,is10k --data=datasets/cifar10-test.zip --network=...
    python calc_metrics.py --metrics=fid10k_full --images=samples/other-method --data=datasets/cifar10-test.zip
    python calc_metrics.py --data=datasets/cifar10-test.zip --save-ref=refs/cifar10-test.npz
    python calc_metrics.py --metrics=fid10k_full --images=samples/other-method.zip --ref=refs/cifar10-test.npz
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
    """Compute and report every requested metric (or write the reference statistics) as process `rank` of args.num_gpus."""
    device = launcher.process_device(args.device_type, args.local_rank if args.torchrun else rank)
    launcher.use_device(device)
    if args.num_gpus > 1:
        if device.type == 'cpu':  # CPU processes of one machine share its cores.
            launcher.share_cpu_threads(world_size=args.num_gpus, torchrun=args.torchrun)
        launcher.init_group(rank=rank, world_size=args.num_gpus, device=device, temp_dir=None if args.torchrun else temp_dir)

    if args.save_ref is not None:
        save_ref_stats(rank=rank, args=args, device=device)
    for metric in ([] if args.save_ref is not None else args.metrics):
        if rank == 0 and args.verbose:
            print(f'Calculating {metric}...', flush=True)
        result = calc_one_metric(metric=metric, rank=rank, args=args, device=device)
        if rank == 0:
            metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)

    if args.num_gpus > 1:
        launcher.leave_group()


def calc_one_metric(metric, rank, args, device):
    kwargs = dict(metric=metric, G=args.G, dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus, rank=rank,
        device=device, progress=args.verbose, detector_dir=args.detector_dir, mirror=args.mirror)
    if args.images_path is None:
        return metric_main.calc_metric(**kwargs)
    try:
        result = metric_main.calc_metric(**kwargs, gen_dataset_kwargs=args.gen_dataset_kwargs, ref_stats=args.ref_path)
    except ValueError as e:  # Checked up front as far as possible; what only the detector reveals lands here.
        raise click.ClickException(str(e)) from None
    return dnnlib.EasyDict(result, images=args.images_path, reference=args.data or args.ref_path)


def save_ref_stats(rank, args, device):
    mu, sigma, num_images = metric_main.calc_ref_stats(dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus,
        rank=rank, device=device, progress=args.verbose, detector_dir=args.detector_dir, mirror=args.mirror)
    if rank == 0:
        metric_utils.save_ref_stats(args.save_ref, mu=mu, sigma=sigma)
        print(f'Wrote the FID reference statistics (mu, sigma) of {num_images} images of {args.data} to {args.save_ref}',
            flush=True)

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
@click.option('--network', 'network_pkl', help='Network pickle: path or URL', metavar='PATH')
@click.option('--images', 'images_path', help='Or a folder or zip of generated images (any method\'s) to score', metavar='PATH')
@click.option('--metrics', help='Comma-separated metric names', metavar='LIST', default='fid50k_full', show_default=True, callback=parse_metrics)
@click.option('--data', help='Reference dataset (zip or folder) [default: the snapshot\'s training set]', metavar='PATH')
@click.option('--ref', 'ref_path', help='With --images: FID reference statistics (npz with mu, sigma; path or URL) instead of --data', metavar='NPZ')
@click.option('--save-ref', help='Write the FID reference statistics of --data to this npz (EDM\'s layout); no metrics', metavar='NPZ')
@click.option('--mirror', help='Add x-flipped reference images (no published protocol does)', type=bool, default=False, show_default=True, metavar='BOOL')
@click.option('--gpus', 'num_gpus', help='Number of processes (GPUs; CPU processes with --device=cpu)', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--verbose', help='Print progress', type=bool, default=True, show_default=True, metavar='BOOL')
@click.option('--detector-dir', help=f'Folder with inception-2015-12-05.pt / vgg16.pt (no download) [default: ${metric_utils.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--device', 'device_type', help='Where to compute [default: cuda when available, else cpu]', type=click.Choice(['cpu', 'cuda']))
def main(network_pkl, images_path, metrics, data, ref_path, save_ref, mirror, num_gpus, verbose, detector_dir, device_type):
    """Compute metrics of a network snapshot (--network) or of a folder or zip of generated images (--images);
    append them to metric-<name>.jsonl when the snapshot lies in a run directory. With --save-ref, write the
    FID reference statistics of --data instead.

    Metrics: fid50k_full, fid10k_full, fid5k_full, kid50k_full, pr50k3_full, is50k, is10k, ppl2_wend
    (not with --images). The Inception and VGG16 feature detectors are downloaded once and cached; offline,
    download them elsewhere and pass their folder with --detector-dir.
    """
    check_sources(network_pkl=network_pkl, images_path=images_path, metrics=metrics, data=data, ref_path=ref_path,
        save_ref=save_ref, mirror=mirror)
    args = dnnlib.EasyDict(network_pkl=network_pkl, metrics=metrics, mirror=mirror, verbose=verbose,
        detector_dir=detector_dir, num_gpus=num_gpus, torchrun=False, local_rank=0, images_path=images_path,
        data=data, ref_path=ref_path, save_ref=save_ref, G=None, gen_dataset_kwargs=None, run_dir=None)

    # Launched by torchrun: join its group instead of spawning.
    torchrun = launcher.torchrun_env()
    if torchrun is not None:
        args.update(torchrun=True, rank=torchrun[0], num_gpus=torchrun[1], local_rank=torchrun[2])

    args.device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.device_type == 'cuda' and torch.cuda.device_count() < (1 if args.torchrun else args.num_gpus):
        raise click.ClickException(f'--device=cuda with {args.num_gpus} process(es) needs as many CUDA devices; '
            f'{torch.cuda.device_count()} visible')

    # Fetch the detectors here, so a missing one gives one clear message before any process starts.
    urls = [metric_utils.INCEPTION_URL] if save_ref is not None else [url for m in metrics for url in metric_main.detector_urls(m)]
    try:
        for url in sorted(set(urls)):
            metric_utils.resolve_detector_file(url, detector_dir=detector_dir, verbose=verbose)
    except metric_utils.DetectorUnavailableError as e:
        raise click.ClickException(str(e)) from None

    if network_pkl is not None:
        setup_network(args)
    elif images_path is not None:
        setup_images(args)
    else:
        setup_save_ref(args)

    with tempfile.TemporaryDirectory() as temp_dir:
        if args.torchrun:
            subprocess_fn(rank=args.rank, args=args, temp_dir=temp_dir)
        elif args.num_gpus == 1:
            subprocess_fn(rank=0, args=args, temp_dir=temp_dir)
        else:
            launcher.spawn(subprocess_fn, args=(args, temp_dir), nprocs=args.num_gpus)

#----------------------------------------------------------------------------
# What to score and against what: the checks run before any process starts.


def check_sources(network_pkl, images_path, metrics, data, ref_path, save_ref, mirror):
    """Usage errors of --network / --images / --data / --ref / --save-ref combinations."""
    if save_ref is not None:
        metrics_given = click.get_current_context().get_parameter_source('metrics') != click.core.ParameterSource.DEFAULT
        if network_pkl is not None or images_path is not None or ref_path is not None or metrics_given:
            raise click.UsageError('--save-ref writes the reference statistics of --data and computes no metrics: '
                'drop --network, --images, --ref and --metrics')
        if data is None:
            raise click.UsageError('--save-ref needs --data, the dataset (folder or zip) whose statistics it writes')
        return
    if network_pkl is not None and images_path is not None:
        raise click.UsageError('--network and --images are mutually exclusive: score a snapshot or a set of images')
    if network_pkl is None and images_path is None:
        raise click.UsageError('give --network (a snapshot) or --images (a folder or zip of generated images); '
            'or --data with --save-ref to write reference statistics')
    if network_pkl is not None:
        if ref_path is not None:
            raise click.UsageError('--ref works with --images; with --network, pass the reference dataset with --data')
        return
    check_image_metrics(metrics=metrics, data=data, ref_path=ref_path, mirror=mirror)


def check_image_metrics(metrics, data, ref_path, mirror):
    """What a fixed image set can be scored with: no PPL, a reference where needed, --ref for FID only."""
    info = {metric: metric_main.metric_info(metric) for metric in metrics}
    need_g = [m for m in metrics if info[m].needs_generator]
    if need_g:
        raise click.UsageError(f'{", ".join(need_g)} needs the generator itself (it walks its latent space), not a set '
            'of images: use --network')
    if ref_path is not None:
        if data is not None:
            raise click.UsageError('--ref and --data both give the reference: pass one')
        no_ref = [m for m in metrics if not info[m].takes_ref_stats]
        if no_ref:
            takes = [m for m in metric_main.list_valid_metrics() if metric_main.metric_info(m).takes_ref_stats]
            raise click.UsageError(f'--ref holds FID statistics (mu, sigma) only, which {", ".join(no_ref)} cannot use: '
                f'pass the reference images with --data (--ref works with {", ".join(takes)})')
        if mirror:
            raise click.UsageError('--mirror adds flipped reference images; --ref holds fixed statistics (write them '
                'with --save-ref and --mirror=true instead)')
    elif data is None and any(info[m].needs_reference for m in metrics):
        raise click.UsageError(f'{", ".join(m for m in metrics if info[m].needs_reference)} compare with reference '
            'images: pass --data (a dataset folder or zip) or, for FID, --ref (reference statistics npz)')


def open_dataset(path, what):
    """Open a folder or zip with the training data's loader and check every image header; ClickException if unusable."""
    try:
        dataset = dnnlib.util.construct_class_by_name(**metric_utils.image_set_kwargs(path))
        dataset.check_images()
    except (ValueError, OSError) as e:
        raise click.ClickException(f'{what}: {e}') from None
    return dataset


def reference_kwargs(path, dataset):
    """Dataset kwargs of a reference set; a square one names its resolution, as --network does, so both share the cache."""
    kwargs = metric_utils.image_set_kwargs(path)
    _channels, height, width = dataset.image_shape
    if height == width:
        kwargs.resolution = height
    return kwargs


def setup_network(args):
    network_pkl, data = args.network_pkl, args.data
    if args.verbose:
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
    if args.verbose:
        print(f'Reference dataset: {args.dataset_kwargs.path}; results go to '
            f'{args.run_dir or "the screen only (the snapshot is not in a run directory)"}', flush=True)


def setup_images(args):
    """The image set and its reference; too few images for a metric is an error, as in EDM's fid.py."""
    images = open_dataset(args.images_path, what='--images')
    args.gen_dataset_kwargs = metric_utils.image_set_kwargs(args.images_path)
    for metric in args.metrics:
        num_gen = metric_main.metric_info(metric).num_gen
        if num_gen is not None and len(images) < num_gen:
            raise click.ClickException(f'--images: {args.images_path} holds {len(images)} images, but {metric} uses '
                f'{num_gen} generated images; write at least {num_gen} or choose a metric that uses fewer')
        if num_gen is not None and len(images) > num_gen and args.verbose:
            print(f'{metric}: {num_gen} of the {len(images)} images, a random choice seeded by 0', flush=True)

    args.dataset_kwargs = dnnlib.EasyDict()  # No reference images: IS alone, or --ref.
    if args.data is not None:
        reference = open_dataset(args.data, what='Reference dataset')
        if reference.image_shape[1:] != images.image_shape[1:]:
            (h, w), (rh, rw) = images.image_shape[1:], reference.image_shape[1:]
            raise click.ClickException(f'--images are {w}x{h}, but the reference dataset {args.data} is {rw}x{rh}; '
                'the metrics compare images of one size: resize one set (dataset_tool.py --resolution=WxH)')
        args.dataset_kwargs = reference_kwargs(args.data, reference)
    if args.ref_path is not None:
        try:
            metric_utils.load_ref_stats(args.ref_path)
        except ValueError as e:
            raise click.ClickException(f'--ref: {e}') from None
    if args.verbose:
        print(f'Generated images: {args.images_path} ({len(images)}); reference: '
            f'{args.data or args.ref_path or "none"}; results go to the screen only', flush=True)


def setup_save_ref(args):
    reference = open_dataset(args.data, what='Reference dataset')
    if len(reference) < 2:
        raise click.ClickException(f'Reference dataset: {args.data} holds {len(reference)} image; statistics need at least 2')
    if os.path.isdir(args.save_ref):
        raise click.ClickException(f'--save-ref: {args.save_ref} is a folder; give the name of the npz file to write')
    args.dataset_kwargs = reference_kwargs(args.data, reference)
    if args.verbose:
        print(f'Reference dataset: {args.data} ({len(reference)} images); statistics go to {args.save_ref}', flush=True)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
