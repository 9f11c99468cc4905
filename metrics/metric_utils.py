"""Machinery shared by the metrics: options, feature detectors, feature statistics and their disk cache.

Work is split over processes item by item (item i goes to rank i % num_gpus) and the features are
all-gathered in item order, so every process count gives the result of a single process.
"""

import copy
import hashlib
import json
import math
import os
import pickle
import urllib.parse
import warnings
import zipfile

import numpy as np
import torch
import tqdm

import dnnlib

#----------------------------------------------------------------------------
# Feature detectors: NVIDIA's TorchScript ports, used unchanged so numbers stay comparable.

INCEPTION_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'
VGG16_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt'
DETECTOR_DIR_ENV = 'KD_DETECTOR_DIR'


class DetectorUnavailableError(RuntimeError):
    """A feature detector file is neither in the detector folder nor downloadable."""


class MetricOptions:
    """Everything a metric function needs: the generator, the reference data and where to run."""

    def __init__(self,
        G               = None,     # Generator: z_dim, c_dim, forward(z, c, **G_kwargs) -> NCHW in [-1, 1].
        G_kwargs        = {},       # Extra keyword arguments of G's forward (truncation_psi, noise_mode, ...).
        dataset_kwargs  = {},       # Reference dataset, constructed by dnnlib.util.construct_class_by_name.
        num_gpus        = 1,        # Number of processes taking part (torch.distributed group size).
        rank            = 0,        # This process's rank.
        device          = None,     # torch.device; None = cuda:rank when CUDA exists, else CPU.
        progress        = False,    # Show progress bars (rank 0 only).
        cache           = True,     # Cache real-image statistics on disk.
        cache_dir       = None,     # Folder of that cache; None = dnnlib cache dir / gan-metrics.
        detector_dir    = None,     # Folder holding the detector files; None = $KD_DETECTOR_DIR, then download.
        mirror          = False,    # Add x-flipped copies of the reference images (not part of any protocol).
        data_workers    = None,     # DataLoader worker processes for the reference images; None = min(3, CPU count).
        gen_dataset_kwargs = None,  # A fixed set of generated images (folder or zip) scored instead of G's output.
        ref_stats       = None,     # FID reference statistics: npz (mu, sigma) path or URL, instead of the dataset's.
    ):
        if num_gpus < 1 or not 0 <= rank < num_gpus:
            raise ValueError(f'rank must lie in [0, num_gpus): got rank={rank}, num_gpus={num_gpus}')
        if G is not None and gen_dataset_kwargs is not None:
            raise ValueError('give the generated images either as G or as gen_dataset_kwargs, not both')
        if device is None:
            device = torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu')
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs)
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
        self.num_gpus = num_gpus
        self.rank = rank
        self.device = torch.device(device)
        self.progress = progress
        self.cache = cache
        self.cache_dir = cache_dir
        self.detector_dir = detector_dir
        self.mirror = mirror
        self.data_workers = min(3, os.cpu_count() or 1) if data_workers is None else data_workers
        self.gen_dataset_kwargs = None if gen_dataset_kwargs is None else dnnlib.EasyDict(gen_dataset_kwargs)
        self.ref_stats = ref_stats

    def use_full_dataset(self, keep_xflip=False):
        """The '_full' protocols: every image of the reference dataset, flipped copies only when asked.
        keep_xflip: keep the training set's x-flips (StyleGAN2-ADA's legacy fid50k, kid50k, pr50k3)."""
        for key in ('max_size', 'subset', 'subset_seed'):
            self.dataset_kwargs.pop(key, None)
        if not keep_xflip:
            self.dataset_kwargs.xflip = bool(self.mirror)


def detector_file_name(url):
    return os.path.basename(urllib.parse.urlparse(url).path)


def resolve_detector_file(url, detector_dir=None, verbose=False):
    """Local path of a detector: DIR/<file name> (detector_dir or $KD_DETECTOR_DIR), else the download cache."""
    file_name = detector_file_name(url)
    folder = detector_dir or os.environ.get(DETECTOR_DIR_ENV)
    if folder:
        path = os.path.join(folder, file_name)
        if os.path.isfile(path):
            return path
    try:
        return dnnlib.util.open_url(url, verbose=verbose, return_filename=True, cache=True)
    except dnnlib.util.OpenURLError as e:
        looked = f'it is not in the detector folder "{folder}" and ' if folder else ''
        raise DetectorUnavailableError(
            f'Feature detector "{file_name}" is not available: {looked}it could not be downloaded from {url} '
            f'({type(e.__cause__ or e).__name__}; offline?). Download that file on a machine with network '
            f'access, put it in a folder DIR and pass --detector-dir=DIR (or set {DETECTOR_DIR_ENV}=DIR).'
        ) from None


_file_md5_cache = dict()  # (path, size, mtime) => md5 hex digest


def file_md5(path):
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _file_md5_cache:
        md5 = hashlib.md5()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                md5.update(chunk)
        _file_md5_cache[key] = md5.hexdigest()
    return _file_md5_cache[key]


_detector_cache = dict()  # (url, folder, device) => (TorchScript module, md5 of its file)


def get_feature_detector(url, device, num_gpus=1, rank=0, verbose=False, detector_dir=None):
    """Load a detector once per process and device; returns (module, md5 of its file)."""
    key = (url, detector_dir or os.environ.get(DETECTOR_DIR_ENV), torch.device(device))
    if key not in _detector_cache:
        # The leader downloads first; the others then find the file in the cache.
        if num_gpus > 1 and rank != 0:
            torch.distributed.barrier()
        path = resolve_detector_file(url, detector_dir=detector_dir, verbose=(verbose and rank == 0))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.jit's deprecation notice; the files are TorchScript.
            detector = torch.jit.load(path, map_location=device).eval()
        if num_gpus > 1 and rank == 0:
            torch.distributed.barrier()
        _detector_cache[key] = (detector, file_md5(path))
    return _detector_cache[key]


def run_detector(detector, images, detector_kwargs):
    """uint8 NCHW images (1 or 3 channels) -> float32 features [N, F]."""
    if images.shape[1] == 1:
        images = images.repeat([1, 3, 1, 1])
    return detector(images, **detector_kwargs).to(torch.float32)

#----------------------------------------------------------------------------


class FeatureStats:
    """Accumulates features: all of them, and/or their mean and covariance in float64."""

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features = None
        self.all_features = []
        self.raw_mean = None
        self.raw_cov = None

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def append_torch(self, x, num_gpus=1, rank=0):
        """Append a batch [N, F]; with several processes, gather every rank's batch in global item order."""
        if x.ndim != 2:
            raise ValueError(f'features must be [N, F], got shape {list(x.shape)}')
        if num_gpus > 1:
            gathered = [torch.empty_like(x) for _ in range(num_gpus)]
            torch.distributed.all_gather(gathered, x.contiguous())
            x = torch.stack(gathered, dim=1).flatten(0, 1)  # Row j of rank r is item j * num_gpus + r.
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        if self.num_features is None:
            self.num_features = x.shape[1]
        elif x.shape[1] != self.num_features:
            raise ValueError(f'features changed width: {x.shape[1]} after {self.num_features}')
        if self.capture_all:
            self.all_features.append(x.detach().cpu().numpy().astype(np.float32))
        if self.capture_mean_cov:
            x64 = x.detach().to(torch.float64)
            if self.raw_mean is None:
                self.raw_mean = torch.zeros([self.num_features], dtype=torch.float64, device=x.device)
                self.raw_cov = torch.zeros([self.num_features] * 2, dtype=torch.float64, device=x.device)
            self.raw_mean += x64.sum(dim=0)
            self.raw_cov += x64.T @ x64
        self.num_items += x.shape[0]

    def append(self, x):
        self.append_torch(torch.as_tensor(np.asarray(x, dtype=np.float32)))

    def get_all(self):
        if not self.capture_all:
            raise ValueError('FeatureStats was created without capture_all')
        return np.concatenate(self.all_features, axis=0) if self.all_features else np.zeros([0, self.num_features or 0], np.float32)

    def get_all_torch(self):
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self):
        """Mean and (biased, 1/N) covariance in float64, as StyleGAN2-ADA computes them."""
        if not self.capture_mean_cov:
            raise ValueError('FeatureStats was created without capture_mean_cov')
        if self.num_items == 0:
            raise ValueError('no features were collected')
        mean = self.raw_mean.cpu().numpy() / self.num_items
        cov = self.raw_cov.cpu().numpy() / self.num_items - np.outer(mean, mean)
        return mean, cov

    def save(self, path):
        state = dict(self.__dict__)
        if self.raw_mean is not None:
            state.update(raw_mean=self.raw_mean.cpu().numpy(), raw_cov=self.raw_cov.cpu().numpy())
        with dnnlib.util.atomic_write(path, 'wb') as f:
            pickle.dump(state, f)

    @staticmethod
    def load(path):
        with open(path, 'rb') as f:
            state = pickle.load(f)
        stats = FeatureStats()
        stats.__dict__.update(state)
        if stats.raw_mean is not None:
            stats.raw_mean = torch.from_numpy(stats.raw_mean)
            stats.raw_cov = torch.from_numpy(stats.raw_cov)
        return stats

#----------------------------------------------------------------------------
# Cache keys of real-image statistics.

_IGNORED_DATASET_KWARGS = ('path', 'use_labels')  # The path enters through its stamp; labels do not change images.


def path_stamp(path):
    """Identity of a dataset file or folder: absolute path, and size + mtime of every file in it."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        entries = []
        for root, _dirs, files in os.walk(path):
            for fname in sorted(files):
                st = os.stat(os.path.join(root, fname))
                entries.append([os.path.relpath(os.path.join(root, fname), path), st.st_size, st.st_mtime_ns])
        return dict(path=path, files=sorted(entries))
    st = os.stat(path)
    return dict(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


def stats_cache_key(dataset_kwargs, detector_url, detector_md5, detector_kwargs, stats_kwargs):
    kwargs = {k: v for k, v in dataset_kwargs.items() if k not in _IGNORED_DATASET_KWARGS}
    key = dict(dataset=path_stamp(dataset_kwargs['path']), dataset_kwargs=kwargs, detector=detector_file_name(detector_url),
        detector_md5=detector_md5, detector_kwargs=detector_kwargs, stats_kwargs=stats_kwargs)
    return hashlib.md5(json.dumps(key, sort_keys=True, default=str).encode('utf-8')).hexdigest()

#----------------------------------------------------------------------------


def progress_bar(opts, total, desc):
    return tqdm.tqdm(total=total, desc=desc, unit='img', dynamic_ncols=True, leave=False,
        disable=not (opts.progress and opts.rank == 0))


def _broadcast_flag(flag, opts):
    if opts.num_gpus == 1:
        return flag
    flag = torch.as_tensor(float(flag), dtype=torch.float32, device=opts.device)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item() != 0)


def rank_items(num_items, opts):
    """Indices this rank handles, the same count on every rank; indices past the end are padding."""
    per_rank = math.ceil(num_items / opts.num_gpus)
    return [j * opts.num_gpus + opts.rank for j in range(per_rank)]


@torch.no_grad()
def compute_feature_stats_for_dataset(opts, detector_url, detector_kwargs, batch_size=64, **stats_kwargs):
    """Features of the reference images; cached on disk, keyed by dataset, detector and options."""
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)
    detector, detector_md5 = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus,
        rank=opts.rank, verbose=opts.progress, detector_dir=opts.detector_dir)

    cache_file = None
    if opts.cache:
        md5 = stats_cache_key(opts.dataset_kwargs, detector_url, detector_md5, detector_kwargs, stats_kwargs)
        tag = f'{dataset.name}-{os.path.splitext(detector_file_name(detector_url))[0]}-{md5}'
        cache_file = os.path.join(opts.cache_dir or dnnlib.make_cache_dir_path('gan-metrics'), tag + '.pkl')
        if _broadcast_flag(opts.rank == 0 and os.path.isfile(cache_file), opts):
            return FeatureStats.load(cache_file)

    num_items = len(dataset)
    if stats_kwargs.get('max_items') is not None:
        num_items = min(num_items, stats_kwargs['max_items'])
    stats = FeatureStats(**dict(stats_kwargs, max_items=num_items))
    _accumulate_dataset_features(opts, dataset, detector, detector_kwargs, stats, num_items, batch_size)

    if cache_file is not None and opts.rank == 0:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        stats.save(cache_file)
    return stats


def _accumulate_dataset_features(opts, dataset, detector, detector_kwargs, stats, num_items, batch_size):
    """Features of the first num_items images of dataset into stats, item i on rank i % num_gpus."""
    item_subset = [i % num_items for i in rank_items(num_items, opts)]
    loader = torch.utils.data.DataLoader(dataset, sampler=item_subset, batch_size=batch_size,
        num_workers=opts.data_workers, pin_memory=(opts.device.type == 'cuda'))
    with progress_bar(opts, num_items, f'{dataset.name} features') as bar:
        for images, _labels in loader:
            features = run_detector(detector, images.to(opts.device), detector_kwargs)
            before = stats.num_items
            stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
            bar.update(stats.num_items - before)

#----------------------------------------------------------------------------
# Generated images. Item i has its own latent (and label) seeded by i, so the images do not depend on
# batch size or process count.


class LatentSampler:
    """Per-item latents z and labels c for a generator; labels come from the reference dataset."""

    def __init__(self, opts, z_dim, c_dim, seed=0):
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.seed = seed
        self.labels = None
        if c_dim > 0:
            dataset = dnnlib.util.construct_class_by_name(**dict(opts.dataset_kwargs, use_labels=True))
            if not dataset.has_labels or dataset.label_dim != c_dim:
                raise ValueError(f'The generator is conditional (c_dim={c_dim}), but the reference dataset '
                    f'"{dataset.name}" has {"labels of width " + str(dataset.label_dim) if dataset.has_labels else "no labels"}; '
                    f'use a dataset with {c_dim}-wide labels (dataset.json) as reference.')
            self.labels = torch.from_numpy(np.stack([dataset.get_label(i) for i in range(len(dataset))]).astype(np.float32))

    def __call__(self, indices, num_latents=1):
        """z [N, num_latents * z_dim] and c [N, c_dim] for the given item indices."""
        gen = torch.Generator()
        zs, cs = [], []
        for i in indices:
            gen.manual_seed(self.seed * (1 << 32) + i)
            zs.append(torch.randn([num_latents * self.z_dim], generator=gen))
            if self.labels is not None:
                cs.append(self.labels[torch.randint(len(self.labels), [], generator=gen)])
        c = torch.stack(cs) if cs else torch.zeros([len(indices), 0])
        return torch.stack(zs), c


def images_to_uint8(images):
    """Generator output in [-1, 1] -> uint8 in [0, 255], 1 channel repeated to 3."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f'the generator must output NCHW images with 1 or 3 channels, got shape {list(images.shape)}')
    images = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


def copy_generator(opts):
    if opts.G is None:
        raise ValueError('this metric needs a generator (G=...)')
    return copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)


@torch.no_grad()
def compute_feature_stats_for_generator(opts, detector_url, detector_kwargs, batch_size=64, batch_gen=None, seed=0, **stats_kwargs):
    """Features of generated images (never cached); max_items = number of images."""
    num_items = stats_kwargs.get('max_items')
    if num_items is None or num_items < 1:
        raise ValueError(f'the number of generated images (max_items) must be a positive integer, got {num_items}')
    if opts.gen_dataset_kwargs is not None:  # A fixed image set stands in for G.
        return compute_feature_stats_for_image_set(opts, detector_url, detector_kwargs, batch_size=batch_size, **stats_kwargs)
    batch_gen = min(batch_gen or batch_size, batch_size)
    G = copy_generator(opts)
    sampler = LatentSampler(opts, z_dim=G.z_dim, c_dim=G.c_dim, seed=seed)
    detector, _md5 = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus,
        rank=opts.rank, verbose=opts.progress, detector_dir=opts.detector_dir)

    stats = FeatureStats(**stats_kwargs)
    group = getattr(G, 'metric_forward_batch', None)
    if group:
        _generate_in_groups(opts, G, sampler, detector, detector_kwargs, stats, num_items, int(group))
        return stats
    items = rank_items(num_items, opts)
    with progress_bar(opts, num_items, 'generated features') as bar:
        for start in range(0, len(items), batch_size):
            z, c = sampler(items[start : start + batch_size])
            images = []
            for z_part, c_part in zip(z.split(batch_gen), c.split(batch_gen)):
                img = G(z=z_part.to(opts.device), c=c_part.to(opts.device), **opts.G_kwargs)
                images.append(images_to_uint8(img))
            features = run_detector(detector, torch.cat(images), detector_kwargs)
            before = stats.num_items
            stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
            bar.update(stats.num_items - before)
    return stats

#----------------------------------------------------------------------------

def _generate_in_groups(opts, G, sampler, detector, detector_kwargs, stats, num_items, group):
    """For generators whose output depends on the batch (BigGAN's batch norm): one forward pass per group of
    `group` consecutive items, group k on rank k % num_gpus, gathered back in item order. The features
    are then the same for any metric batch size and process count."""
    num_groups = math.ceil(num_items / group)
    rounds = math.ceil(num_groups / opts.num_gpus)
    with progress_bar(opts, num_items, 'generated features') as bar:
        for t in range(rounds):
            k = t * opts.num_gpus + opts.rank  # Past the end: padding, generated and dropped.
            z, c = sampler(range(k * group, (k + 1) * group))
            img = G(z=z.to(opts.device), c=c.to(opts.device), **opts.G_kwargs)
            features = run_detector(detector, images_to_uint8(img), detector_kwargs)
            if opts.num_gpus > 1:
                gathered = [torch.empty_like(features) for _ in range(opts.num_gpus)]
                torch.distributed.all_gather(gathered, features.contiguous())
                features = torch.cat(gathered)  # Groups t * num_gpus + r, in order.
            before = stats.num_items
            stats.append_torch(features)
            bar.update(stats.num_items - before)

#----------------------------------------------------------------------------
# Fixed sets of generated images (another method's samples) and precomputed FID reference statistics.


def image_set_kwargs(path):
    """Dataset kwargs of a folder or zip of images, read with the loader of the training data."""
    return dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=path)


def open_image_set(dataset_kwargs, num_images=None):
    """The images, cut to num_images as EDM's fid.py cuts them to --num: a random choice seeded by 0 (the
    dataset's max_size), kept in file-name order. Fewer than num_images is an error there and here."""
    dataset = dnnlib.util.construct_class_by_name(**dict(dataset_kwargs, max_size=num_images, random_seed=0))
    if num_images is not None and len(dataset) < num_images:
        raise ValueError(f'{dataset_kwargs["path"]} holds {len(dataset)} images, but {num_images} generated images '
            'are needed')
    return dataset


@torch.no_grad()
def compute_feature_stats_for_image_set(opts, detector_url, detector_kwargs, batch_size=64, **stats_kwargs):
    """Features of opts.gen_dataset_kwargs' images in place of a generator's (never cached); max_items = number of images."""
    num_items = stats_kwargs.get('max_items')
    if num_items is None or num_items < 1:
        raise ValueError(f'the number of generated images (max_items) must be a positive integer, got {num_items}')
    dataset = open_image_set(opts.gen_dataset_kwargs, num_images=num_items)
    detector, _md5 = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus,
        rank=opts.rank, verbose=opts.progress, detector_dir=opts.detector_dir)
    stats = FeatureStats(**stats_kwargs)
    _accumulate_dataset_features(opts, dataset, detector, detector_kwargs, stats, num_items, batch_size)
    return stats


REF_STATS_KEYS = ('mu', 'sigma')  # The npz layout of EDM's `fid.py ref`: float64 mean [F] and covariance [F, F].


def save_ref_stats(path, mu, sigma):
    """Write FID reference statistics as EDM's fid.py writes them: an npz with float64 mu and sigma only."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != mu.shape * 2:
        raise ValueError(f'reference statistics need mu [F] and sigma [F, F], got {list(mu.shape)} and {list(sigma.shape)}')
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with dnnlib.util.atomic_write(path, 'wb') as f:  # A file object: np.savez would append '.npz' to a name.
        np.savez(f, mu=mu, sigma=sigma)


def load_ref_stats(path):
    """(mu, sigma) in float64 from an npz of save_ref_stats or EDM's fid.py (path or URL); ValueError if unusable."""
    try:
        local = dnnlib.util.open_url(path, return_filename=True, cache=True, verbose=False)
        data = np.load(local, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # A bare .npy array.
            raise ValueError('an array, not an npz archive')
        with data:
            found = {key: data[key] for key in data.files}
    except dnnlib.util.OpenURLError as e:
        raise ValueError(f'reference statistics: {e}') from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f'reference statistics {path}: not a readable npz file ({e})') from None
    missing = [key for key in REF_STATS_KEYS if key not in found]
    if missing:
        raise ValueError(f'reference statistics {path}: keys {sorted(found)}, but an npz with "mu" and "sigma" '
            '(the layout of EDM\'s fid.py ref) is needed')
    mu, sigma = found['mu'], found['sigma']
    if mu.ndim != 1 or sigma.shape != mu.shape * 2 or mu.dtype.kind != 'f' or sigma.dtype.kind != 'f':
        raise ValueError(f'reference statistics {path}: mu {mu.dtype} {list(mu.shape)}, sigma {sigma.dtype} '
            f'{list(sigma.shape)}; expected float mu [F] and sigma [F, F]')
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f'reference statistics {path}: mu or sigma holds NaN or infinity')
    return mu.astype(np.float64), sigma.astype(np.float64)

#----------------------------------------------------------------------------
