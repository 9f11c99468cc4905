"""training/dataset.py: ImageFolderDataset over folders and zips, labels, x-flips, subsets, pickling."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from training.dataset import ImageFolderDataset


def _random_images(n, channels=3, size=8, seed=0):
    rnd = np.random.RandomState(seed)
    return rnd.randint(0, 256, size=[n, size, size, channels], dtype=np.uint8)


def _png_bytes(hwc):
    pil = PIL.Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buf = io.BytesIO()
    pil.save(buf, format='png')
    return buf.getvalue()


def _write_zip(path, images, labels=None, class_names=None, fnames=None):
    fnames = fnames or [f'{i // 1000:05d}/img{i:08d}.png' for i in range(len(images))]
    with zipfile.ZipFile(path, 'w') as z:
        for fname, img in zip(fnames, images):
            z.writestr(fname, _png_bytes(img))
        meta = dict(labels=None if labels is None else [[f, int(l)] for f, l in zip(fnames, labels)],
                    class_names=class_names)
        z.writestr('dataset.json', json.dumps(meta))
    return fnames


def _write_folder(path, images, labels=None, class_names=None):
    fnames = [f'{i // 1000:05d}/img{i:08d}.png' for i in range(len(images))]
    for fname, img in zip(fnames, images):
        os.makedirs(os.path.join(path, os.path.dirname(fname)), exist_ok=True)
        with open(os.path.join(path, fname), 'wb') as f:
            f.write(_png_bytes(img))
    meta = dict(labels=None if labels is None else [[f, int(l)] for f, l in zip(fnames, labels)],
                class_names=class_names)
    with open(os.path.join(path, 'dataset.json'), 'w') as f:
        json.dump(meta, f)


@pytest.fixture
def labelled_zip(tmp_path):
    images = _random_images(6)
    labels = [0, 2, 1, 2, 0, 1]
    path = str(tmp_path / 'tiny.zip')
    _write_zip(path, images, labels=labels, class_names=['cat', 'dog', 'bird', 'fish'])
    return path, images, labels


def test_zip_pixels_labels_and_properties(labelled_zip):
    path, images, labels = labelled_zip
    ds = ImageFolderDataset(path, use_labels=True)
    assert len(ds) == 6
    assert ds.name == 'tiny'
    assert ds.image_shape == [3, 8, 8] and ds.num_channels == 3 and ds.resolution == 8
    # Four class names but only three used: the label width follows the class list.
    assert ds.label_shape == [4] and ds.label_dim == 4 and ds.has_labels
    assert ds.class_names == ['cat', 'dog', 'bird', 'fish']
    for i in range(6):
        img, label = ds[i]
        assert img.dtype == np.uint8 and img.shape == (3, 8, 8)
        np.testing.assert_array_equal(img, images[i].transpose(2, 0, 1))
        expected = np.zeros(4, np.float32)
        expected[labels[i]] = 1
        assert label.dtype == np.float32
        np.testing.assert_array_equal(label, expected)
        details = ds.get_details(i)
        assert details.raw_idx == i and details.xflip is False and int(details.raw_label) == labels[i]


def test_grayscale_folder(tmp_path):
    images = _random_images(3, channels=1, seed=1)
    _write_folder(str(tmp_path / 'gray'), images, labels=[1, 0, 1], class_names=None)
    ds = ImageFolderDataset(str(tmp_path / 'gray'), use_labels=True)
    assert ds.image_shape == [1, 8, 8] and ds.class_names is None
    assert ds.label_shape == [2]
    expected_labels = [[0, 1], [1, 0], [0, 1]]
    for i in range(3):
        img, label = ds[i]
        np.testing.assert_array_equal(img[0], images[i, :, :, 0])
        assert label.tolist() == expected_labels[i]


def test_without_labels(labelled_zip):
    path, _, _ = labelled_zip
    ds = ImageFolderDataset(path, use_labels=False)
    assert not ds.has_labels and ds.label_dim == 0
    assert ds[0][1].shape == (0,)
    assert ds.class_names == ['cat', 'dog', 'bird', 'fish']  # Prompts need them even when unconditional.


def test_xflip_doubles_and_mirrors(labelled_zip):
    path, images, labels = labelled_zip
    ds = ImageFolderDataset(path, use_labels=True, xflip=True)
    assert len(ds) == 12
    for i in range(6):
        img, label = ds[6 + i]
        np.testing.assert_array_equal(img, images[i][:, ::-1, :].transpose(2, 0, 1))
        assert img.flags['C_CONTIGUOUS']
        np.testing.assert_array_equal(label, ds[i][1])
        assert ds.get_details(6 + i).xflip is True and ds.get_details(6 + i).raw_idx == i


def test_subset_is_seeded_and_sorted(tmp_path):
    path = str(tmp_path / 'many.zip')
    images = _random_images(40, size=4)
    _write_zip(path, images)
    a = ImageFolderDataset(path, subset=10, subset_seed=3)
    b = ImageFolderDataset(path, subset=10, subset_seed=3)
    c = ImageFolderDataset(path, subset=10, subset_seed=4)
    assert len(a) == 10
    assert a.subset_indices == b.subset_indices
    assert a.subset_indices != c.subset_indices
    assert a.subset_indices == sorted(a.subset_indices) and len(set(a.subset_indices)) == 10
    assert all(0 <= i < 40 for i in a.subset_indices)
    for k, raw in enumerate(a.subset_indices):
        np.testing.assert_array_equal(a[k][0], images[raw].transpose(2, 0, 1))
    assert ImageFolderDataset(path).subset_indices is None
    with pytest.raises(ValueError, match='subset=41 is out of range'):
        ImageFolderDataset(path, subset=41)


def test_max_size(tmp_path):
    path = str(tmp_path / 'many.zip')
    _write_zip(path, _random_images(20, size=4))
    a = ImageFolderDataset(path, max_size=5, random_seed=1)
    b = ImageFolderDataset(path, max_size=5, random_seed=2)
    raw_a = [a.get_details(i).raw_idx for i in range(5)]
    raw_b = [b.get_details(i).raw_idx for i in range(5)]
    assert len(a) == 5 and raw_a == sorted(raw_a) and raw_a != raw_b
    assert len(ImageFolderDataset(path, max_size=100)) == 20


def test_pickle_and_dataloader_workers(labelled_zip):
    path, images, _ = labelled_zip
    ds = ImageFolderDataset(path, use_labels=True)
    ds[0]  # Opens the zip handle, which must not travel in the pickle.
    assert ds._zipfile is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zipfile is None
    np.testing.assert_array_equal(clone[3][0], images[3].transpose(2, 0, 1))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = [imgs for imgs, _ in loader]
    got = torch.cat(batches).numpy()
    np.testing.assert_array_equal(got, images.transpose(0, 3, 1, 2))


def test_label_count_mismatch(tmp_path):
    path = str(tmp_path / 'bad.zip')
    fnames = _write_zip(path, _random_images(3), labels=[0, 1, 0])
    # Same images, dataset.json with the middle label missing.
    bad = str(tmp_path / 'bad2.zip')
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, 'w') as dst:
        for fname in fnames:
            dst.writestr(fname, src.read(fname))
        dst.writestr('dataset.json', json.dumps(dict(labels=[[fnames[0], 0], [fnames[2], 1]], class_names=None)))
    ds = ImageFolderDataset(bad, use_labels=True)
    with pytest.raises(ValueError, match=r'2 labels for 3 images; first image without a label: 00000/img00000001.png'):
        ds.get_label(0)


def test_mixed_shapes_raise_clearly(tmp_path):
    path = str(tmp_path / 'mixed.zip')
    images = list(_random_images(2, size=8))
    _write_zip(path, images + [np.zeros([6, 6, 3], np.uint8)])
    ds = ImageFolderDataset(path)
    ds[1]
    with pytest.raises(ValueError, match=r'image 2 has shape \[3, 6, 6\].*\[3, 8, 8\]'):
        ds[2]
    with pytest.raises(ValueError, match='resolution=16'):
        ImageFolderDataset(path, resolution=16)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match='folder or a .zip'):
        ImageFolderDataset(str(tmp_path / 'nothing.tar'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(ValueError, match='no images'):
        ImageFolderDataset(str(tmp_path / 'empty'))
