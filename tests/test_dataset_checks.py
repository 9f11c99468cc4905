"""training/dataset.py: ImageFolderDataset.check_images (headers only), unreadable zips, fingerprint()."""

import io
import json
import os
import re
import shutil
import struct
import zipfile

import numpy as np
import PIL.Image
import PIL.ImageFile
import PIL.JpegImagePlugin
import PIL.PngImagePlugin
import pytest

import training.dataset
from training.dataset import ImageFolderDataset


def _image_bytes(array_or_image, fmt='PNG'):
    image = array_or_image if isinstance(array_or_image, PIL.Image.Image) else PIL.Image.fromarray(array_or_image)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _rgb(width, height, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=[height, width, 3], dtype=np.uint8)


def _gray(width, height, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=[height, width], dtype=np.uint8)


def _name(i, ext='png'):
    return f'00000/img{i:08d}.{ext}'


def _pngs(arrays, ext='png', fmt='PNG'):
    """{member name: encoded bytes}, in the numbered layout dataset_tool.py writes."""
    return {_name(i, ext): _image_bytes(a, fmt) for i, a in enumerate(arrays)}


def _write_zip(path, files, labels=None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, 'w', compression=compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr('dataset.json', json.dumps(dict(labels=labels, class_names=None)))
    return str(path)


def _write_folder(path, files):
    for name, data in files.items():
        os.makedirs(os.path.join(path, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(path, name), 'wb') as f:
            f.write(data)
    return str(path)


def _check_error(path):
    with pytest.raises(ValueError) as info:
        ImageFolderDataset(path).check_images()
    return str(info.value)

#----------------------------------------------------------------------------
# Shapes.

@pytest.mark.parametrize('container', ['zip', 'folder'])
def test_two_resolutions_odd_image_last(tmp_path, container):
    files = _pngs([_rgb(8, 8, seed=i) for i in range(7)] + [_rgb(16, 16)])
    path = _write_zip(tmp_path / 'd.zip', files) if container == 'zip' else _write_folder(tmp_path / 'd', files)
    ds = ImageFolderDataset(path)  # __init__ sees only the first image, so it cannot catch this.
    with pytest.raises(ValueError) as info:
        ds.check_images()
    message = str(info.value)
    assert message.startswith(f'{path}: ') and '\n' not in message
    assert (f'7 images are 8x8 RGB (first: {_name(0)}), 1 is 16x16 RGB ({_name(7)})') in message
    assert message.endswith('rebuild it with dataset_tool.py --resolution=WxH')


def test_first_image_leads_even_when_it_is_the_odd_one(tmp_path):
    # Training takes its shape from the first image, so that shape is named first, then the others.
    path = _write_zip(tmp_path / 'd.zip', _pngs([_rgb(12, 6)] + [_rgb(8, 8, seed=i) for i in range(3)]))
    ds = ImageFolderDataset(path)
    assert ds[0][0].shape == (3, 6, 12)  # W=12, H=6: the message gives WxH.
    message = _check_error(path)
    assert f'1 image is 12x6 RGB ({_name(0)}), 3 are 8x8 RGB (first: {_name(1)})' in message


def test_gray_and_rgb_mixed(tmp_path):
    path = _write_zip(tmp_path / 'd.zip', _pngs([_rgb(8, 8), _rgb(8, 8, seed=1), _gray(8, 8)]))
    message = _check_error(path)
    assert f'2 images are 8x8 RGB (first: {_name(0)}), 1 is 8x8 gray ({_name(2)})' in message
    assert 'same channel count' in message and '--resolution' not in message


def test_odd_image_outside_subset_and_max_size_still_found(tmp_path):
    path = _write_zip(tmp_path / 'd.zip', _pngs([_rgb(8, 8, seed=i) for i in range(5)] + [_rgb(4, 4)]))
    ds = ImageFolderDataset(path, subset=2, max_size=1)
    assert len(ds) == 1
    with pytest.raises(ValueError, match=re.escape(f'1 is 4x4 RGB ({_name(5)})')):
        ds.check_images()


@pytest.mark.parametrize('container', ['zip', 'folder'])
def test_good_dataset_passes_and_matches_getitem(tmp_path, container):
    for channels, make in [(3, _rgb), (1, _gray)]:
        files = _pngs([make(10, 6, seed=i) for i in range(4)])  # Not square: width and height must not swap.
        where = tmp_path / f'{container}{channels}'
        path = _write_zip(f'{where}.zip', files) if container == 'zip' else _write_folder(where, files)
        ds = ImageFolderDataset(path)
        ds.check_images()
        assert all(ds[i][0].shape == (channels, 6, 10) for i in range(len(ds)))


def test_header_disagreeing_with_decoder_is_reported(tmp_path):
    ds = ImageFolderDataset(_write_zip(tmp_path / 'd.zip', _pngs([_rgb(8, 8), _rgb(8, 8, seed=1)])))
    ds._raw_shape = [2, 1, 8, 8]  # As if decoding the first image had given grayscale.
    with pytest.raises(ValueError, match=re.escape(f'2 images are 8x8 RGB (first: {_name(0)}), but {_name(0)} '
                                                   'decodes to 8x8 gray')):
        ds.check_images()

#----------------------------------------------------------------------------
# Formats training cannot read.

@pytest.mark.parametrize('image, kind', [
    (PIL.Image.new('RGBA', (8, 8)), 'an RGBA PNG'),
    (PIL.Image.new('P', (8, 8)), 'a palette PNG'),
    (PIL.Image.new('LA', (8, 8)), 'a grayscale+alpha PNG'),
    (PIL.Image.fromarray(np.full([8, 8], 40000, dtype=np.uint16)), 'a 16-bit PNG'),
], ids=['rgba', 'palette', 'gray-alpha', 'gray16'])
def test_unsupported_png_kinds(tmp_path, image, kind):
    files = _pngs([_rgb(8, 8)])
    files[_name(1)] = _image_bytes(image)
    message = _check_error(_write_zip(tmp_path / 'd.zip', files))
    assert message == (f'{tmp_path / "d.zip"}: {_name(1)} is {kind}; only 8-bit grayscale and RGB are read here '
                       '(dataset_tool.py converts the others)')


@pytest.mark.parametrize('data, reason', [
    (_image_bytes(_rgb(8, 8), 'JPEG'), 'no PNG signature'),
    (b'\x89PNG\r\n\x1a\n\x00\x00', 'no PNG signature'),  # Too short for an IHDR.
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT' + bytes(20), 'no IHDR chunk'),
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR' + struct.pack('>IIBB', 0, 8, 8, 2), 'size 0x8'),
], ids=['jpeg-bytes', 'too-short', 'no-ihdr', 'zero-width'])
def test_broken_png_is_not_a_readable_png(tmp_path, data, reason):
    files = _pngs([_rgb(8, 8)])
    files[_name(1)] = data
    message = _check_error(_write_folder(tmp_path / 'd', files))
    assert message.startswith(f'{tmp_path / "d"}: {_name(1)} is not a readable PNG ({reason}')


def test_jpeg_sizes_and_modes_through_pil(tmp_path):
    files = _pngs([_rgb(8, 8, seed=i) for i in range(3)] + [_rgb(16, 8)], ext='jpg', fmt='JPEG')
    message = _check_error(_write_zip(tmp_path / 'd.zip', files))
    assert f'3 images are 8x8 RGB (first: {_name(0, "jpg")}), 1 is 16x8 RGB ({_name(3, "jpg")})' in message
    files = _pngs([_rgb(8, 8)], ext='jpg', fmt='JPEG')
    files[_name(1, 'jpg')] = _image_bytes(PIL.Image.new('CMYK', (8, 8)), 'JPEG')
    files[_name(2, 'jpg')] = b'not a jpeg at all'
    message = _check_error(_write_folder(tmp_path / 'cmyk', files))
    assert f'{_name(1, "jpg")} has PIL mode CMYK; only 8-bit grayscale and RGB' in message
    del files[_name(1, 'jpg')]
    assert f'{_name(2, "jpg")} is not a readable image' in _check_error(_write_folder(tmp_path / 'junk', files))


def test_damaged_zip_member_names_the_member(tmp_path):
    path = _write_zip(tmp_path / 'd.zip', _pngs([_rgb(8, 8, seed=i) for i in range(3)]))
    ds = ImageFolderDataset(path)
    ds.close()
    with zipfile.ZipFile(path) as z:
        offset = z.getinfo(_name(2)).header_offset
    with open(path, 'r+b') as f:  # Spoil the member's local header signature.
        f.seek(offset)
        f.write(b'XXXX')
    with pytest.raises(ValueError, match=re.escape(f'{path}: {_name(2)} cannot be read from the zip')):
        ds.check_images()

#----------------------------------------------------------------------------
# Headers only.

@pytest.fixture
def no_decoding(monkeypatch):
    """Makes every pixel decoder raise; call it after __init__, which decodes the first image on purpose."""
    def decode(*_args, **_kwargs):
        raise AssertionError('pixel data was decoded')
    def arm():
        for cls in [PIL.ImageFile.ImageFile, PIL.PngImagePlugin.PngImageFile, PIL.JpegImagePlugin.JpegImageFile]:
            if 'load' in vars(cls):
                monkeypatch.setattr(cls, 'load', decode)
        monkeypatch.setattr(training.dataset, 'pyspng', type('FakePyspng', (), dict(load=staticmethod(decode))))
        monkeypatch.setattr(training.dataset.np, 'array', decode)
    return arm


@pytest.mark.parametrize('ext, fmt', [('png', 'PNG'), ('jpg', 'JPEG')])
def test_check_images_decodes_no_pixels(tmp_path, no_decoding, ext, fmt):
    good = ImageFolderDataset(_write_zip(tmp_path / 'good.zip', _pngs([_rgb(8, 8, i) for i in range(3)], ext, fmt)))
    bad = ImageFolderDataset(_write_folder(tmp_path / 'bad', _pngs([_rgb(8, 8), _rgb(8, 8, 1), _rgb(4, 8)], ext, fmt)))
    no_decoding()
    good.check_images()
    with pytest.raises(ValueError, match=re.escape(f'2 images are 8x8 RGB (first: {_name(0, ext)}), 1 is 4x8 RGB')):
        bad.check_images()


def test_png_members_read_with_small_byte_count(tmp_path, monkeypatch):
    ds = ImageFolderDataset(_write_zip(tmp_path / 'd.zip', _pngs([_rgb(64, 64, seed=i) for i in range(5)]),
                                       compression=zipfile.ZIP_DEFLATED))
    sizes = []
    real_read = zipfile.ZipExtFile.read
    def read(self, n=-1):
        sizes.append(n)
        return real_read(self, n)
    monkeypatch.setattr(zipfile.ZipExtFile, 'read', read)
    ds.check_images()
    assert len(sizes) == 5 and all(0 < n <= 32 for n in sizes), sizes

#----------------------------------------------------------------------------
# Unreadable containers.

def test_not_a_zip_and_truncated_zip(tmp_path):
    fake = tmp_path / 'x.zip'
    fake.write_bytes(b'this is a text file, not a zip\n' * 10)
    with pytest.raises(ValueError, match=re.escape(f'{fake}: not a readable zip file (')):
        ImageFolderDataset(str(fake))
    good = _write_zip(tmp_path / 'good.zip', _pngs([_rgb(8, 8, seed=i) for i in range(4)]))
    data = open(good, 'rb').read()
    for cut in [len(data) // 2, len(data) - 10]:
        truncated = tmp_path / f'cut{cut}.zip'
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=re.escape(f'{truncated}: not a readable zip file (')):
            ImageFolderDataset(str(truncated))


def test_unreadable_zip_and_folder_name_the_path(tmp_path, monkeypatch):
    path = _write_zip(tmp_path / 'd.zip', _pngs([_rgb(8, 8)]))
    folder = _write_folder(tmp_path / 'd', _pngs([_rgb(8, 8)]))
    def denied(target, *_args, **_kwargs):
        raise PermissionError(13, 'Permission denied', str(target))
    monkeypatch.setattr(ImageFolderDataset, '_get_zipfile', lambda self: denied(self._path))
    with pytest.raises(OSError, match=re.escape(f'{path}: cannot read the zip file (Permission denied)')):
        ImageFolderDataset(path)
    real_scandir = os.scandir
    monkeypatch.setattr(os, 'scandir', lambda p: denied(p) if p.endswith('00000') else real_scandir(p))
    with pytest.raises(OSError, match=re.escape(f'cannot read folder {os.path.join(folder, "00000")}: Permission denied')):
        ImageFolderDataset(folder)

#----------------------------------------------------------------------------
# Fingerprint.

def _four_images():
    return [_rgb(8, 8, seed=i) for i in range(4)]


def test_zip_fingerprint_follows_content_not_path(tmp_path):
    files = _pngs(_four_images())
    labels = [[name, i % 2] for i, name in enumerate(files)]
    first = ImageFolderDataset(_write_zip(tmp_path / 'a.zip', files, labels)).fingerprint()
    assert re.fullmatch(r'sha256:[0-9a-f]{64}', first)
    os.makedirs(tmp_path / 'elsewhere')
    copy = shutil.copy(tmp_path / 'a.zip', tmp_path / 'elsewhere' / 'renamed.zip')
    assert ImageFolderDataset(copy).fingerprint() == first
    deflated = _write_zip(tmp_path / 'deflated.zip', files, labels, compression=zipfile.ZIP_DEFLATED)
    assert ImageFolderDataset(deflated).fingerprint() == first  # CRC and size describe content, not storage.

    changed = _four_images()
    changed[2][3, 5, 1] ^= 1
    variants = dict(
        pixel = (_pngs(changed), labels),
        renamed = ({k.replace('img00000003', 'img00000009'): v for k, v in files.items()}, labels),
        labels = (files, [[name, 1 - i % 2] for i, name in enumerate(files)]),
    )
    prints = {key: ImageFolderDataset(_write_zip(tmp_path / f'{key}.zip', f, l)).fingerprint()
              for key, (f, l) in variants.items()}
    assert len(set(prints.values()) | {first}) == 4, prints


def test_zip_fingerprint_reads_no_member_data(tmp_path, monkeypatch):
    ds = ImageFolderDataset(_write_zip(tmp_path / 'd.zip', _pngs(_four_images())))
    expected = ds.fingerprint()
    def refuse(*_args, **_kwargs):
        raise AssertionError('member data was read')
    monkeypatch.setattr(zipfile.ZipFile, 'open', refuse)
    monkeypatch.setattr(zipfile.ZipFile, 'read', refuse)
    assert ds.fingerprint() == expected
    ds.close()
    assert ds.fingerprint() == expected  # Reopening the zip reads the central directory only.


def test_folder_fingerprint(tmp_path):
    folder = _write_folder(tmp_path / 'a', _pngs(_four_images()))
    ds = ImageFolderDataset(folder)
    first = ds.fingerprint()
    assert re.fullmatch(r'sha256:[0-9a-f]{64}', first) and ds.fingerprint() == first
    copy = shutil.copytree(folder, tmp_path / 'elsewhere' / 'b')
    assert ImageFolderDataset(str(copy)).fingerprint() == first

    _write_folder(copy, {'.DS_Store': b'junk', '.cache/x.png': b'junk'})  # Hidden files are not data.
    assert ImageFolderDataset(str(copy)).fingerprint() == first
    _write_folder(copy, {'README.txt': b'notes'})  # Any other file is.
    with_readme = ImageFolderDataset(str(copy)).fingerprint()
    assert with_readme != first

    changed = _four_images()
    changed[1][0, 0, 0] ^= 1
    _write_folder(copy, {_name(1): _image_bytes(changed[1])})
    assert ImageFolderDataset(str(copy)).fingerprint() not in (first, with_readme)
    os.rename(os.path.join(folder, _name(3)), os.path.join(folder, _name(7)))
    assert ds.fingerprint() != first  # Computed from the folder as it is now, not cached.
    assert ImageFolderDataset(_write_zip(tmp_path / 'a.zip', _pngs(_four_images()))).fingerprint() != first
