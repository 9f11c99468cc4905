"""The memorisation check: metrics/memorisation.py on plain tensors with a tiny LPIPS-like network, and
memorisation.py end to end on a tiny snapshot with the stand-in vgg16.pt of tests/tiny_detector.py."""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import scipy.spatial.distance
import torch
from click.testing import CliRunner

import dnnlib
import memorisation
from metrics import memorisation as memo
from metrics import metric_utils
from training.dataset import ImageFolderDataset
from training.networks_stylegan2 import Generator
from training.snapshot import save_snapshot
import tiny_detector

RES = 16

#----------------------------------------------------------------------------
# Tiny stand-ins.


class TinyLPIPS(torch.nn.Module):
    """LPIPS in miniature, with the call interface of NVIDIA's vgg16.pt: one conv layer, features unit-normalised
    over channels, flattened and scaled by 1/sqrt(H*W), so a squared distance is a spatial mean as in LPIPS."""

    def __init__(self, channels=8, seed=0):
        super().__init__()
        self.register_buffer('weight', torch.randn([channels, 3, 3, 3], generator=torch.Generator().manual_seed(seed)))
        self.calls = []

    def forward(self, img, resize_images=True, return_lpips=False):
        self.calls.append(dict(dtype=img.dtype, shape=list(img.shape), max=float(img.max()), resize_images=resize_images,
            return_lpips=return_lpips))
        x = torch.nn.functional.avg_pool2d(img / 127.5 - 1, 2)
        f = torch.nn.functional.conv2d(x, self.weight, padding=1)
        f = f / (f.norm(dim=1, keepdim=True) + 1e-10)
        return f.flatten(1) / np.sqrt(f.shape[2] * f.shape[3])


def family(num, res=RES, seed=0):
    """Images of one kind (as 100 photos of one face are): a common smooth pattern plus a smooth variation each."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand([1, 3, 4, 4], generator=gen) * 80 + 150
    variation = (torch.rand([num, 3, 4, 4], generator=gen) - 0.5) * 120
    x = torch.nn.functional.interpolate(base + variation, size=[res, res], mode='bilinear', align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def noise_like(images, seed=1):
    return torch.randint(0, 256, images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def write_zip(path, images):
    with zipfile.ZipFile(path, 'w') as zf:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format='PNG')
            zf.writestr(f'00000/img{i:08d}.png', buf.getvalue())
    return str(path)


def write_folder(path, images):
    os.makedirs(path)
    for i, img in enumerate(images):
        PIL.Image.fromarray(img.permute(1, 2, 0).numpy()).save(os.path.join(path, f'{i:03d}.png'))
    return str(path)

#----------------------------------------------------------------------------
# The library.


@pytest.fixture(scope='module')
def images():
    every = family(48)
    return dnnlib.EasyDict(train=every[:24], fresh=every[24:])


def test_copies_score_one_noise_zero_and_new_samples_about_q(images):
    train, vgg = images.train, TinyLPIPS()
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    check = lambda generated, q=0.1: memo.check_memorisation(vgg, generated, train, k=3, quantile=q, batch_size=5)
    copies = check(train[order])
    assert copies.score == 1 and copies.indices[:, 0].tolist() == order.tolist()
    assert copies.distances[:, 0].max() < 1e-5 and copies.median_nearest < 1e-5
    shifted = check(torch.roll(train, shifts=1, dims=3))  # One pixel to the right.
    noisy = check((train.int() + torch.randint(-3, 4, train.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 255).to(torch.uint8))
    for near_copies in (shifted, noisy):
        assert near_copies.score == 1 and near_copies.indices[:, 0].tolist() == list(range(len(train)))
    assert check(noise_like(train)).score == 0
    # New images of the same kind land near q: the score's baseline (exchangeability), here with 24 samples.
    assert check(images.fresh, q=0.1).score <= 0.25
    assert 0.25 <= check(images.fresh, q=0.5).score <= 0.75
    # The network saw float [0, 255] images, 3 channels, no resizing, and was asked for the LPIPS embedding.
    assert all(c['dtype'] == torch.float32 and c['shape'][1] == 3 and c['max'] > 1 and c['resize_images'] is False
        and c['return_lpips'] is True for c in vgg.calls)


def test_distances_and_neighbours_match_brute_force():
    rng = np.random.RandomState(0)
    query, reference = rng.randn(7, 5) + 0.5, rng.randn(11, 5) + 0.5
    dist = memo.squared_distances(torch.tensor(query, dtype=torch.float32), torch.tensor(reference, dtype=torch.float32))
    want = scipy.spatial.distance.cdist(query, reference, 'sqeuclidean')
    np.testing.assert_allclose(dist.numpy(), want, rtol=1e-5, atol=1e-5)
    values, indices = memo.nearest_neighbours(torch.from_numpy(want), k=3)
    np.testing.assert_array_equal(indices.numpy(), np.argsort(want, axis=1, kind='stable')[:, :3])
    np.testing.assert_allclose(values.numpy(), np.sort(want, axis=1)[:, :3])

    # An image and its mirror share a group: the nearest OTHER image is searched outside the group.
    within = scipy.spatial.distance.cdist(reference, reference, 'sqeuclidean')
    groups = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]
    got = memo.nearest_other_distances(torch.from_numpy(within), groups).numpy()
    want_other = [min(within[i, j] for j in range(11) if groups[j] != groups[i]) for i in range(11)]
    np.testing.assert_allclose(got, want_other)
    with pytest.raises(ValueError, match='two different training images'):
        memo.nearest_other_distances(torch.zeros([2, 2]), [0, 0])


def test_score_by_hand():
    # Training nearest-other distances sorted: 0.1 0.2 0.3 0.4 0.6; q = 0.4 -> the ceil(2.0) = 2nd smallest, 0.2.
    result = memo.memorisation_score([0.1, 0.5, 0.2, 0.9], [0.3, 0.2, 0.4, 0.1, 0.6], quantile=0.4)
    assert result.threshold == 0.2 and result.score == 0.5  # 0.1 and 0.2 are <= 0.2.
    assert result.median_nearest == pytest.approx(0.35) and result.median_train_nearest_other == pytest.approx(0.3)
    assert memo.score_threshold([0.3, 0.2, 0.4, 0.1, 0.6], quantile=0.41) == 0.3  # ceil(2.05) = 3rd.
    assert memo.score_threshold([0.3, 0.2, 0.4, 0.1, 0.6], quantile=0.01) == 0.1
    line = memo.score_definition(result)
    assert line.startswith('memorisation score 0.500 = share of the 4 generated images') and '2nd smallest of the 5' in line
    assert '\n' not in line
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match='quantile'):
            memo.score_threshold([0.1, 0.2], quantile=bad)


def test_mirror_finds_flipped_copies_and_ignores_an_images_own_mirror(images):
    train = images.train.clone()
    train[5] = torch.cat([train[5, :, :, :RES // 2], train[5, :, :, :RES // 2].flip(2)], dim=2)  # Symmetric image.
    flipped = train[[3, 7]].flip(3)
    plain = memo.check_memorisation(TinyLPIPS(), flipped, train, k=2)
    assert plain.distances[:, 0].min() > 1e-3  # A flipped copy is no copy without the mirrored references.
    mirrored = memo.check_memorisation(TinyLPIPS(), flipped, train, k=2, mirror=True)
    assert mirrored.indices[:, 0].tolist() == [len(train) + 3, len(train) + 7] and mirrored.distances[:, 0].max() < 1e-5
    assert mirrored.train_nearest_other.shape == (len(train),) and mirrored.train_nearest_other[5] > 1e-3
    assert mirrored.num_near_duplicates == 0
    dup = train.clone()
    dup[1] = dup[0]
    dup[1, 0, 3, 3] += 1  # A near-duplicate: one pixel differs by one level.
    assert memo.check_memorisation(TinyLPIPS(), flipped, dup, k=2).num_near_duplicates == 2


def test_lpips_input_pools_large_images_and_repeats_gray():
    gray = torch.randint(0, 256, [2, 1, 512, 512], dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = memo.lpips_input(gray)
    assert x.shape == (2, 3, 256, 256) and x.dtype == torch.float32
    np.testing.assert_allclose(x[1, 2, 10, 20].item(), gray[1, 0, 20:22, 40:42].double().mean().item(), rtol=1e-6)
    small = torch.randint(0, 256, [1, 3, 300, 300], dtype=torch.uint8)
    assert torch.equal(memo.lpips_input(small), small.float())  # Below 512: fed as it is.
    with pytest.raises(ValueError, match='uint8'):
        memo.lpips_input(small.float())


def test_library_rejects_bad_input_with_one_line(images):
    for kwargs, message in [(dict(generated=images.train[:, :, :8]), 'generated images are 16x8 but the training images are 16x16'),
            (dict(k=25), 'k=25: there are only 24 reference images'), (dict(quantile=0), 'quantile must lie in (0, 1]'),
            (dict(training=images.train[:1]), 'at least two training images')]:
        vgg = TinyLPIPS()
        with pytest.raises(ValueError) as info:
            memo.check_memorisation(**dict(dict(vgg16=vgg, generated=images.fresh, training=images.train), **kwargs))
        assert message in str(info.value) and '\n' not in str(info.value)
        assert vgg.calls == []  # Refused before any image went through the network.

#----------------------------------------------------------------------------
# The tool.

NUM_TRAIN, SUBSET = 24, 20


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp('memorisation')
    train = family(NUM_TRAIN)
    data = write_zip(root / 'data.zip', train)
    with torch.random.fork_rng():  # The same network whichever tests ran before.
        torch.manual_seed(0)
        G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=RES, img_channels=3, mapping_kwargs=dict(num_layers=1),
            channel_base=64, channel_max=8).eval().requires_grad_(False)
    network = str(root / 'net.pkl')
    set_kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=data, use_labels=False, xflip=True,
        subset=SUBSET, subset_seed=3)
    save_snapshot(network, dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=set_kwargs))
    return dnnlib.EasyDict(root=root, train=train, data=data, G=G, network=network, set_kwargs=set_kwargs,
        detectors=tiny_detector.save_tiny_detectors(str(root / 'detectors')))


def run_tool(args):
    return CliRunner().invoke(memorisation.main, [str(a) for a in args])


def read_png(path):
    return np.asarray(PIL.Image.open(path))


def test_tool_on_a_snapshot_matches_brute_force(assets, tmp_path):
    outdir = tmp_path / 'out'
    result = run_tool(['--network', assets.network, '--seeds=0-6', '--k=2', '--rows=5', '--outdir', outdir,
        '--detector-dir', assets.detectors, '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert 'memorisation score ' in result.output and 'median LPIPS to the nearest training image: ' in result.output
    record = json.load(open(outdir / 'memorisation.json'))
    assert record['num_generated'] == 7 and record['num_train'] == SUBSET and record['mirror'] is True  # As trained.

    # Brute force: generate.py's images, the stand-in's LPIPS embeddings, scipy distances to the subset and its flips.
    gen = []
    for seed in range(7):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, 8)).float()
        gen.append((assets.G(z, torch.zeros([1, 0]), noise_mode='const') * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    gen = torch.cat(gen)
    subset = ImageFolderDataset(assets.data, subset=SUBSET, subset_seed=3)
    train = torch.from_numpy(np.stack([subset[i][0] for i in range(len(subset))]))
    reference = torch.cat([train, train.flip(3)])
    raw = [subset.get_details(i).raw_idx for i in range(len(subset))] * 2
    vgg = tiny_detector.load_detector(assets.detectors, tiny_detector.VGG16_FILE)
    embed = lambda x: vgg(x.float(), resize_images=False, return_lpips=True).double().numpy()
    dist = scipy.spatial.distance.cdist(embed(gen), embed(reference), 'sqeuclidean')
    for i, entry in enumerate(record['generated']):
        assert entry['name'] == f'seed{i:04d}'
        order = np.argsort(dist[i])[:2]
        assert [(n['train_image'], n['flipped']) for n in entry['nearest']] == [(raw[j], bool(j >= SUBSET)) for j in order]
        np.testing.assert_allclose([n['lpips'] for n in entry['nearest']], dist[i, order], rtol=1e-3, atol=1e-6)

    # The grid: 5 rows (closest first) x (1 + k) cells; row 0 is the closest generated image, then its neighbours.
    grid = read_png(outdir / 'memorisation.png')
    assert grid.shape == (5 * RES, 3 * RES, 3)
    first = min(range(7), key=lambda i: dist[i].min())
    assert record['generated'][first]['grid_row'] == 0
    assert sum(e['grid_row'] is not None for e in record['generated']) == 5
    np.testing.assert_array_equal(grid[:RES, :RES], gen[first].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(grid[:RES, RES:2 * RES], reference[np.argmin(dist[first])].permute(1, 2, 0).numpy())


def test_tool_on_image_folders_copies_one_noise_zero(assets, tmp_path):
    picked = [0, 23, 5, 9]
    copies = write_folder(tmp_path / 'copies', assets.train[picked])
    flipped = write_folder(tmp_path / 'flipped', assets.train[picked].flip(3))
    noise = write_folder(tmp_path / 'noise', noise_like(assets.train[:10]))
    for folder, mirror, score in [(copies, 0, '1.000'), (flipped, 1, '1.000'), (noise, 0, '0.000')]:
        outdir = tmp_path / ('out-' + os.path.basename(folder))
        result = run_tool(['--images', folder, '--data', assets.data, '--k=4', f'--mirror={mirror}', '--outdir', outdir,
            '--detector-dir', assets.detectors, '--device=cpu'])
        assert result.exit_code == 0, result.output
        num = 10 if folder == noise else len(picked)
        assert f'memorisation score {score} = share of the {num} generated images' in result.output
        record = json.load(open(outdir / 'memorisation.json'))
        assert record['num_train'] == NUM_TRAIN and record['mirror'] is bool(mirror) and record['data'] == assets.data
        assert read_png(outdir / 'memorisation.png').shape == (num * RES, 5 * RES, 3)  # --rows=16 > num images.
        if folder != noise:  # File order is the order of picked; each finds its source, flipped when it is.
            assert [(g['nearest'][0]['train_image'], g['nearest'][0]['flipped']) for g in record['generated']] == \
                [(i, bool(mirror)) for i in picked]


def _assert_clean_error(result, message):
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert 'Traceback' not in result.output and len([l for l in result.output.splitlines() if l.startswith('Error:')]) == 1


def test_bad_input_gives_one_line_and_writes_nothing(assets, tmp_path, monkeypatch):
    outdir = tmp_path / 'out'
    common = ['--outdir', outdir, '--detector-dir', assets.detectors, '--device=cpu']
    small = write_zip(tmp_path / 'small.zip', family(4, res=8))
    cases = [
        ([], 'give either --network or --images'),
        (['--network', assets.network, '--images', tmp_path], 'give either --network or --images'),
        (['--images', tmp_path], '--images needs the training set: pass --data'),
        (['--network', assets.network, '--k=41'], 'k=41: there are only 40 reference images'),
        (['--network', assets.network, '--data', small], 'the network generates 16x16 images, but the training images are 8x8'),
        (['--network', assets.network, '--data', tmp_path / 'missing.zip'], '--data: dataset not found'),
        (['--network', assets.network, '--seeds=3-1'], 'is empty'),
        (['--network', assets.network, '--quantile=0'], '--quantile'),
        (['--network', tmp_path / 'missing.pkl'], 'missing.pkl'),
    ]
    for args, message in cases:
        _assert_clean_error(run_tool(args + common), message)
        assert not outdir.exists()
    # The snapshot does not name its training set; a conditional network without --class; --outdir is a file.
    bare = str(tmp_path / 'bare.pkl')
    save_snapshot(bare, dict(G=assets.G, G_ema=assets.G))
    _assert_clean_error(run_tool(['--network', bare] + common), 'the training set is not known: pass it with --data')
    cond = str(tmp_path / 'cond.pkl')
    G = Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=RES, img_channels=3, mapping_kwargs=dict(num_layers=1),
        channel_base=64, channel_max=8)
    save_snapshot(cond, dict(G=G, G_ema=G, training_set_kwargs=assets.set_kwargs))
    _assert_clean_error(run_tool(['--network', cond] + common), 'the network is conditional (2 classes): pass --class')
    (tmp_path / 'file').write_text('')
    _assert_clean_error(run_tool(['--network', assets.network, '--outdir', tmp_path / 'file']), 'is a file, not a folder')
    assert not outdir.exists()
    # Offline without vgg16.pt: one line naming the file and --detector-dir.
    def offline(url, **_kwargs):
        raise dnnlib.util.OpenURLError(f'cannot reach {url}')
    monkeypatch.setattr(dnnlib.util, 'open_url', offline)
    monkeypatch.delenv(metric_utils.DETECTOR_DIR_ENV, raising=False)
    (tmp_path / 'empty').mkdir()
    result = run_tool(['--network', assets.network, '--outdir', outdir, '--detector-dir', tmp_path / 'empty'])
    _assert_clean_error(result, 'Feature detector "vgg16.pt" is not available')
    assert '--detector-dir' in result.output and not outdir.exists()


def test_help_explains_every_option():
    result = CliRunner().invoke(memorisation.main, ['--help'])
    assert result.exit_code == 0 and '--network' in result.output and '--images' in result.output
    assert [p.name for p in memorisation.main.params if not p.help] == []

#----------------------------------------------------------------------------
