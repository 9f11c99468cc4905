"""calc_metrics.py on a folder or zip of generated images (--images), FID reference statistics in EDM's npz layout
(--save-ref, --ref), on CPU with the tiny stand-in detectors."""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import generate
from metrics import frechet_inception_distance, inception_score, kernel_inception_distance, metric_main, metric_utils
from metrics import perceptual_path_length, precision_recall
from training import snapshot
from test_metrics_pipeline import NUM_GEN, RES, TinyGenerator
import tiny_detector

NUM_REF = 23

#----------------------------------------------------------------------------
# Test-only metrics: the protocols' code paths with few images.


def fid_tiny_full(opts):
    opts.use_full_dataset()
    return dict(fid_tiny_full=frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=NUM_GEN))


def kid_tiny(opts):
    opts.use_full_dataset()
    return dict(kid_tiny=kernel_inception_distance.compute_kid(opts, max_real=None, num_gen=NUM_GEN, num_subsets=10,
        max_subset_size=NUM_GEN))


def is_tiny(opts):
    opts.use_full_dataset()
    mean, std = inception_score.compute_is(opts, num_gen=NUM_GEN, num_splits=2)
    return dict(is_tiny_mean=mean, is_tiny_std=std)


def pr_tiny(opts):
    opts.use_full_dataset()
    precision, recall = precision_recall.compute_pr(opts, max_real=None, num_gen=NUM_GEN, nhood_size=3,
        row_batch_size=5, col_batch_size=4)
    return dict(pr_tiny_precision=precision, pr_tiny_recall=recall)


@pytest.fixture
def tiny_metrics(monkeypatch):
    monkeypatch.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
    metric_main.register_metric(fid_tiny_full, num_gen=NUM_GEN, takes_ref_stats=True)
    metric_main.register_metric(kid_tiny, num_gen=NUM_GEN)
    metric_main.register_metric(is_tiny, num_gen=NUM_GEN, needs_reference=False)
    metric_main.register_metric(pr_tiny, detectors=[metric_utils.VGG16_URL], num_gen=NUM_GEN)

#----------------------------------------------------------------------------
# Image sets.


def _random_images(num, seed, res=RES, offset=0):
    rng = np.random.RandomState(seed)
    return np.clip(rng.randn(num, res, res, 3) * 50 + 100 + offset, 0, 255).astype(np.uint8)


def _write_folder(path, images):
    os.makedirs(path)
    for i, img in enumerate(images):
        PIL.Image.fromarray(img).save(os.path.join(path, f'img{i:05d}.png'))
    return str(path)


def _write_zip(path, images):
    with zipfile.ZipFile(path, 'w') as zf:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format='png')
            zf.writestr(f'sub/img{i:05d}.png', buf.getvalue())
    return str(path)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'dnnlib-cache'))  # Never the user's cache.
    return dict(detectors=tiny_detector.save_tiny_detectors(str(tmp_path / 'detectors')),
        ref=_write_zip(tmp_path / 'ref.zip', _random_images(NUM_REF, seed=0)),
        gen=_write_folder(tmp_path / 'gen', _random_images(NUM_GEN, seed=1, offset=30)))


def _run(env, *args):
    args = [str(a) for a in args] + [f'--detector-dir={env["detectors"]}', '--device=cpu', '--verbose=false']
    return CliRunner().invoke(calc_metrics.main, args)


def _results(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line)['results'] for line in result.output.splitlines() if line.startswith('{')]

#----------------------------------------------------------------------------


def test_fid_of_two_folders_equals_fid_through_their_npz_files(env, tmp_path, tiny_metrics):
    direct = _results(_run(env, '--images', env['gen'], '--data', env['ref'], '--metrics=fid_tiny_full'))[0]['fid_tiny_full']
    assert direct > 1

    ref_npz, gen_npz = tmp_path / 'refs' / 'ref.npz', tmp_path / 'gen.npz'
    for data, npz in ((env['ref'], ref_npz), (env['gen'], gen_npz)):
        result = _run(env, '--data', data, '--save-ref', npz)
        assert result.exit_code == 0 and os.path.isfile(npz), result.output
    through_ref = _results(_run(env, '--images', env['gen'], '--ref', ref_npz, '--metrics=fid_tiny_full'))[0]['fid_tiny_full']
    assert through_ref == pytest.approx(direct, rel=1e-12)
    with np.load(ref_npz) as ref, np.load(gen_npz) as gen:
        both = frechet_inception_distance.fid_from_mean_cov(gen['mu'], gen['sigma'], ref['mu'], ref['sigma'])
    assert both == pytest.approx(direct, rel=1e-9)


def test_npz_has_edm_layout_and_the_reference_statistics(env, tmp_path):
    npz = tmp_path / 'ref.npz'
    result = _run(env, '--data', env['ref'], '--save-ref', npz)
    assert result.exit_code == 0 and f'of {NUM_REF} images' in result.output, result.output
    with np.load(npz, allow_pickle=False) as data:
        assert sorted(data.files) == ['mu', 'sigma']
        mu, sigma = data['mu'], data['sigma']
    num_features = tiny_detector.TinyInception().proj.shape[1]  # 2048 with the real detector.
    assert mu.dtype == np.float64 and mu.shape == (num_features,)
    assert sigma.dtype == np.float64 and sigma.shape == (num_features, num_features)

    # The detector's features of the zip's images, read with PIL alone: mean and 1/N covariance (our FID's convention).
    with zipfile.ZipFile(env['ref']) as zf:
        images = np.stack([np.array(PIL.Image.open(io.BytesIO(zf.read(n)))) for n in sorted(zf.namelist())])
    detector = tiny_detector.load_detector(env['detectors'], tiny_detector.INCEPTION_FILE)
    features = detector(torch.from_numpy(images).permute(0, 3, 1, 2), return_features=True).double().numpy()
    np.testing.assert_allclose(mu, features.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False, bias=True), rtol=1e-4, atol=1e-7)

    # What EDM's fid.py ref writes (np.savez of float64 mu and sigma) is read back as the same statistics.
    edm_npz = tmp_path / 'edm.npz'
    np.savez(edm_npz, mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False, bias=True))
    loaded = metric_utils.load_ref_stats(str(edm_npz))
    np.testing.assert_allclose(loaded[0], mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loaded[1], sigma, rtol=1e-4, atol=1e-7)


def _write_network_images(G, folder, num):
    """The images the metrics generate (item i: latent seeded by i), written as generate.py writes images."""
    os.makedirs(folder)
    z, c = metric_utils.LatentSampler(metric_utils.MetricOptions(device='cpu'), z_dim=G.z_dim, c_dim=G.c_dim)(range(num))
    with torch.no_grad():
        images = generate.to_uint8(G(z, c))
    for i, img in enumerate(images):
        generate.save_png(generate.to_pil(img), os.path.join(folder, f'seed{i:04d}.png'))
    return str(folder)


def test_network_equals_its_images_written_as_png(env, tmp_path, tiny_metrics):
    G = TinyGenerator()
    pkl = str(tmp_path / 'network-snapshot-000000.pkl')
    snapshot.save_snapshot(pkl, dict(G=None, D=None, G_ema=G))
    folder = _write_network_images(G, tmp_path / 'net-images', NUM_GEN)
    metrics = '--metrics=fid_tiny_full,kid_tiny,is_tiny,pr_tiny'
    from_network = _results(_run(env, '--network', pkl, '--data', env['ref'], metrics))
    from_images = _results(_run(env, '--images', folder, '--data', env['ref'], metrics))
    assert len(from_network) == len(from_images) == 4
    for net_result, img_result in zip(from_network, from_images):
        assert net_result.keys() == img_result.keys()
        for key, value in net_result.items():
            assert img_result[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert from_network[0]['fid_tiny_full'] > 1 and 0 < from_network[3]['pr_tiny_precision'] <= 1


def test_too_few_images_is_an_error_and_more_are_chosen_as_edm_does(env, tmp_path, tiny_metrics):
    few = _write_folder(tmp_path / 'few', _random_images(NUM_GEN - 1, seed=2))
    result = _run(env, '--images', few, '--data', env['ref'], '--metrics=fid_tiny_full')
    _assert_clean_error(result, f'holds {NUM_GEN - 1} images, but fid_tiny_full uses {NUM_GEN} generated images')

    # More images than the metric uses: EDM's --num choice, RandomState(0).shuffle of the indices, first n, sorted.
    many = _random_images(NUM_REF, seed=3)
    many_folder = _write_folder(tmp_path / 'many', many)
    order = np.arange(NUM_REF)
    np.random.RandomState(0).shuffle(order)
    chosen = np.sort(order[:NUM_GEN])
    dataset = metric_utils.open_image_set(metric_utils.image_set_kwargs(many_folder), num_images=NUM_GEN)
    assert len(dataset) == NUM_GEN
    assert np.array_equal(np.stack([dataset[i][0] for i in range(NUM_GEN)]), many[chosen].transpose(0, 3, 1, 2))
    subset_folder = _write_folder(tmp_path / 'subset', many[chosen])
    fid = lambda path: _results(_run(env, '--images', path, '--data', env['ref'], '--metrics=fid_tiny_full'))[0]['fid_tiny_full']
    assert fid(many_folder) == pytest.approx(fid(subset_folder), rel=1e-12)
    with pytest.raises(ValueError, match=f'holds {NUM_GEN - 1} images'):
        metric_utils.open_image_set(metric_utils.image_set_kwargs(few), num_images=NUM_GEN)

#----------------------------------------------------------------------------
# Bad input: one line, a non-zero exit, no traceback.


def _assert_clean_error(result, message):
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert 'Traceback' not in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith('Error:')]) == 1, result.output


def _bad_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize('case', ['missing folder', 'missing zip', 'no images', 'network and images', 'neither',
    'ref with kid', 'ref with is', 'ppl on images', 'no reference', 'ref and data', 'npz without sigma',
    'npz of another detector', 'other size', 'save-ref without data', 'save-ref with metrics', 'ref with network'])
def test_bad_input_gives_one_clear_line(env, tmp_path, tiny_metrics, case):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    wide = _bad_npz(tmp_path / 'wide.npz', mu=np.zeros(2048), sigma=np.eye(2048))
    pkl = str(tmp_path / 'net.pkl')
    snapshot.save_snapshot(pkl, dict(G=None, D=None, G_ema=TinyGenerator()))
    good_npz = tmp_path / 'good.npz'
    cases = {
        'missing folder': (['--images', tmp_path / 'missing', '--data', env['ref']], '--images: dataset path must be'),
        'missing zip': (['--images', tmp_path / 'missing.zip', '--data', env['ref']], 'missing.zip'),
        'no images': (['--images', empty, '--data', env['ref']], '--images: no images'),
        'network and images': (['--network', pkl, '--images', env['gen']], 'mutually exclusive'),
        'neither': (['--data', env['ref']], 'give --network'),
        'ref with kid': (['--images', env['gen'], '--ref', good_npz, '--metrics=fid_tiny_full,kid_tiny'],
            'which kid_tiny cannot use'),
        'ref with is': (['--images', env['gen'], '--ref', good_npz, '--metrics=is_tiny'], 'which is_tiny cannot use'),
        'ppl on images': (['--images', env['gen'], '--data', env['ref'], '--metrics=ppl2_wend'], 'use --network'),
        'no reference': (['--images', env['gen'], '--metrics=fid_tiny_full'], 'pass --data'),
        'ref and data': (['--images', env['gen'], '--ref', good_npz, '--data', env['ref'], '--metrics=fid_tiny_full'],
            'pass one'),
        'npz without sigma': (['--images', env['gen'], '--ref', _bad_npz(tmp_path / 'mu-only.npz', mu=np.zeros(8)),
            '--metrics=fid_tiny_full'], '"mu" and "sigma"'),
        'npz of another detector': (['--images', env['gen'], '--ref', wide, '--metrics=fid_tiny_full'], 'another detector'),
        'other size': (['--images', _write_folder(tmp_path / 'big', _random_images(NUM_GEN, seed=4, res=2 * RES)),
            '--data', env['ref'], '--metrics=fid_tiny_full'], f'are {2 * RES}x{2 * RES}, but the reference dataset'),
        'save-ref without data': (['--save-ref', good_npz], '--save-ref needs --data'),
        'save-ref with metrics': (['--data', env['ref'], '--save-ref', good_npz, '--metrics=fid_tiny_full'],
            'computes no metrics'),
        'ref with network': (['--network', pkl, '--ref', good_npz, '--metrics=fid_tiny_full'], '--ref works with --images'),
    }
    args, message = cases[case]
    if 'good.npz' in ' '.join(map(str, args)) and not case.startswith('save-ref'):
        assert _run(env, '--data', env['ref'], '--save-ref', good_npz).exit_code == 0
    _assert_clean_error(_run(env, *args), message)
    assert not (case.startswith('save-ref') and good_npz.exists())

#----------------------------------------------------------------------------
# The registry's facts that calc_metrics.py checks up front.


def test_registry_counts_are_the_counts_the_metrics_use(monkeypatch):
    used = dict()
    def spy(kind):
        def fn(opts, **kwargs):
            used[kind] = kwargs.get('num_gen', kwargs.get('num_samples'))
            return (1.0, 1.0) if kind in ('pr', 'is') else 1.0
        return fn
    monkeypatch.setattr(frechet_inception_distance, 'compute_fid', spy('fid'))
    monkeypatch.setattr(kernel_inception_distance, 'compute_kid', spy('kid'))
    monkeypatch.setattr(precision_recall, 'compute_pr', spy('pr'))
    monkeypatch.setattr(inception_score, 'compute_is', spy('is'))
    monkeypatch.setattr(perceptual_path_length, 'compute_ppl', spy('ppl'))
    for name in metric_main.list_valid_metrics():
        used.clear()
        metric_main._metric_dict[name](metric_utils.MetricOptions(G=None, dataset_kwargs=dict(path='x.zip')))
        (kind, count), = used.items()
        info = metric_main.metric_info(name)
        assert info.needs_generator == (kind == 'ppl'), name
        assert info.needs_reference == (kind != 'is'), name
        assert info.takes_ref_stats == (kind == 'fid' and name.endswith('_full')), name
        assert info.num_gen == (None if kind == 'ppl' else count), name

#----------------------------------------------------------------------------
