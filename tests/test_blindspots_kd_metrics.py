"""Blind spots found by planting bugs (tests/mutants/other-*.patch) in kd/, metrics/, torch_utils/ and the tools.

Each test below caught a planted slip that the rest of the fast suite let through. Every one compares with
an independent reference (a hand computation, a naive loop, PIL, scipy, open_clip itself) on fixtures where
the things a slip could swap differ: real != generated, rows != columns, GELU != QuickGELU, mean != std.
"""

import os

import numpy as np
import open_clip
import PIL.Image
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import generate
import projector
from kd.teacher import CLIPTeacher
from metrics import frechet_inception_distance, inception_score, kernel_inception_distance, metric_main, metric_utils
from metrics import perceptual_path_length, precision_recall
from test_metrics_pipeline import NUM_GEN, TinyGenerator, _opts_kwargs, _read_images, assets  # noqa: F401 (fixture)
from tiny_clip import register_tiny_clip, save_tiny_clip_weights
import tiny_detector
from torch_utils.ops import upfirdn2d
from torch_utils.spectral_norm import SNLinear
from training.networks_stylegan2 import Generator
from training.snapshot import save_snapshot

#----------------------------------------------------------------------------
# kd/teacher.py: what a pretrained tag says about its model must reach the teacher.

# A tag whose preprocessing differs from OpenAI's in every number (ImageNet's, as open_clip's CLIPA tags use),
# trained with QuickGELU like the openai tags.
TAG_MEAN = (0.485, 0.456, 0.406)
TAG_STD = (0.229, 0.224, 0.225)

@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('blindspot_clip')
    name = register_tiny_clip(tmp, name='kd-blindspot-clip')
    return name, save_tiny_clip_weights(name, str(tmp / 'w.pt'))

def test_teacher_builds_the_architecture_and_normalisation_of_its_pretrained_tag(tiny_clip, monkeypatch):
    # Why it matters: the default teacher (ViT-B-32, openai) is a QuickGELU model, and open_clip learns that
    # only from the tag, while the teacher hands create_model a file path.
    assert open_clip.get_pretrained_cfg('ViT-B-32', 'openai')['quick_gelu'] is True
    name, weights = tiny_clip
    original = open_clip.get_pretrained_cfg
    fake_tag = dict(url='', hf_hub='', mean=TAG_MEAN, std=TAG_STD, quick_gelu=True)
    monkeypatch.setattr(open_clip, 'get_pretrained_cfg',
        lambda model, tag: dict(fake_tag) if (model, tag) == (name, 'blindspot-tag') else original(model, tag))
    teacher = CLIPTeacher(model=name, pretrained='blindspot-tag', weights=weights, device='cpu', log=None)

    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean, std = np.array(TAG_MEAN).reshape(1, 3, 1, 1), np.array(TAG_STD).reshape(1, 3, 1, 1)
    expected_input = ((x.double().numpy() + 1) / 2 - mean) / std
    np.testing.assert_allclose(teacher.preprocess(x).numpy(), expected_input, rtol=1e-5, atol=1e-5)

    # The same weights in open_clip's QuickGELU model, fed the tag's normalisation, give the teacher's features.
    state = torch.load(weights)
    features = {}
    for quick in (True, False):
        reference = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick).eval()
        reference.load_state_dict(state)
        with torch.no_grad():
            features[quick] = reference.encode_image(torch.from_numpy(expected_input).float())
    got = teacher.encode_images(x)
    torch.testing.assert_close(got, features[True], rtol=1e-4, atol=1e-5)
    assert (features[True] - features[False]).abs().max() > 100 * (got - features[True]).abs().max() + 1e-6

def _pil_resize(x, size):
    """Per-channel PIL resize of float images (mode 'F'): PIL's bilinear filter widens with the shrink factor."""
    out = np.zeros(x.shape[:2] + (size, size))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            img = PIL.Image.fromarray(x[n, c].astype(np.float32), mode='F')
            out[n, c] = np.asarray(img.resize((size, size), PIL.Image.BILINEAR))
    return out

@pytest.mark.parametrize('src', [64, 48])
def test_teacher_shrinks_large_images_with_antialiasing(tiny_clip, src):
    # A 256 or 1024 px batch going to CLIP's 224 px: every input pixel must count, as in PIL's resize.
    name, weights = tiny_clip
    teacher = CLIPTeacher(model=name, pretrained=None, weights=weights, device='cpu', log=None, resize='bilinear',
        clip_norm='none')
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, src, src, generator=gen) * 2 - 1
    x[:, :, ::2] *= -1  # Stripes one pixel high: aliasing turns them into a different picture.
    expected = _pil_resize(x.numpy(), 32)
    np.testing.assert_allclose(teacher.preprocess(x).numpy(), expected, atol=1e-4)

#----------------------------------------------------------------------------
# metrics: real and generated features reach the formulas in their places.

def _generated_uint8(opts, num):
    z, c = metric_utils.LatentSampler(opts, z_dim=4, c_dim=0)(range(num))
    return (TinyGenerator()(z, c) * 127.5 + 128).clamp(0, 255).to(torch.uint8)

def _naive_kid(real, gen, num_subsets, seed=0):
    real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    d, m = real.shape[1], min(len(real), len(gen))
    rng = np.random.RandomState(seed)
    k = lambda a, b: (a @ b / d + 1) ** 3
    values = []
    for _ in range(num_subsets):
        x = gen[rng.choice(len(gen), m, replace=False)]  # Generated first, then real (StyleGAN2-ADA's order).
        y = real[rng.choice(len(real), m, replace=False)]
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        values.append(xx + yy - 2 * xy)
    return float(np.mean(values))

def _naive_coverage(manifold, probes, k):
    manifold, probes = np.asarray(manifold, np.float64), np.asarray(probes, np.float64)
    radii = np.sort(np.linalg.norm(manifold[:, None] - manifold[None], axis=2), axis=1)[:, k]
    dist = np.linalg.norm(probes[:, None] - manifold[None], axis=2)
    return float(np.mean((dist <= radii[None]).any(axis=1)))

def test_compute_kid_and_pr_feed_real_and_generated_features_in_place(assets, tmp_path):  # noqa: F811
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache'))
    reals, fakes = _read_images(assets.data), _generated_uint8(opts, NUM_GEN)
    assert len(reals) != len(fakes)  # 23 and 13: a swap changes which set the subsets are drawn from.

    inception = tiny_detector.load_detector(assets.detector_dir, tiny_detector.INCEPTION_FILE)
    real_f, gen_f = (inception(x, return_features=True).numpy() for x in (reals, fakes))
    kid = kernel_inception_distance.compute_kid(opts, max_real=None, num_gen=NUM_GEN, num_subsets=3, max_subset_size=1000)
    expected = _naive_kid(real_f, gen_f, num_subsets=3)
    assert kid == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert abs(_naive_kid(gen_f, real_f, num_subsets=3) - expected) > 1e-3 * abs(expected)  # The fixture tells them apart.

    vgg = tiny_detector.load_detector(assets.detector_dir, tiny_detector.VGG16_FILE)
    real_v, gen_v = (vgg(x, return_features=True).numpy() for x in (reals, fakes))
    precision, recall = precision_recall.compute_pr(opts, max_real=None, num_gen=NUM_GEN, nhood_size=3,
        row_batch_size=5, col_batch_size=4)
    expected = (_naive_coverage(real_v, gen_v, 3), _naive_coverage(gen_v, real_v, 3))
    assert expected[0] != expected[1]
    assert (precision, recall) == pytest.approx(expected)

def test_pr_ball_includes_its_boundary():
    # k = 1 radii of the reals 0, 1, 2, 3 are all 1: the probe 4 lies exactly on the ball around 3.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    gen = torch.tensor([[4.0], [1.0], [6.0], [6.5]])
    precision, _ = precision_recall.precision_recall_from_features(real, gen, nhood_size=1)
    assert precision == pytest.approx(2 / 4)
    # Memorised data: four copies of each real image make every k = 3 radius 0; the copies are still inside.
    real = torch.tensor([[0.0, 0.0]] * 4 + [[5.0, 1.0]] * 4)
    gen = torch.tensor([[0.0, 0.0], [5.0, 1.0], [2.0, 0.0], [9.0, 9.0]])
    precision, recall = precision_recall.precision_recall_from_features(real, gen, nhood_size=3, row_batch_size=3,
        col_batch_size=5)
    assert precision == pytest.approx(_naive_coverage(real.numpy(), gen.numpy(), 3)) == pytest.approx(2 / 4)
    assert recall == pytest.approx(_naive_coverage(gen.numpy(), real.numpy(), 3))

def _naive_is(probs, num_splits):
    scores = []
    n = len(probs)
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        p_y = part.mean(axis=0)
        scores.append(np.exp(np.mean([sum(p[j] * np.log(p[j] / p_y[j]) for j in range(len(p)) if p[j] > 0) for p in part])))
    return np.mean(scores), np.std(scores)

def test_compute_is_uses_softmax_without_output_bias(assets, tmp_path):  # noqa: F811
    opts = metric_utils.MetricOptions(**_opts_kwargs(assets, tmp_path / 'cache'))
    inception = tiny_detector.load_detector(assets.detector_dir, tiny_detector.INCEPTION_FILE)
    fakes = _generated_uint8(opts, NUM_GEN)
    features = inception(fakes, return_features=True).double().numpy()
    weight = inception.head_weight.double().numpy()
    logits = features @ weight  # The TF Inception Score's softmax leaves the output bias out.
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    mean, std = inception_score.compute_is(opts, num_gen=NUM_GEN, num_splits=3)
    assert (mean, std) == pytest.approx(_naive_is(probs, 3), rel=1e-4)
    logits_b = logits + inception.head_bias.double().numpy()
    probs_b = np.exp(logits_b - logits_b.max(axis=1, keepdims=True))
    probs_b /= probs_b.sum(axis=1, keepdims=True)
    assert abs(_naive_is(probs_b, 3)[0] - mean) > 1e-3 * mean  # The bias would show.

def test_ppl_vgg_input_crop_and_downsampling():
    gen = torch.Generator().manual_seed(2)
    # StyleGAN2-ADA's face crop: rows 3/8 to 7/8, columns 2/8 to 6/8 of the image.
    img = torch.rand(2, 3, 64, 48, generator=gen) * 2 - 1
    got = perceptual_path_length._to_vgg_input(img, crop=True)
    np.testing.assert_allclose(got.numpy(), (img[:, :, 24:56, 16:48].numpy() + 1) * 127.5, rtol=1e-6, atol=1e-4)
    assert perceptual_path_length._to_vgg_input(img, crop=False).shape == (2, 3, 64, 48)
    # Larger than 256: box-averaged down to 256 (blocks of 2x2 at 512, 4x4 at 1024); gray repeated to RGB.
    for res in (512, 1024):
        img = torch.rand(1, 1, res, res, generator=gen) * 2 - 1
        f = res // 256
        block = img.double().numpy().reshape(1, 1, 256, f, 256, f).mean(axis=(3, 5))
        got = perceptual_path_length._to_vgg_input(img, crop=False)
        assert got.shape == (1, 3, 256, 256)
        np.testing.assert_allclose(got.double().numpy(), np.repeat((block + 1) * 127.5, 3, axis=1), rtol=1e-5, atol=1e-3)

@pytest.mark.parametrize('res', [256, 512, 1024])
def test_ppl_face_crop_is_downsampled_by_the_generators_factor(res):
    # StyleGAN2-ADA (metrics/perceptual_path_length.py): crop first, then factor = G.img_resolution // 256, so the
    # cropped half-size region reaches VGG at 128x128 for every resolution; a factor taken from the cropped
    # image gave 256x256 at 512 and 1024.
    img = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(res)) * 2 - 1
    f = max(res // 256, 1)
    crop = img[:, :, res * 3 // 8 : res * 7 // 8, res * 2 // 8 : res * 6 // 8].double().numpy()
    block = crop.reshape(1, 3, crop.shape[2] // f, f, crop.shape[3] // f, f).mean(axis=(3, 5))
    got = perceptual_path_length._to_vgg_input(img, crop=True)
    assert got.shape == (1, 3, 128, 128)
    np.testing.assert_allclose(got.double().numpy(), (block + 1) * 127.5, rtol=1e-5, atol=1e-3)

def test_full_protocols_use_the_published_sample_counts(monkeypatch):
    # StyleGAN2-ADA's metric_main.py for the NVIDIA names; 10k / 5k generated images for the project's own.
    calls = {}
    def spy(kind, result):
        return lambda opts, **kwargs: calls.setdefault(kind, []).append(kwargs) or result
    monkeypatch.setattr(frechet_inception_distance, 'compute_fid', spy('fid', 1.0))
    monkeypatch.setattr(kernel_inception_distance, 'compute_kid', spy('kid', 1.0))
    monkeypatch.setattr(precision_recall, 'compute_pr', spy('pr', (1.0, 1.0)))
    monkeypatch.setattr(inception_score, 'compute_is', spy('is', (1.0, 0.0)))
    monkeypatch.setattr(perceptual_path_length, 'compute_ppl', spy('ppl', 1.0))
    for name in ('fid50k_full', 'fid10k_full', 'fid5k_full', 'kid50k_full', 'pr50k3_full', 'is50k', 'is10k', 'ppl2_wend'):
        metric_main._metric_dict[name](metric_utils.MetricOptions(G=None, dataset_kwargs=dict(path='x.zip', xflip=True)))
    assert calls['fid'] == [dict(max_real=None, num_gen=50000), dict(max_real=None, num_gen=10000),
        dict(max_real=None, num_gen=5000)]
    assert calls['kid'] == [dict(max_real=1000000, num_gen=50000, num_subsets=100, max_subset_size=1000)]
    assert calls['pr'] == [dict(max_real=200000, num_gen=50000, nhood_size=3, row_batch_size=10000, col_batch_size=10000)]
    assert calls['is'] == [dict(num_gen=50000, num_splits=10), dict(num_gen=10000, num_splits=10)]
    (ppl,) = calls['ppl']
    assert dict(ppl, space=ppl.get('space', 'w'), sampling=ppl.get('sampling', 'end')) == dict(num_samples=50000,
        epsilon=1e-4, crop=False, batch_size=2, space='w', sampling='end')

#----------------------------------------------------------------------------
# metrics/metric_utils.py: gathering and caching.

def test_feature_stats_gathers_ranks_in_item_order(monkeypatch):
    # 7 items on 3 processes: rank r computes items r, r + 3, r + 6; items 7 and 8 are padding.
    num_items, num_gpus = 7, 3
    opts = [metric_utils.MetricOptions(num_gpus=num_gpus, rank=r, device='cpu') for r in range(num_gpus)]
    items = [metric_utils.rank_items(num_items, o) for o in opts]
    assert items == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    feature = lambda i: [float(i), float(i) ** 2] if i < num_items else [1e3, -1e3]  # Padding stands out.
    batches = [torch.tensor([feature(i) for i in its], dtype=torch.float64) for its in items]
    def fake_all_gather(gathered, x):
        assert torch.equal(x, batches[0])  # Called by rank 0; the others' rows are what they computed.
        for dst, src in zip(gathered, batches):
            dst.copy_(src)
    monkeypatch.setattr(torch.distributed, 'all_gather', fake_all_gather)
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=num_items)
    stats.append_torch(batches[0], num_gpus=num_gpus, rank=0)
    expected = np.array([feature(i) for i in range(num_items)])
    np.testing.assert_array_equal(stats.get_all(), expected.astype(np.float32))
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, expected.mean(axis=0))
    np.testing.assert_allclose(cov, np.cov(expected, rowvar=False, bias=True))

def test_stats_cache_key_of_a_folder_dataset_follows_file_changes(tmp_path):
    folder = tmp_path / 'data'
    folder.mkdir()
    (folder / 'a.png').write_bytes(b'A' * 100)
    (folder / 'b.png').write_bytes(b'B' * 100)
    key = lambda: metric_utils.stats_cache_key(dict(class_name='training.dataset.ImageFolderDataset', path=str(folder)),
        metric_utils.INCEPTION_URL, 'md5', dict(return_features=True), dict(max_items=None))
    before = key()
    assert key() == before
    st = os.stat(folder / 'b.png')
    (folder / 'b.png').write_bytes(b'C' * 100)  # Another image of the same size (uncompressed PNGs of one shape).
    os.utime(folder / 'b.png', ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert key() != before

#----------------------------------------------------------------------------
# torch_utils.

def test_persistent_init_kwargs_are_a_snapshot_of_the_call():
    mapping_kwargs = dict(num_layers=2)
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, channel_base=16, channel_max=4,
        mapping_kwargs=mapping_kwargs)
    mapping_kwargs['num_layers'] = 8  # The caller reuses its options dict afterwards.
    assert G.init_kwargs.mapping_kwargs == dict(num_layers=2)
    assert G.mapping.num_layers == 2

def test_spectral_norm_gradient_includes_sigma():
    # d/dW of f(W / sigma(W)) with sigma = u^T W v, u and v from one power iteration held constant (Miyato et al.).
    torch.manual_seed(3)
    layer = SNLinear(4, 3).double().train()
    u0 = layer.sn_u.clone()
    x = torch.randn(5, 4, dtype=torch.float64)
    g = torch.randn(5, 3, dtype=torch.float64)
    (layer(x) * g).sum().backward()

    w = layer.weight.detach().clone().requires_grad_(True)
    with torch.no_grad():
        v = F.normalize(w.t() @ u0, dim=0)
        u = F.normalize(w @ v, dim=0)
    sigma = u @ w @ v
    (F.linear(x, w / sigma, layer.bias.detach()) * g).sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad)
    np.testing.assert_allclose(float(layer.sn_sigma), np.linalg.svd(w.detach().numpy(), compute_uv=False)[0], rtol=0.5)

@pytest.mark.parametrize('taps', [[1, 3, 3, 1], [1, 2, 3, 4], [1, 2, 5]])
def test_filter2d_matches_scipy_convolution(taps):
    # StyleGAN2-ADA's filter2d: the true convolution, cropped to the input size with the filter's centre at (len - 1) // 2.
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    f2 = np.outer(taps, taps[::-1]).astype(np.float64)  # Asymmetric in x and y.
    f = torch.from_numpy(f2 / f2.sum())
    got = upfirdn2d.filter2d(x, f, impl='ref').numpy()
    c = (len(taps) - 1) // 2
    expect = np.stack([[scipy.signal.convolve2d(ch, f.numpy())[c:c + 7, c:c + 9] for ch in img] for img in x.numpy()])
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12)

#----------------------------------------------------------------------------
# projector.py and generate.py

def test_projector_w_noise_is_scaled_by_the_spread_of_w(tmp_path):
    # Step 0 feeds G w_avg plus N(0, 1) noise times 0.05 x sigma_W, sigma_W = sqrt(E ||w - w_avg||^2) (StyleGAN2-ADA).
    torch.manual_seed(6)
    G = Generator(z_dim=16, c_dim=0, w_dim=512, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=2),
        channel_base=64, channel_max=8, use_noise=False).eval()
    vgg16 = tiny_detector.load_detector(tiny_detector.save_tiny_detectors(str(tmp_path / 'det')), tiny_detector.VGG16_FILE)
    seen = []
    G.synthesis.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    target = torch.full([3, 8, 8], 128, dtype=torch.uint8)
    projector.project(G, target, vgg16, num_steps=1, w_avg_samples=2000, seed=3, log=None)
    z = torch.from_numpy(np.random.RandomState(3).randn(2000, 16))
    with torch.no_grad():
        w = G.mapping(z.float(), torch.zeros([2000, 0]))[:, 0].double().numpy()
    w_avg = w.mean(axis=0)
    sigma = np.sqrt(((w - w_avg) ** 2).sum(axis=1).mean())
    assert not 0.5 < sigma < 2  # Variance and spread differ here.
    noise = seen[0][0].double().numpy() - w_avg  # [num_ws, w_dim]: one draw, repeated over the ws.
    assert np.allclose(noise, noise[0], atol=1e-5)
    assert noise[0].std() == pytest.approx(0.05 * sigma, rel=0.15)

def test_generate_applies_truncation_psi(tmp_path):
    torch.manual_seed(5)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
        channel_base=64, channel_max=8).eval().requires_grad_(False)
    G.mapping.w_avg.copy_(torch.randn(8) * 2)  # A trained G's mean w is far from 0.
    pkl = str(tmp_path / 'G.pkl')
    save_snapshot(pkl, dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    result = CliRunner().invoke(generate.main, ['--network', pkl, '--seeds=3', '--trunc=0.5', '--outdir', str(tmp_path / 'out'),
        '--device=cpu'])
    assert result.exit_code == 0, result.output
    got = np.asarray(PIL.Image.open(tmp_path / 'out' / 'seed0003.png')).astype(np.int64)

    z = torch.from_numpy(np.random.RandomState(3).randn(1, 8)).float()
    with torch.no_grad():
        ws = G.mapping(z, None)
        ws_trunc = G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg)  # Truncation by hand: halfway to the mean w.
        to_uint8 = lambda img: (img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy().astype(np.int64)
        expected = to_uint8(G.synthesis(ws_trunc, noise_mode='const'))
        untruncated = to_uint8(G.synthesis(ws, noise_mode='const'))
    assert np.abs(got - expected).max() <= 1
    assert np.abs(untruncated - expected).max() > 10

#----------------------------------------------------------------------------
