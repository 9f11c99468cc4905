"""Metrics end to end on CPU with tiny stand-in detectors, a tiny generator and a tiny zip dataset."""

import io
import json
import math
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import dnnlib
from metrics import frechet_inception_distance, metric_main, metric_utils, perceptual_path_length, precision_recall
from training import snapshot
import tiny_detector

NUM_REAL = 23  # Odd, so two processes need padding.
NUM_GEN = 13
RES = 8
NUM_CLASSES = 3

#----------------------------------------------------------------------------


class TinyGenerator(torch.nn.Module):
    """Linear mapping and synthesis with the StyleGAN2 call interface; outputs roughly in [-1, 1]."""

    def __init__(self, z_dim=4, c_dim=0, w_dim=5, num_ws=2, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.img_resolution, self.img_channels = RES, 3
        self.register_buffer('map_weight', torch.randn([z_dim + c_dim, w_dim], generator=gen) * 0.5)
        self.register_buffer('syn_weight', torch.randn([w_dim, 3 * RES * RES], generator=gen) * 0.3)

    def mapping(self, z, c):
        return (torch.cat([z, c], dim=1) @ self.map_weight)[:, None].repeat([1, self.num_ws, 1])

    def synthesis(self, ws, noise_mode='random', force_fp32=False):
        assert noise_mode == 'const' or not force_fp32
        return (ws[:, 0] @ self.syn_weight).reshape([-1, 3, RES, RES])

    def forward(self, z, c, **synthesis_kwargs):
        return self.synthesis(self.mapping(z, c), **synthesis_kwargs)


def _write_dataset(path, labels=True):
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(path, 'w') as zf:
        records = []
        for i in range(NUM_REAL):
            label = i % NUM_CLASSES
            img = np.clip(rng.randn(RES, RES, 3) * 50 + 60 * label + 60, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format='png')
            zf.writestr(f'img{i:03d}.png', buf.getvalue())
            records.append([f'img{i:03d}.png', label])
        if labels:
            zf.writestr('dataset.json', json.dumps(dict(labels=records, class_names=['a', 'b', 'c'])))
    return str(path)


def _read_images(path):
    """Every image of the zip, NCHW uint8, read with PIL alone (independent of training/dataset.py)."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith('.png'))
        return torch.from_numpy(np.stack([np.array(PIL.Image.open(io.BytesIO(zf.read(n)))) for n in names])).permute(0, 3, 1, 2)


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp('metrics_assets')
    return dnnlib.EasyDict(detector_dir=tiny_detector.save_tiny_detectors(str(root / 'detectors')),
        data=_write_dataset(root / 'data.zip'), data_unlabeled=_write_dataset(root / 'unlabeled.zip', labels=False))


def _opts_kwargs(assets, cache_dir, **kwargs):
    return dict(dict(G=TinyGenerator(), dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=assets.data),
        device='cpu', cache_dir=str(cache_dir), detector_dir=assets.detector_dir, data_workers=0), **kwargs)


def _mean_cov(x):
    x = np.asarray(x, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False, bias=True)


def fid_tiny(opts):
    opts.use_full_dataset()
    return dict(fid_tiny=frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN))


@pytest.fixture
def tiny_metric(monkeypatch):
    """A test-only metric in a private copy of the registry."""
    monkeypatch.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
    metric_main.register_metric(fid_tiny)

#----------------------------------------------------------------------------


def test_fid_matches_independent_computation_and_caches_reals(assets, tmp_path):
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache'))
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN)

    detector = tiny_detector.load_detector(assets.detector_dir, tiny_detector.INCEPTION_FILE)
    real_mu, real_cov = _mean_cov(detector(_read_images(assets.data), return_features=True))
    cache_files = list((tmp_path / 'cache').iterdir())
    assert len(cache_files) == 1 and cache_files[0].name.startswith('data-inception-2015-12-05-')
    cached_mu, cached_cov = metric_utils.FeatureStats.load(cache_files[0]).get_mean_cov()
    np.testing.assert_allclose(cached_mu, real_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached_cov, real_cov, rtol=1e-4, atol=1e-6)

    # Generated images: per-item latents, (x * 127.5 + 128) clamped to uint8.
    z, c = metric_utils.LatentSampler(opts, z_dim=4, c_dim=0)(range(NUM_GEN))
    images = (TinyGenerator()(z, c) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    gen_mu, gen_cov = _mean_cov(detector(images, return_features=True))
    assert fid == pytest.approx(frechet_inception_distance.fid_from_mean_cov(real_mu, real_cov, gen_mu, gen_cov), rel=1e-4)

    # Second run: the reals come from the cache (the detector sees only the generated images).
    counter = metric_utils.get_feature_detector(metric_utils.INCEPTION_URL, device='cpu', detector_dir=assets.detector_dir)[0]
    seen, mtime = int(counter.num_images), cache_files[0].stat().st_mtime_ns
    assert frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN) == fid
    assert int(counter.num_images) - seen == NUM_GEN
    assert cache_files[0].stat().st_mtime_ns == mtime

    # Another max_items is another cache entry.
    frechet_inception_distance.compute_fid(opts, max_real=10, num_gen=NUM_GEN)
    assert len(list((tmp_path / 'cache').iterdir())) == 2


def test_cache_key_follows_dataset_file_and_options(assets, tmp_path):
    kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=assets.data)
    key = lambda dataset_kwargs, md5='x', stats=dict(max_items=None): metric_utils.stats_cache_key(
        dataset_kwargs, metric_utils.INCEPTION_URL, md5, dict(return_features=True), stats)
    base = key(kwargs)
    assert key(dict(kwargs, use_labels=True)) == base  # Labels do not change the images.
    assert key(dict(kwargs, xflip=True)) != base
    assert key(kwargs, md5='y') != base
    assert key(kwargs, stats=dict(max_items=5)) != base
    st = os.stat(assets.data)
    os.utime(assets.data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert key(kwargs) != base
    finally:
        os.utime(assets.data, ns=(st.st_atime_ns, st.st_mtime_ns))


def _distributed_worker(rank, num_gpus, init_file, opts_kwargs, out_file):
    torch.set_num_threads(1)  # Two processes on two cores.
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=num_gpus)
    try:
        result = _fid_and_pr(metric_utils.MetricOptions(**opts_kwargs, num_gpus=num_gpus, rank=rank))
        if rank == 0:
            with open(out_file, 'w') as f:
                json.dump(result, f)
    finally:
        torch.distributed.destroy_process_group()


def _fid_and_pr(opts):
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN)
    pr = precision_recall.compute_pr(opts, max_real=None, num_gen=NUM_GEN, nhood_size=3, row_batch_size=5, col_batch_size=4)
    return dict(fid=fid, pr=list(pr))


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(assets, tmp_path):
    single = _fid_and_pr(metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache1')))
    out_file = str(tmp_path / 'result.json')
    torch.multiprocessing.spawn(_distributed_worker, nprocs=2,
        args=(2, str(tmp_path / 'init'), _opts_kwargs(assets, tmp_path / 'cache2'), out_file))
    with open(out_file) as f:
        double = json.load(f)
    assert double['fid'] == pytest.approx(single['fid'], rel=1e-6)
    assert double['pr'] == single['pr']
    assert len(list((tmp_path / 'cache2').iterdir())) == 2  # Inception and VGG16 real statistics, saved once.


def test_offline_without_detector_file_gives_one_clear_error(assets, tmp_path, monkeypatch):
    def offline(url, **_kwargs):
        raise dnnlib.util.OpenURLError(f'cannot reach {url}')
    monkeypatch.setattr(dnnlib.util, 'open_url', offline)
    monkeypatch.delenv(metric_utils.DETECTOR_DIR_ENV, raising=False)
    empty = tmp_path / 'empty'
    empty.mkdir()
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache', detector_dir=str(empty)))
    with pytest.raises(metric_utils.DetectorUnavailableError) as info:
        frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN)
    message = str(info.value)
    assert 'inception-2015-12-05.pt' in message and metric_utils.INCEPTION_URL in message
    assert '--detector-dir' in message and str(empty) in message
    assert not (tmp_path / 'cache').exists()


def test_conditional_generator_takes_labels_from_the_dataset(assets, tmp_path):
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache', G=TinyGenerator(c_dim=NUM_CLASSES)))
    _z, c = metric_utils.LatentSampler(opts, z_dim=4, c_dim=NUM_CLASSES)(range(30))
    assert torch.all(c.sum(dim=1) == 1) and len(set(c.argmax(dim=1).tolist())) == NUM_CLASSES
    assert math.isfinite(frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN))

    unlabeled = _opts_kwargs(assets, tmp_path / 'cache', G=TinyGenerator(c_dim=NUM_CLASSES))
    unlabeled['dataset_kwargs'] = dict(unlabeled['dataset_kwargs'], path=assets.data_unlabeled)
    with pytest.raises(ValueError, match='conditional'):
        frechet_inception_distance.compute_fid(metric_utils.MetricOptions(**unlabeled), max_real=None, num_gen=NUM_GEN)


def test_ppl_of_linear_generator_matches_closed_form(assets, tmp_path):
    # Linear G and linear LPIPS embedding: the path length is exact for any epsilon.
    G = TinyGenerator()
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache', G=G))
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=20, epsilon=1e-2, crop=False, batch_size=3)
    z, c = metric_utils.LatentSampler(opts, z_dim=4, c_dim=0)(range(20), num_latents=2)
    z0, z1 = z.chunk(2, dim=1)
    delta = (G.synthesis(G.mapping(z1, c)) - G.synthesis(G.mapping(z0, c))) * 127.5
    vgg16 = tiny_detector.load_detector(assets.detector_dir, tiny_detector.VGG16_FILE)
    lengths = vgg16(delta, resize_images=False, return_lpips=True).square().sum(dim=1).double().numpy()
    lo, hi = np.sort(lengths)[0], np.sort(lengths)[-1]  # 1st / 99th percentiles of 20 values: the extremes.
    assert ppl == pytest.approx(lengths[(lengths >= lo) & (lengths <= hi)].mean(), rel=1e-3)

    class NoMapping(torch.nn.Module):
        z_dim, c_dim = 4, 0
    with pytest.raises(ValueError, match='mapping and synthesis'):
        perceptual_path_length.compute_ppl(metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path, G=NoMapping())),
            num_samples=4, epsilon=1e-4, crop=False, batch_size=2)


def test_registry_calc_and_report(assets, tmp_path, tiny_metric):
    assert {'fid50k_full', 'fid10k_full', 'fid5k_full', 'kid50k_full', 'pr50k3_full', 'is50k', 'is10k',
        'ppl2_wend'} <= set(metric_main.list_valid_metrics())
    assert metric_main.detector_urls('pr50k3_full') == (metric_utils.VGG16_URL,)
    with pytest.raises(ValueError, match='Unknown metric "nope"'):
        metric_main.calc_metric('nope')

    result = metric_main.calc_metric('fid_tiny', **_opts_kwargs(assets, tmp_path / 'cache'))
    assert result.metric == 'fid_tiny' and result.num_gpus == 1 and result.results.fid_tiny > 0
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    metric_main.report_metric(result, run_dir=str(run_dir), snapshot_pkl=str(run_dir / 'network-snapshot-000004.pkl'))
    metric_main.report_metric(result, run_dir=str(run_dir))
    lines = (run_dir / 'metric-fid_tiny.jsonl').read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record['results']['fid_tiny'] == result.results.fid_tiny
    assert record['snapshot_pkl'] == 'network-snapshot-000004.pkl'

#----------------------------------------------------------------------------
# calc_metrics.py


@pytest.fixture
def run_dir(assets, tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'dnnlib-cache'))  # Never the user's cache.
    run_dir = tmp_path / '00000-tiny'
    run_dir.mkdir()
    (run_dir / 'training_options.json').write_text('{}')
    snapshot.save_snapshot(str(run_dir / 'network-snapshot-000000.pkl'), dict(G=None, D=None, G_ema=TinyGenerator(),
        training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=assets.data, xflip=True)))
    return run_dir


def test_calc_metrics_cli_appends_to_run_dir(assets, run_dir, tiny_metric):
    result = CliRunner().invoke(calc_metrics.main, ['--network', str(run_dir / 'network-snapshot-000000.pkl'),
        '--metrics=fid_tiny', f'--detector-dir={assets.detector_dir}', '--device=cpu', '--verbose=false'])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / 'metric-fid_tiny.jsonl').read_text())
    assert record['results']['fid_tiny'] > 0 and record['snapshot_pkl'] == 'network-snapshot-000000.pkl'
    assert json.loads(result.output.strip().splitlines()[-1])['results'] == record['results']


def test_calc_metrics_cli_errors_are_clear(assets, run_dir, tmp_path, monkeypatch):
    network = str(run_dir / 'network-snapshot-000000.pkl')
    result = CliRunner().invoke(calc_metrics.main, ['--network', network, '--metrics=fid50k_full,nope', '--device=cpu'])
    assert result.exit_code == 2 and 'unknown metric(s) nope' in result.output

    result = CliRunner().invoke(calc_metrics.main, ['--network', network, '--metrics=is10k',
        f'--detector-dir={assets.detector_dir}', '--device=cpu', f'--data={tmp_path / "missing.zip"}'])
    assert result.exit_code == 1 and 'Reference dataset' in result.output and 'missing.zip' in result.output

    def offline(url, **_kwargs):
        raise dnnlib.util.OpenURLError(f'cannot reach {url}')
    monkeypatch.setattr(dnnlib.util, 'open_url', offline)
    monkeypatch.delenv(metric_utils.DETECTOR_DIR_ENV, raising=False)
    result = CliRunner().invoke(calc_metrics.main, ['--network', network, '--metrics=pr50k3_full', '--device=cpu',
        f'--detector-dir={tmp_path}'])
    assert result.exit_code == 1 and 'vgg16.pt' in result.output and '--detector-dir' in result.output
    assert 'Traceback' not in result.output

#----------------------------------------------------------------------------

#----------------------------------------------------------------------------

@pytest.mark.gpu
def test_fid_on_cuda_equals_cpu(assets, tmp_path):
    # The CUDA branch of the pipeline: detector and generator on the GPU, pinned-memory loader.
    cpu = frechet_inception_distance.compute_fid(metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'a')), max_real=None, num_gen=NUM_GEN)
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'b', G=TinyGenerator().cuda(), device='cuda'))
    assert opts.device.type == 'cuda'
    assert frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN) == pytest.approx(cpu, rel=1e-3, abs=1e-4)

#----------------------------------------------------------------------------
# Generators with batch statistics (BigGAN): fixed forward groups, whatever the batch and process count.

class _BatchStatG(torch.nn.Module):
    """Output depends on the batch (normalised by the batch mean), like BigGAN's batch norm."""
    z_dim, c_dim, img_resolution, img_channels = 4, 0, RES, 3

    def __init__(self, group):
        super().__init__()
        self.metric_forward_batch = group
        self.register_buffer('w', torch.randn([4, 3 * RES * RES], generator=torch.Generator().manual_seed(3)) * 0.3)

    def forward(self, z, c, **_kwargs):
        x = z - z.mean(dim=0, keepdim=True)
        return torch.tanh(x @ self.w).reshape([-1, 3, RES, RES])

def _gen_features(assets, tmp_path, group, batch_size, num_gpus=1, rank=0):
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path, G=_BatchStatG(group), num_gpus=num_gpus, rank=rank))
    stats = metric_utils.compute_feature_stats_for_generator(opts, metric_utils.INCEPTION_URL, dict(return_features=True),
        batch_size=batch_size, capture_all=True, max_items=23)
    return stats.get_all()

def test_batch_statistics_generator_is_grouped(assets, tmp_path):
    a = _gen_features(assets, tmp_path, group=5, batch_size=64)
    b = _gen_features(assets, tmp_path, group=5, batch_size=3)
    assert a.shape[0] == 23
    np.testing.assert_array_equal(a, b)
    # Without the groups, the features follow the metric batch: what the groups fix.
    assert not np.allclose(_gen_features(assets, tmp_path, group=None, batch_size=64),
        _gen_features(assets, tmp_path, group=None, batch_size=3))

def _grouped_worker(rank, init_file, assets, cache, out_file):
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        features = _gen_features(assets, cache, group=5, batch_size=7, num_gpus=2, rank=rank)
        if rank == 0:
            np.save(out_file, features)
    finally:
        torch.distributed.destroy_process_group()

@pytest.mark.slow
def test_batch_statistics_generator_two_processes(assets, tmp_path):
    out_file = str(tmp_path / 'features.npy')
    torch.multiprocessing.spawn(_grouped_worker, nprocs=2, args=(str(tmp_path / 'init'), assets, tmp_path / 'c', out_file))
    np.testing.assert_array_equal(np.load(out_file), _gen_features(assets, tmp_path, group=5, batch_size=64))


def test_ppl_redraws_the_constant_noise_per_batch(assets, tmp_path, monkeypatch):
    # StyleGAN2-ADA's PPL draws new noise_const buffers for every batch; ours are seeded by the batch.
    from training import networks_stylegan2 as net
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
        channel_base=32, channel_max=4)
    seen = []
    real = perceptual_path_length.path_lengths
    def spy(G, *args, **kwargs):
        seen.append(G.synthesis.b8.conv1.noise_const.clone())
        return real(G, *args, **kwargs)
    monkeypatch.setattr(perceptual_path_length, 'path_lengths', spy)
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path, G=G))
    first = perceptual_path_length.compute_ppl(opts, num_samples=6, epsilon=1e-4, crop=False, batch_size=2)
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
    assert not torch.equal(seen[0], G.synthesis.b8.conv1.noise_const)  # A copy of G is changed, not G.
    seen.clear()
    assert perceptual_path_length.compute_ppl(opts, num_samples=6, epsilon=1e-4, crop=False, batch_size=2) == first


#----------------------------------------------------------------------------
# StyleGAN2-ADA's legacy metric names.

def test_slerp_against_its_definition():
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    ua, ub = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((ua * ub).sum(1, keepdim=True))
    for t in (0.0, 0.3, 1.0):
        expect = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)  # Shoemake's form.
        torch.testing.assert_close(perceptual_path_length.slerp(a, b, torch.full([5, 1], t, dtype=torch.float64)), expect)

def test_ppl_in_z_with_full_sampling_matches_the_linear_closed_form(assets, tmp_path):
    # Linear mapping and synthesis: the path length along slerp(z0, z1, t) is |d/dt x(slerp)|^2 in the LPIPS embedding.
    G = TinyGenerator()
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache', G=G))
    eps = 1e-3
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=20, epsilon=eps, crop=False, batch_size=3, space='z', sampling='full')
    z, c = metric_utils.LatentSampler(opts, z_dim=4, c_dim=0)(range(20), num_latents=2)
    z0, z1 = z.chunk(2, dim=1)
    t = torch.stack([torch.rand([], generator=torch.Generator().manual_seed(i + (1 << 31))) for i in range(20)])[:, None]
    x = lambda tt: G.synthesis(G.mapping(perceptual_path_length.slerp(z0, z1, tt), c)) * 127.5
    vgg16 = tiny_detector.load_detector(assets.detector_dir, tiny_detector.VGG16_FILE)
    lengths = vgg16(x(t + eps) - x(t), resize_images=False, return_lpips=True).square().sum(dim=1).double().numpy() / eps ** 2
    assert 0 < t.min() and t.max() < 1 and t.std() > 0.1
    lo, hi = np.sort(lengths)[0], np.sort(lengths)[-1]
    assert ppl == pytest.approx(lengths[(lengths >= lo) & (lengths <= hi)].mean(), rel=1e-3)

def test_legacy_names_use_sg2a_settings(monkeypatch):
    calls = []
    monkeypatch.setattr(frechet_inception_distance, 'compute_fid', lambda opts, **kw: calls.append(('fid', dict(opts.dataset_kwargs), kw)) or 1.0)
    from metrics import kernel_inception_distance
    monkeypatch.setattr(kernel_inception_distance, 'compute_kid', lambda opts, **kw: calls.append(('kid', dict(opts.dataset_kwargs), kw)) or 1.0)
    monkeypatch.setattr(precision_recall, 'compute_pr', lambda opts, **kw: calls.append(('pr', dict(opts.dataset_kwargs), kw)) or (1.0, 1.0))
    monkeypatch.setattr(perceptual_path_length, 'compute_ppl', lambda opts, **kw: calls.append(('ppl', None, kw)) or 1.0)
    training_set = dict(class_name='training.dataset.ImageFolderDataset', path='x.zip', subset=100, subset_seed=1, xflip=True)
    for name in ('fid50k', 'kid50k', 'pr50k3', 'ppl_zfull', 'ppl_wfull', 'ppl_zend', 'ppl_wend', 'fid50k_full'):
        metric_main._metric_dict[name](metric_utils.MetricOptions(G=None, dataset_kwargs=dict(training_set)))
    fid, kid, pr = calls[:3]
    for _, kwargs, _ in (fid, kid, pr):
        assert 'subset' not in kwargs and kwargs['xflip'] is True  # The training set without its subset, flips kept.
    assert fid[2] == dict(max_real=50000, num_gen=50000)
    assert kid[2] == dict(max_real=50000, num_gen=50000, num_subsets=100, max_subset_size=1000)
    assert pr[2] == dict(max_real=50000, num_gen=50000, nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    ppl = [kw for kind, _, kw in calls[3:7]]
    assert [(k['space'], k['sampling'], k['crop'], k['num_samples'], k['epsilon']) for k in ppl] == [
        ('z', 'full', True, 50000, 1e-4), ('w', 'full', True, 50000, 1e-4), ('z', 'end', True, 50000, 1e-4), ('w', 'end', True, 50000, 1e-4)]
    assert calls[7][1]['xflip'] is False  # The '_full' protocols never flip.
