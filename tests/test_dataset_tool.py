"""dataset_tool.py: every source kind round-trips exactly into ImageFolderDataset; bad input is handled as documented."""

import gzip
import io
import json
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile
import zlib

import numpy as np
import PIL.Image
from click.testing import CliRunner

import dataset_tool
from training.dataset import ImageFolderDataset


def run_tool(*args):
    return CliRunner().invoke(dataset_tool.main, [str(a) for a in args])


def load_all(path, use_labels=True):
    ds = ImageFolderDataset(str(path), use_labels=use_labels)
    images = np.stack([ds[i][0] for i in range(len(ds))])
    labels = [int(np.argmax(ds.get_label(i))) for i in range(len(ds))] if ds.has_labels else None
    return ds, images, labels


def leftovers(folder, keep):
    return sorted(set(os.listdir(folder)) - set(keep))

#----------------------------------------------------------------------------
# Source builders in the official formats.

def _pickle_py2_style(obj):
    # The official batches were pickled by Python 2 numpy: arrays refer to numpy.core.multiarray.
    data = pickle.dumps(obj, protocol=2)
    return data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar10(path, train_batches, test_batch, names):
    with tarfile.open(path, 'w:gz') as tar:
        for i, (data, labels) in enumerate(train_batches):
            _add_bytes(tar, f'cifar-10-batches-py/data_batch_{i + 1}',
                _pickle_py2_style({b'batch_label': b'x', b'labels': labels, b'data': data}))
        data, labels = test_batch
        _add_bytes(tar, 'cifar-10-batches-py/test_batch', _pickle_py2_style({b'labels': labels, b'data': data}))
        _add_bytes(tar, 'cifar-10-batches-py/batches.meta', _pickle_py2_style({b'label_names': [n.encode() for n in names]}))


def cifar_rows(n, seed):
    # Row-major planes: 1024 red, then 1024 green, then 1024 blue values per image.
    return np.random.RandomState(seed).randint(0, 256, size=[n, 3072]).astype(np.uint8)


def rows_to_hwc(rows):
    # Independent of the tool's reshape: index each plane explicitly.
    out = np.zeros([len(rows), 32, 32, 3], np.uint8)
    for k, row in enumerate(rows):
        for c in range(3):
            for y in range(32):
                out[k, y, :, c] = row[c * 1024 + y * 32: c * 1024 + y * 32 + 32]
    return out


def png16(values, color):
    """A 16-bit PNG built by hand (Pillow cannot write 16-bit RGB)."""
    h, w = values.shape[:2]
    raw = b''.join(b'\x00' + row.astype('>u2').tobytes() for row in values)
    def chunk(tag, data):
        return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)
    header = struct.pack('>IIBBBBB', w, h, 16, 2 if color else 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def png_bytes(image, **save_kwargs):
    buf = io.BytesIO()
    image.save(buf, format='png', **save_kwargs)
    return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)

#----------------------------------------------------------------------------

def test_cifar10_train_and_test_round_trip(tmp_path):
    names = ['airplane', 'automobile', 'bird']
    batches = [(cifar_rows(3, seed=i), [i % 3, (i + 1) % 3, 2]) for i in range(5)]
    test = (cifar_rows(4, seed=9), [2, 1, 0, 1])
    make_cifar10(tmp_path / 'cifar-10-python.tar.gz', batches, test, names)

    result = run_tool('--source', tmp_path / 'cifar-10-python.tar.gz', '--dest', tmp_path / 'train.zip')
    assert result.exit_code == 0, result.output
    assert 'Wrote 15 images' in result.output and 'classes: 3' in result.output
    ds, images, labels = load_all(tmp_path / 'train.zip')
    assert ds.class_names == names and ds.image_shape == [3, 32, 32]
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), rows_to_hwc(np.concatenate([b[0] for b in batches])))
    assert labels == sum((b[1] for b in batches), [])

    result = run_tool('--source', tmp_path / 'cifar-10-python.tar.gz', '--dest', tmp_path / 'test.zip', '--split', 'test')
    assert result.exit_code == 0, result.output
    ds, images, labels = load_all(tmp_path / 'test.zip')
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), rows_to_hwc(test[0]))
    assert labels == test[1] and ds.class_names == names


def test_cifar100_fine_labels(tmp_path):
    fine_names = [f'class{i}' for i in range(7)]
    train, test = cifar_rows(5, seed=1), cifar_rows(2, seed=2)
    with tarfile.open(tmp_path / 'c100.tar.gz', 'w:gz') as tar:
        _add_bytes(tar, 'cifar-100-python/train', _pickle_py2_style(
            {b'data': train, b'fine_labels': [6, 0, 3, 3, 1], b'coarse_labels': [0, 0, 1, 1, 0]}))
        _add_bytes(tar, 'cifar-100-python/test', _pickle_py2_style(
            {b'data': test, b'fine_labels': [5, 4], b'coarse_labels': [1, 1]}))
        _add_bytes(tar, 'cifar-100-python/meta', _pickle_py2_style(
            {b'fine_label_names': [n.encode() for n in fine_names], b'coarse_label_names': [b'a', b'b']}))
    result = run_tool('--source', tmp_path / 'c100.tar.gz', '--dest', tmp_path / 'c100.zip')
    assert result.exit_code == 0, result.output
    ds, images, labels = load_all(tmp_path / 'c100.zip')
    assert labels == [6, 0, 3, 3, 1] and ds.class_names == fine_names and ds.label_dim == 7
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), rows_to_hwc(train))
    result = run_tool('--source', tmp_path / 'c100.tar.gz', '--dest', tmp_path / 'c100-test', '--split', 'test')
    assert result.exit_code == 0, result.output
    assert load_all(tmp_path / 'c100-test')[2] == [5, 4]


def test_cifar_pickle_with_foreign_objects_is_refused(tmp_path):
    with tarfile.open(tmp_path / 'evil.tar.gz', 'w:gz') as tar:
        _add_bytes(tar, 'cifar-10-batches-py/data_batch_1', pickle.dumps({b'data': os.getcwd}, protocol=2))
        _add_bytes(tar, 'cifar-10-batches-py/batches.meta', _pickle_py2_style({b'label_names': [b'a']}))
    result = run_tool('--source', tmp_path / 'evil.tar.gz', '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 1 and 'unexpected object' in result.output
    assert not os.path.exists(tmp_path / 'out.zip')


def test_truncated_cifar_tarball(tmp_path):
    batches = [(cifar_rows(40, seed=i), [0] * 40) for i in range(5)]
    make_cifar10(tmp_path / 'full.tar.gz', batches, (cifar_rows(2, seed=9), [0, 0]), ['a'])
    data = (tmp_path / 'full.tar.gz').read_bytes()
    write(tmp_path / 'cut.tar.gz', data[:len(data) // 2])
    result = run_tool('--source', tmp_path / 'cut.tar.gz', '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 1 and 'cannot read' in result.output and 'interrupted download' in result.output
    assert not os.path.exists(tmp_path / 'out.zip')


def _idx(path, magic, array):
    with gzip.open(path, 'wb') as f:
        f.write(struct.pack(f'>{1 + array.ndim}I', magic, *array.shape) + array.astype(np.uint8).tobytes())


def test_mnist_idx(tmp_path):
    rnd = np.random.RandomState(0)
    train, test = rnd.randint(0, 256, [5, 28, 28]), rnd.randint(0, 256, [3, 28, 28])
    _idx(tmp_path / 'train-images-idx3-ubyte.gz', 2051, train)
    _idx(tmp_path / 'train-labels-idx1-ubyte.gz', 2049, np.array([3, 1, 4, 1, 5]))
    _idx(tmp_path / 't10k-images-idx3-ubyte.gz', 2051, test)
    _idx(tmp_path / 't10k-labels-idx1-ubyte.gz', 2049, np.array([9, 2, 6]))

    result = run_tool('--source', tmp_path / 'train-images-idx3-ubyte.gz', '--dest', tmp_path / 'mnist.zip')
    assert result.exit_code == 0, result.output
    ds, images, labels = load_all(tmp_path / 'mnist.zip')
    assert ds.image_shape == [1, 28, 28] and labels == [3, 1, 4, 1, 5]
    np.testing.assert_array_equal(images[:, 0], train)

    # A folder source with --split=test picks the t10k files.
    os.makedirs(tmp_path / 'out')
    result = run_tool('--source', tmp_path, '--dest', tmp_path / 'out' / 'test.zip', '--split', 'test')
    assert result.exit_code == 0, result.output
    _, images, labels = load_all(tmp_path / 'out' / 'test.zip')
    np.testing.assert_array_equal(images[:, 0], test)
    assert labels == [9, 2, 6]

    result = run_tool('--source', tmp_path / 'train-images-idx3-ubyte.gz', '--dest', tmp_path / 'x.zip', '--split', 'test')
    assert result.exit_code == 2 and 'contradicts' in result.output

    _idx(tmp_path / 'bad-images-idx3-ubyte.gz', 2049, train)  # Labels magic on an images file.
    result = run_tool('--source', tmp_path / 'bad-images-idx3-ubyte.gz', '--dest', tmp_path / 'y.zip')
    assert result.exit_code == 1 and 'magic 2051' in result.output


def test_mnist_resized(tmp_path):
    images = np.random.RandomState(1).randint(0, 256, [2, 28, 28])
    _idx(tmp_path / 'train-images-idx3-ubyte.gz', 2051, images)
    _idx(tmp_path / 'train-labels-idx1-ubyte.gz', 2049, np.array([0, 7]))
    result = run_tool('--source', tmp_path / 'train-images-idx3-ubyte.gz', '--dest', tmp_path / 'm32.zip',
        '--resolution', '32x32', '--resize-filter', 'box')
    assert result.exit_code == 0, result.output
    ds, got, _ = load_all(tmp_path / 'm32.zip')
    assert ds.resolution == 32
    expected = np.asarray(PIL.Image.fromarray(images[1].astype(np.uint8)).resize((32, 32), PIL.Image.BOX))
    np.testing.assert_array_equal(got[1, 0], expected)


def test_image_modes_are_converted_by_the_documented_rules(tmp_path):
    rnd = np.random.RandomState(3)
    src = tmp_path / 'src'
    rgb = rnd.randint(0, 256, [8, 8, 3]).astype(np.uint8)
    gray = rnd.randint(0, 256, [8, 8]).astype(np.uint8)
    rgba = rnd.randint(0, 256, [8, 8, 4]).astype(np.uint8)
    palette = rnd.randint(0, 256, [256, 3]).astype(np.uint8)
    index = rnd.randint(0, 8, [8, 8]).astype(np.uint8)
    rgb16 = rnd.randint(0, 65536, [8, 8, 3])
    gray16 = rnd.randint(0, 65536, [8, 8])
    write(src / 'a_rgb.png', png_bytes(PIL.Image.fromarray(rgb)))
    write(src / 'b_gray.png', png_bytes(PIL.Image.fromarray(gray)))
    write(src / 'c_rgba.png', png_bytes(PIL.Image.fromarray(rgba)))
    pal_image = PIL.Image.frombytes('P', (8, 8), index.tobytes())
    pal_image.putpalette(palette.flatten().tolist())
    write(src / 'd_palette.png', png_bytes(pal_image))
    write(src / 'e_palette_transparent.png', png_bytes(pal_image, transparency=3))
    write(src / 'f_rgb16.png', png16(rgb16, color=True))
    write(src / 'g_gray16.png', png16(gray16, color=False))
    write(src / 'h_rgb.bmp', (lambda b: (PIL.Image.fromarray(rgb).save(b, format='bmp'), b.getvalue())[1])(io.BytesIO()))

    result = run_tool('--source', src, '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 0, result.output
    ds, images, labels = load_all(tmp_path / 'out.zip')
    assert labels is None and ds.num_channels == 3 and len(ds) == 8
    got = images.transpose(0, 2, 3, 1)

    alpha = rgba[..., 3:].astype(np.float64) / 255
    on_white = np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    pal_rgb = palette[index]
    pal_transparent = np.where((index == 3)[..., None], 255, pal_rgb)
    expected = [rgb, np.stack([gray] * 3, axis=-1), on_white, pal_rgb, pal_transparent,
                rgb16 // 256, np.stack([gray16 // 256] * 3, axis=-1), rgb]
    for k, exp in enumerate(expected):
        np.testing.assert_array_equal(got[k], exp, err_msg=f'image {k}')


def test_all_grayscale_gives_one_channel(tmp_path):
    rnd = np.random.RandomState(4)
    src = tmp_path / 'src'
    gray = rnd.randint(0, 256, [6, 6]).astype(np.uint8)
    la = rnd.randint(0, 256, [6, 6, 2]).astype(np.uint8)
    bits = rnd.randint(0, 2, [6, 6]).astype(bool)
    gray16 = rnd.randint(0, 65536, [6, 6])
    write(src / '1.png', png_bytes(PIL.Image.fromarray(gray)))
    write(src / '2.png', png_bytes(PIL.Image.fromarray(la)))
    write(src / '3.png', png_bytes(PIL.Image.fromarray(bits)))
    write(src / '4.png', png16(gray16, color=False))
    result = run_tool('--source', src, '--dest', tmp_path / 'gray.zip')
    assert result.exit_code == 0, result.output
    assert '1 channel' in result.output
    ds, images, _ = load_all(tmp_path / 'gray.zip')
    assert ds.num_channels == 1
    a = la[..., 1].astype(np.float64) / 255
    expected = [gray, np.round(la[..., 0] * a + 255 * (1 - a)), np.where(bits, 255, 0), gray16 // 256]
    for k, exp in enumerate(expected):
        np.testing.assert_array_equal(images[k, 0], exp.astype(np.uint8), err_msg=f'image {k}')


def _bad_folder(tmp_path, n_good=3):
    src = tmp_path / 'src'
    rnd = np.random.RandomState(5)
    good = [rnd.randint(0, 256, [8, 8, 3]).astype(np.uint8) for _ in range(n_good)]
    for i, img in enumerate(good):
        write(src / 'cats' / f'{i}.png', png_bytes(PIL.Image.fromarray(img)))
    full = png_bytes(PIL.Image.fromarray(rnd.randint(0, 256, [8, 8, 3]).astype(np.uint8)), compress_level=0)
    write(src / 'dogs' / 'truncated.png', full[:len(full) * 2 // 3])
    write(src / 'dogs' / 'zz_garbage.jpg', b'this is not a jpeg')
    write(src / 'dogs' / 'ok.png', png_bytes(PIL.Image.fromarray(good[0])))
    write(src / '.hidden' / 'x.png', b'ignored: hidden folders are not scanned')
    return src, good


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    src, good = _bad_folder(tmp_path)
    result = run_tool('--source', src, '--dest', tmp_path / 'out.zip', '--labels-from', 'folders')
    assert result.exit_code == 0, result.output
    assert 'Wrote 4 images' in result.output and 'skipped 2 unreadable' in result.output
    assert 'dogs/truncated.png' in result.output and 'dogs/zz_garbage.jpg: not a recognised image format' in result.output
    ds, images, labels = load_all(tmp_path / 'out.zip')
    assert ds.class_names == ['cats', 'dogs'] and labels == [0, 0, 0, 1]
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), np.stack(good + [good[0]]))


def test_strict_stops_and_leaves_nothing(tmp_path):
    src, _ = _bad_folder(tmp_path)
    os.makedirs(tmp_path / 'out')
    result = run_tool('--source', src, '--dest', tmp_path / 'out' / 'data.zip', '--strict')
    assert result.exit_code == 1
    assert 'cannot read dogs/truncated.png' in result.output and '--strict' in result.output
    assert os.listdir(tmp_path / 'out') == []


def test_interrupted_write_leaves_old_dest_intact(tmp_path, monkeypatch):
    src, good = _bad_folder(tmp_path)
    assert run_tool('--source', src, '--dest', tmp_path / 'old.zip').exit_code == 0
    before = (tmp_path / 'old.zip').read_bytes()
    calls = []
    real_encode = dataset_tool.encode_png
    def flaky_encode(array):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(array)
    monkeypatch.setattr(dataset_tool, 'encode_png', flaky_encode)
    for dest in ['old.zip', 'new.zip', 'new_folder']:
        calls.clear()
        result = run_tool('--source', src, '--dest', tmp_path / dest, '--overwrite')
        assert result.exit_code != 0 and len(calls) == 3
    assert (tmp_path / 'old.zip').read_bytes() == before
    assert leftovers(tmp_path, keep=['src']) == ['old.zip']


def test_destination_rules(tmp_path):
    src, _ = _bad_folder(tmp_path)
    result = run_tool('--source', src, '--dest', tmp_path / 'd.zip')
    assert result.exit_code == 0
    result = run_tool('--source', src, '--dest', tmp_path / 'd.zip')
    assert result.exit_code == 1 and 'already exists; pass --overwrite' in result.output
    result = run_tool('--source', src, '--dest', tmp_path / 'd.zip', '--overwrite', '--max-images', 2)
    assert result.exit_code == 0 and len(ImageFolderDataset(str(tmp_path / 'd.zip'))) == 2

    # Folder output, replaced in place; a folder the tool did not make is never replaced.
    assert run_tool('--source', src, '--dest', tmp_path / 'dfolder').exit_code == 0
    assert run_tool('--source', src, '--dest', tmp_path / 'dfolder', '--overwrite', '--max-images', 1).exit_code == 0
    assert len(ImageFolderDataset(str(tmp_path / 'dfolder'))) == 1
    os.makedirs(tmp_path / 'precious')
    write(tmp_path / 'precious' / 'notes.txt', b'keep me')
    result = run_tool('--source', src, '--dest', tmp_path / 'precious', '--overwrite')
    assert result.exit_code == 1 and 'refusing to replace' in result.output
    assert (tmp_path / 'precious' / 'notes.txt').read_bytes() == b'keep me'
    result = run_tool('--source', src, '--dest', src / 'inside')
    assert result.exit_code == 2 and 'inside --source' in result.output
    assert leftovers(tmp_path, keep=['src']) == ['d.zip', 'dfolder', 'precious']


def test_shape_errors_name_the_file_and_the_option(tmp_path):
    src = tmp_path / 'src'
    write(src / 'a.png', png_bytes(PIL.Image.new('RGB', (8, 8))))
    write(src / 'b.png', png_bytes(PIL.Image.new('RGB', (10, 10))))
    result = run_tool('--source', src, '--dest', tmp_path / 'o.zip')
    assert result.exit_code == 1 and 'b.png is 10x10 but a.png is 8x8; use --resolution' in result.output
    write(src / 'a.png', png_bytes(PIL.Image.new('RGB', (12, 8))))
    result = run_tool('--source', src, '--dest', tmp_path / 'o.zip')
    assert result.exit_code == 1 and 'a.png is 12x8, not square; use --transform=center-crop' in result.output
    for bad in ['0x4', 'abc', '8x']:
        assert run_tool('--source', src, '--dest', tmp_path / 'o.zip', '--resolution', bad).exit_code == 2
    result = run_tool('--source', src, '--dest', tmp_path / 'o.zip', '--transform', 'center-crop')
    assert result.exit_code == 2 and 'needs --resolution' in result.output
    assert leftovers(tmp_path, keep=['src']) == []


def test_center_crop_and_center_crop_wide(tmp_path):
    rnd = np.random.RandomState(6)
    wide = rnd.randint(0, 256, [8, 12, 3]).astype(np.uint8)   # 12x8: a centred 8x8 square starts at x=2
    tall = rnd.randint(0, 256, [10, 8, 3]).astype(np.uint8)   # 8x10: the square starts at y=1
    write(tmp_path / 'src' / 'a.png', png_bytes(PIL.Image.fromarray(wide)))
    write(tmp_path / 'src' / 'b.png', png_bytes(PIL.Image.fromarray(tall)))
    result = run_tool('--source', tmp_path / 'src', '--dest', tmp_path / 'sq.zip', '--transform', 'center-crop', '--resolution', '8x8')
    assert result.exit_code == 0, result.output
    _, images, _ = load_all(tmp_path / 'sq.zip')
    np.testing.assert_array_equal(images[0].transpose(1, 2, 0), wide[:, 2:10])
    np.testing.assert_array_equal(images[1].transpose(1, 2, 0), tall[1:9])

    # 16x8 content at 2:1, shrunk by 2 with the box filter, letterboxed into an 8x8 square.
    content = rnd.randint(0, 256, [8, 16, 3]).astype(np.uint8)
    write(tmp_path / 'wide' / 'c.png', png_bytes(PIL.Image.fromarray(content)))
    result = run_tool('--source', tmp_path / 'wide', '--dest', tmp_path / 'w.zip', '--transform', 'center-crop-wide',
        '--resolution', '8x4', '--resize-filter', 'box')
    assert result.exit_code == 0, result.output
    _, images, _ = load_all(tmp_path / 'w.zip')
    got = images[0].transpose(1, 2, 0).astype(np.int64)
    block_mean = content.reshape(4, 2, 8, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert got.shape == (8, 8, 3)
    assert np.abs(got[2:6] - block_mean).max() <= 1
    assert (got[:2] == 0).all() and (got[6:] == 0).all()


def test_zip_source_with_dataset_json_labels(tmp_path):
    rnd = np.random.RandomState(7)
    imgs = [rnd.randint(0, 256, [4, 4, 3]).astype(np.uint8) for _ in range(3)]
    with zipfile.ZipFile(tmp_path / 'in.zip', 'w') as z:
        for i, img in enumerate(imgs):
            z.writestr(f'x/{i}.png', png_bytes(PIL.Image.fromarray(img)))
        z.writestr('dataset.json', json.dumps({'labels': [['x/0.png', 1], ['x/1.png', 0], ['x/2.png', 1]],
                                              'class_names': ['no', 'yes']}))
    result = run_tool('--source', tmp_path / 'in.zip', '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 0, result.output
    ds, images, labels = load_all(tmp_path / 'out.zip')
    assert labels == [1, 0, 1] and ds.class_names == ['no', 'yes']
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), np.stack(imgs))

    with zipfile.ZipFile(tmp_path / 'missing.zip', 'w') as z:
        z.writestr('0.png', png_bytes(PIL.Image.fromarray(imgs[0])))
        z.writestr('1.png', png_bytes(PIL.Image.fromarray(imgs[1])))
        z.writestr('dataset.json', json.dumps({'labels': [['0.png', 1]]}))
    result = run_tool('--source', tmp_path / 'missing.zip', '--dest', tmp_path / 'm.zip')
    assert result.exit_code == 1 and '1 images have no label, the first is 1.png' in result.output
    assert run_tool('--source', tmp_path / 'missing.zip', '--dest', tmp_path / 'm.zip', '--labels-from', 'none').exit_code == 0


def test_unknown_sources_and_empty_inputs(tmp_path):
    write(tmp_path / 'notes.tar.gz', b'')
    with tarfile.open(tmp_path / 'other.tar.gz', 'w:gz') as tar:
        _add_bytes(tar, 'readme.txt', b'hello')
    write(tmp_path / 'blob.bin', b'\x00\x01 random bytes')
    for name in ['notes.tar.gz', 'other.tar.gz', 'blob.bin']:
        result = run_tool('--source', tmp_path / name, '--dest', tmp_path / 'o.zip')
        assert result.exit_code == 1 and 'unknown' in result.output, result.output
    os.makedirs(tmp_path / 'empty')
    result = run_tool('--source', tmp_path / 'empty', '--dest', tmp_path / 'o.zip')
    assert result.exit_code == 1 and 'no images found' in result.output
    write(tmp_path / 'junk' / 'a.png', b'not png')
    result = run_tool('--source', tmp_path / 'junk', '--dest', tmp_path / 'o.zip')
    assert result.exit_code == 1 and 'no readable images' in result.output
    result = run_tool('--source', tmp_path / 'nope', '--dest', tmp_path / 'o.zip')
    assert result.exit_code == 2 and 'does not exist' in result.output
    result = run_tool('--source', tmp_path / 'junk', '--dest', tmp_path / 'o.zip', '--split', 'test')
    assert result.exit_code == 2 and '--split applies only' in result.output
    assert not os.path.exists(tmp_path / 'o.zip')


class _FakeLmdb:
    """Just enough of the lmdb package's API for the LSUN reader."""

    def __init__(self, records):
        self.records = records

    def open(self, path, **kwargs):
        records = self.records
        class Txn:
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return False
            def stat(self):
                return {'entries': len(records)}
            def cursor(self):
                return iter(records)
        return types.SimpleNamespace(begin=lambda write=False: Txn(), close=lambda: None)


def test_lsun_lmdb(tmp_path, monkeypatch):
    write(tmp_path / 'bedroom' / 'data.mdb', b'')
    monkeypatch.setitem(sys.modules, 'lmdb', None)  # Importing it fails, as when it is not installed.
    result = run_tool('--source', tmp_path / 'bedroom', '--dest', tmp_path / 'b.zip')
    assert result.exit_code == 1 and 'pip install lmdb' in result.output

    rnd = np.random.RandomState(8)
    color = rnd.randint(0, 256, [12, 16, 3]).astype(np.uint8)
    gray = rnd.randint(0, 256, [16, 12]).astype(np.uint8)
    records = [(b'k0', png_bytes(PIL.Image.fromarray(color))), (b'k1', b'corrupt'), (b'k2', png_bytes(PIL.Image.fromarray(gray)))]
    monkeypatch.setitem(sys.modules, 'lmdb', _FakeLmdb(records))
    result = run_tool('--source', tmp_path / 'bedroom', '--dest', tmp_path / 'b.zip', '--transform', 'center-crop', '--resolution', '12x12')
    assert result.exit_code == 0, result.output
    assert 'bedroom[k1]' in result.output
    ds, images, _ = load_all(tmp_path / 'b.zip')
    assert ds.num_channels == 3 and len(ds) == 2
    np.testing.assert_array_equal(images[0].transpose(1, 2, 0), color[:, 2:14])
    np.testing.assert_array_equal(images[1].transpose(1, 2, 0), np.stack([gray[2:14]] * 3, axis=-1))
