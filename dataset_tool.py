"""Build a training dataset: a zip (or folder) of PNGs plus dataset.json with labels and class names.

Sources: a folder or zip of images, the CIFAR-10/100 python tarballs, MNIST idx files, LSUN LMDB folders.
Nothing is lost silently: unreadable images are skipped and reported (or stop the run with --strict), and
the output is written under a temporary name that is renamed to --dest only when everything succeeded.
See docs/datasets.md for the conversion rules.
"""

import gzip
import io
import json
import os
import pickle
import re
import shutil
import struct
import tarfile
import warnings
import zipfile
import zlib

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N')
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, PIL.Image.DecompressionBombError)
NUM_REPORTED_SKIPS = 5

#----------------------------------------------------------------------------
# Sources. Each yields (origin, label, payload) items; open_image(payload) decodes one of them.

class _Source:
    description = ''
    class_names = None  # List of class names, or None.
    labelled = False    # Whether every item carries an int label.
    mode = None         # 'L' or 'RGB' when known without looking at the images, else None.
    num_items = 0

    def iter_items(self):
        raise NotImplementedError

    def open_image(self, payload):
        raise NotImplementedError

    def close(self):
        pass


def _decode(data):
    image = PIL.Image.open(io.BytesIO(data))
    image.load()  # Decode now, so a truncated file fails here rather than later.
    return image


class _FileListSource(_Source):
    """Image files in a folder or zip, in sorted path order, with labels from dataset.json or sub-folders."""

    def __init__(self, description, all_files, read, labels_from):
        self.description = description
        self._read = read
        self._files = sorted(f for f in all_files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
            and not any(part.startswith('.') or part == '__MACOSX' for part in f.split('/')))
        if not self._files:
            raise click.ClickException(f'no images found in {description} (looked for {", ".join(IMAGE_EXTENSIONS)})')
        self.num_items = len(self._files)
        self._labels = None
        if labels_from == 'folders':
            self._labels_from_folders()
        elif labels_from == 'json' or (labels_from == 'auto' and 'dataset.json' in all_files):
            if 'dataset.json' not in all_files:
                raise click.ClickException(f'--labels-from=json: {description} has no dataset.json')
            self._labels_from_json(read('dataset.json'))
        elif labels_from not in ('auto', 'none'):
            raise click.UsageError(f'--labels-from={labels_from} does not apply to a folder or zip of images')

    def _labels_from_folders(self):
        loose = [f for f in self._files if '/' not in f]
        if loose:
            raise click.ClickException(f'--labels-from=folders: every image must lie in a class sub-folder, '
                f'but {loose[0]} lies at the top of {self.description}')
        self.class_names = sorted({f.split('/')[0] for f in self._files})
        index = {name: i for i, name in enumerate(self.class_names)}
        self._labels = {f: index[f.split('/')[0]] for f in self._files}
        self.labelled = True

    def _labels_from_json(self, data):
        where = f'dataset.json in {self.description}'
        try:
            meta = json.loads(data)
        except ValueError as e:
            raise click.ClickException(f'{where} is not valid JSON: {e}') from None
        if not isinstance(meta, dict):
            raise click.ClickException(f'{where} must hold an object with "labels" and optional "class_names"')
        class_names = meta.get('class_names')
        if class_names is not None and not (isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)):
            raise click.ClickException(f'{where}: "class_names" must be a list of strings or null')
        self.class_names = class_names
        labels = meta.get('labels')
        if labels is None:
            return
        if isinstance(labels, list) and all(isinstance(e, list) and len(e) == 2 for e in labels):
            labels = dict(labels)
        if not isinstance(labels, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels.values()):
            raise click.ClickException(f'{where}: "labels" must be [[file name, class index >= 0], ...] or null')
        missing = [f for f in self._files if f not in labels]
        if missing:
            raise click.ClickException(f'{where}: {len(missing)} images have no label, the first is {missing[0]}')
        unknown = sorted(set(labels) - set(self._files))
        if unknown:
            raise click.ClickException(f'{where}: {len(unknown)} labelled files are not among the images, the first is {unknown[0]}')
        if class_names is not None and max(labels.values()) >= len(class_names):
            raise click.ClickException(f'{where}: label {max(labels.values())} is out of range for {len(class_names)} class names')
        self._labels = labels
        self.labelled = True

    def iter_items(self):
        for f in self._files:
            yield f, (self._labels[f] if self.labelled else None), f

    def open_image(self, payload):
        return _decode(self._read(payload))

    def probe_modes(self):
        """PIL modes of all images, from their headers only; unreadable ones are left to the main pass."""
        modes = []
        for f in self._files:
            try:
                with PIL.Image.open(io.BytesIO(self._read(f))) as image:
                    modes.append(image.mode)
            except DECODE_ERRORS:
                pass
        return modes


def _folder_source(path, labels_from):
    files = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        rel_root = os.path.relpath(root, path)
        files += [(name if rel_root == '.' else os.path.join(rel_root, name)).replace(os.sep, '/') for name in names]
    def read(fname):
        with open(os.path.join(path, fname), 'rb') as f:
            return f.read()
    return _FileListSource(f'folder {path}', files, read, labels_from)


class _ZipSource(_FileListSource):
    def __init__(self, path, labels_from):
        self._zip = zipfile.ZipFile(path)
        super().__init__(f'zip {path}', self._zip.namelist(), self._zip.read, labels_from)

    def close(self):
        self._zip.close()


class _ArraySource(_Source):
    """Images already decoded into one uint8 array [N, H, W] or [N, H, W, 3] (CIFAR, MNIST)."""

    def __init__(self, description, images, labels, class_names, origin):
        self.description = description
        self._images = images
        self._labels = labels
        self._origin = origin
        self.class_names = class_names
        self.labelled = labels is not None
        self.mode = 'L' if images.ndim == 3 else 'RGB'
        self.num_items = len(images)

    def iter_items(self):
        for i in range(self.num_items):
            yield self._origin(i), (int(self._labels[i]) if self.labelled else None), i

    def open_image(self, payload):
        return PIL.Image.fromarray(self._images[payload])


class _CifarUnpickler(pickle.Unpickler):
    # The CIFAR batches are pickles: allow only what they contain, so a crafted tarball cannot run code.
    ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
               ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f'unexpected object {module}.{name} in a CIFAR batch')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)  # numpy.core is an alias in numpy 2.
            return super().find_class(module, name)


def _cifar_source(path, tar, split, labels_from):
    members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
    def load(name):
        try:
            obj = _CifarUnpickler(tar.extractfile(members[name]), encoding='bytes').load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise click.ClickException(f'{path}: cannot read CIFAR batch {name}: {e}') from None
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if 'batches.meta' in members and 'data_batch_1' in members:
        batches = [f'data_batch_{i}' for i in range(1, 6)] if split == 'train' else ['test_batch']
        meta_name, names_key, labels_key = 'batches.meta', 'label_names', 'labels'
    elif 'meta' in members and 'train' in members:
        batches = [split]
        meta_name, names_key, labels_key = 'meta', 'fine_label_names', 'fine_labels'
    else:
        raise click.ClickException(f'unknown archive {path}: a tarball must be cifar-10-python.tar.gz or cifar-100-python.tar.gz')
    if labels_from in ('json', 'folders'):
        raise click.UsageError(f'--labels-from={labels_from} does not apply to CIFAR; it has its own labels')
    images, labels, origins = [], [], []
    for name in batches:
        if name not in members:
            raise click.ClickException(f'{path}: CIFAR batch {name} is missing')
        batch = load(name)
        data = np.asarray(batch.get('data'))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(batch.get(labels_key, [])) != len(data):
            raise click.ClickException(f'{path}: CIFAR batch {name} does not hold uint8 [N, 3072] data with N {labels_key}')
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels += list(batch[labels_key])
        origins += [f'{name}[{i}]' for i in range(len(data))]
    class_names = [n.decode() if isinstance(n, bytes) else n for n in load(meta_name)[names_key]]
    return _ArraySource(f'{path} ({split} split)', np.concatenate(images), None if labels_from == 'none' else labels,
        None if labels_from == 'none' else class_names, lambda i: f'{path}:{origins[i]}')


def _read_idx(path, magic, ndim):
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
        header = struct.unpack(f'>{1 + ndim}I', data[:4 * (1 + ndim)])
    except (OSError, EOFError, struct.error, zlib.error) as e:
        raise click.ClickException(f'cannot read idx file {path}: {e}') from None
    shape = header[1:]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim))
    if header[0] != magic or body.size != int(np.prod(shape)):
        raise click.ClickException(f'{path} is not an idx file of uint8 with {ndim} dimensions (magic {magic})')
    return body.reshape(shape)


def _mnist_source(path, split, labels_from):
    if os.path.isdir(path):
        prefix = 'train' if split in (None, 'train') else 't10k'
        candidates = [os.path.join(path, f'{prefix}-images-idx3-ubyte{ext}') for ext in ('.gz', '')]
        images_path = next((c for c in candidates if os.path.isfile(c)), None)
        if images_path is None:
            raise click.ClickException(f'{path} has no {prefix}-images-idx3-ubyte.gz for the {split or "train"} split')
    else:
        images_path = path
        file_split = 'test' if os.path.basename(path).startswith('t10k') else 'train'
        if split not in (None, file_split):
            raise click.UsageError(f'--split={split} contradicts {os.path.basename(path)}; pass the {split} images file')
        split = file_split
    if labels_from in ('json', 'folders'):
        raise click.UsageError(f'--labels-from={labels_from} does not apply to MNIST; it has its own labels file')
    images = _read_idx(images_path, magic=2051, ndim=3)
    labels = None
    if labels_from != 'none':
        labels_path = os.path.join(os.path.dirname(images_path), os.path.basename(images_path).replace('images-idx3', 'labels-idx1'))
        if not os.path.isfile(labels_path):
            raise click.ClickException(f'MNIST labels file {labels_path} not found (or pass --labels-from=none)')
        labels = _read_idx(labels_path, magic=2049, ndim=1)
        if len(labels) != len(images):
            raise click.ClickException(f'{labels_path} has {len(labels)} labels for {len(images)} images')
    return _ArraySource(f'{images_path}', images, labels, None, lambda i: f'{images_path}[{i}]')


class _LmdbSource(_Source):
    """LSUN: an LMDB whose values are encoded images. Always converted to RGB (LSUN is a colour dataset)."""

    mode = 'RGB'

    def __init__(self, path, labels_from):
        try:
            import lmdb
        except ImportError:
            raise click.ClickException(f'{path} is an LMDB database (LSUN); reading it needs the lmdb package: '
                'pip install lmdb') from None
        if labels_from in ('json', 'folders'):
            raise click.UsageError(f'--labels-from={labels_from} does not apply to an LMDB database')
        self.description = f'LMDB {path}'
        self._path = path
        self._env = lmdb.open(path, readonly=True, lock=False, readahead=False, max_readers=1)
        with self._env.begin(write=False) as txn:
            self.num_items = txn.stat()['entries']
        if self.num_items == 0:
            raise click.ClickException(f'no images found in {self.description}')

    def iter_items(self):
        with self._env.begin(write=False) as txn:
            for key, value in txn.cursor():
                yield f'{self._path}[{key.decode(errors="replace")}]', None, bytes(value)

    def open_image(self, payload):
        return _decode(payload)

    def close(self):
        self._env.close()


def open_source(path, split, labels_from):
    if not os.path.exists(path):
        raise click.BadParameter(f'{path} does not exist', param_hint='--source')
    is_mnist_file = re.search(r'-images-idx3-ubyte(\.gz)?$', os.path.basename(path)) is not None
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if 'data.mdb' in names:
            kind = 'lmdb'
        elif any(re.fullmatch(r'(train|t10k)-images-idx3-ubyte(\.gz)?', name) for name in names):
            kind = 'mnist'
        else:
            kind = 'folder'
    elif is_mnist_file:
        kind = 'mnist'
    elif zipfile.is_zipfile(path):
        kind = 'zip'
    elif tarfile.is_tarfile(path):
        kind = 'cifar'
    else:
        raise click.ClickException(f'unknown source type {path}: expected a folder, a .zip of images, a CIFAR python '
            'tarball, an MNIST *-images-idx3-ubyte.gz file or an LSUN LMDB folder')
    if split is not None and kind not in ('cifar', 'mnist'):
        raise click.UsageError('--split applies only to CIFAR and MNIST sources')
    if kind == 'folder':
        return _folder_source(path, labels_from)
    if kind == 'zip':
        return _ZipSource(path, labels_from)
    if kind == 'cifar':
        try:
            with tarfile.open(path) as tar:
                return _cifar_source(path, tar, split or 'train', labels_from)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise click.ClickException(f'cannot read {path} ({type(e).__name__}: {e}); an interrupted download?') from None
    if kind == 'mnist':
        return _mnist_source(path, split, labels_from)
    return _LmdbSource(path, labels_from)

#----------------------------------------------------------------------------
# Pixel conversion and geometry.

def to_uint8(image):
    """A decoded PIL image as uint8 [H, W] (grayscale) or [H, W, 3]; see docs/datasets.md for the rules."""
    mode = image.mode
    if mode.startswith('I'):
        # 16-bit (and 32-bit integer) grayscale keeps its high byte, as Pillow does for 16-bit RGB PNGs.
        return (np.clip(np.asarray(image).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    if mode == 'P':
        image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
    elif mode == 'PA':
        image = image.convert('RGBA')
    elif mode == '1':
        image = image.convert('L')
    elif mode == 'La':
        image = image.convert('LA')
    elif mode == 'RGBa':
        image = image.convert('RGBA')
    elif mode in ('CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX'):
        image = image.convert('RGB')
    mode = image.mode
    if mode not in ('L', 'RGB', 'LA', 'RGBA'):
        raise ValueError(f'unsupported image mode {mode}')
    array = np.asarray(image)
    if mode in ('LA', 'RGBA'):
        # Composite onto white: out = (c * a + 255 * (255 - a)) / 255, rounded.
        color = array[..., :-1].astype(np.int64)
        alpha = array[..., -1:].astype(np.int64)
        array = ((color * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        if mode == 'LA':
            array = array[..., 0]
    return array


def _parse_resolution(_ctx, _param, value):
    if value is None:
        return None
    match = re.fullmatch(r'(\d+)(?:x(\d+))?', value.strip())
    if match is None or int(match.group(1)) == 0 or (match.group(2) is not None and int(match.group(2)) == 0):
        raise click.BadParameter(f'{value!r} is not WxH with positive integers (e.g. 256x256)')
    width = int(match.group(1))
    return width, int(match.group(2) or width)


class _Geometry:
    """Crops and resizes each image to the output size, or checks that every image already has it."""

    def __init__(self, resolution, transform, resize_filter):
        if transform is not None and resolution is None:
            raise click.UsageError(f'--transform={transform} needs --resolution=WxH')
        if resolution is not None and resolution[0] != resolution[1] and transform != 'center-crop-wide':
            raise click.UsageError(f'--resolution={resolution[0]}x{resolution[1]} is not square; training needs square '
                'images (use NxN, or --transform=center-crop-wide for letterboxed WxH content)')
        if transform == 'center-crop-wide' and resolution[0] < resolution[1]:
            raise click.UsageError('--transform=center-crop-wide needs W >= H in --resolution=WxH')
        self.resolution = resolution
        self.transform = transform
        self.filter = {'box': PIL.Image.BOX, 'lanczos': PIL.Image.LANCZOS}[resize_filter]
        self.first = None  # (origin, width, height) of the first image, when sizes must all match.

    def _resize(self, array, width, height):
        if array.shape[1] == width and array.shape[0] == height:
            return array
        return np.asarray(PIL.Image.fromarray(array).resize((width, height), self.filter))

    def __call__(self, array, origin):
        height, width = array.shape[:2]
        if self.resolution is None:
            if self.first is None:
                if width != height:
                    raise click.ClickException(f'{origin} is {width}x{height}, not square; use '
                        '--transform=center-crop --resolution=NxN')
                self.first = (origin, width, height)
            elif (width, height) != self.first[1:]:
                raise click.ClickException(f'{origin} is {width}x{height} but {self.first[0]} is '
                    f'{self.first[1]}x{self.first[2]}; use --resolution=NxN (and --transform=center-crop for non-square images)')
            return array
        out_w, out_h = self.resolution
        if self.transform is None:
            return self._resize(array, out_w, out_h)
        if self.transform == 'center-crop':
            side = min(width, height)
            top, left = (height - side) // 2, (width - side) // 2
            return self._resize(array[top:top + side, left:left + side], out_w, out_h)
        # center-crop-wide: the largest centred W:H window, resized, then letterboxed into a W x W square.
        crop_w, crop_h = min(width, round(height * out_w / out_h)), min(height, round(width * out_h / out_w))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        array = self._resize(array[top:top + crop_h, left:left + crop_w], out_w, out_h)
        canvas = np.zeros((out_w, out_w) + array.shape[2:], dtype=np.uint8)
        pad = (out_w - out_h) // 2
        canvas[pad:pad + out_h] = array
        return canvas

#----------------------------------------------------------------------------
# Output: a zip or folder written under a temporary name, renamed into place at the end.

def check_dest(dest, overwrite):
    """Refuses a --dest that exists (without --overwrite) or that must not be replaced."""
    if not os.path.lexists(dest):
        return
    if not overwrite:
        raise click.ClickException(f'{dest} already exists; pass --overwrite to replace it')
    is_zip = dest.lower().endswith('.zip')
    if is_zip != os.path.isfile(dest):
        raise click.ClickException(f'{dest} exists and is not a {"zip file" if is_zip else "folder"}; remove it first')
    if not is_zip and os.listdir(dest) and not os.path.isfile(os.path.join(dest, 'dataset.json')):
        raise click.ClickException(f'refusing to replace folder {dest}: it has no dataset.json, so '
            'dataset_tool.py did not make it')


class _Output:
    def __init__(self, dest):
        self.dest = dest
        self.is_zip = dest.lower().endswith('.zip')
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        self.tmp = os.path.join(parent, f'.{os.path.basename(os.path.normpath(dest))}.partial-{os.getpid()}')
        if self.is_zip:
            self._zip = zipfile.ZipFile(self.tmp, 'w', compression=zipfile.ZIP_STORED)
        else:
            os.makedirs(self.tmp)

    def write(self, fname, data):
        if self.is_zip:
            self._zip.writestr(fname, data)
        else:
            path = os.path.join(self.tmp, fname)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)

    def commit(self):
        if self.is_zip:
            self._zip.close()
            os.replace(self.tmp, self.dest)
        elif os.path.lexists(self.dest):
            trash = self.tmp + '-old'
            os.rename(self.dest, trash)
            os.rename(self.tmp, self.dest)
            shutil.rmtree(trash)
        else:
            os.rename(self.tmp, self.dest)

    def discard(self):
        if self.is_zip:
            self._zip.close()
            os.remove(self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def encode_png(array):
    buf = io.BytesIO()
    # Level 0: decoding speed matters more during training than file size.
    PIL.Image.fromarray(array).save(buf, format='png', compress_level=0)
    return buf.getvalue()

#----------------------------------------------------------------------------

def _convert(source, output, geometry, channels, max_images, strict):
    """Writes the images and dataset.json; returns (written, skipped [(origin, reason)], shape)."""
    labels, skipped, shape, idx = [], [], None, 0
    total = source.num_items if max_images is None else min(max_images, source.num_items)
    with tqdm(total=total, unit='img', desc='Converting') as bar:
        for origin, label, payload in source.iter_items():
            if idx == max_images:
                break
            try:
                array = to_uint8(source.open_image(payload))
            except DECODE_ERRORS as e:
                reason = 'not a recognised image format' if isinstance(e, PIL.UnidentifiedImageError) else f'{type(e).__name__}: {e}'
                if strict:
                    raise click.ClickException(f'cannot read {origin} ({reason}); --strict stops at the first '
                        'unreadable image, without it the image would be skipped and reported') from None
                skipped.append((origin, reason))
                continue
            if array.ndim == 3 and channels == 1:
                raise click.ClickException(f'{origin} turned out to be colour after the scan found only grayscale images')
            if array.ndim == 2 and channels == 3:
                array = np.repeat(array[:, :, np.newaxis], 3, axis=2)
            array = geometry(array, origin)
            fname = f'{idx // 1000:05d}/img{idx:08d}.png'
            output.write(fname, encode_png(array))
            if label is not None:
                labels.append([fname, label])
            shape = array.shape
            idx += 1
            bar.update(1)
    if idx == 0:
        raise click.ClickException(f'no readable images in {source.description} ({len(skipped)} skipped, the first: '
            f'{skipped[0][0]}: {skipped[0][1]})')
    meta = dict(labels=labels if source.labelled else None, class_names=source.class_names)
    output.write('dataset.json', json.dumps(meta).encode())
    return idx, skipped, shape


@click.command()
@click.option('--source', required=True, metavar='PATH', help='Folder or zip of images, CIFAR tarball, MNIST idx file/folder, LSUN LMDB folder.')
@click.option('--dest', required=True, metavar='PATH', help='Output: a .zip file, or a folder for any other name.')
@click.option('--max-images', type=click.IntRange(min=1), help='Write at most this many images.')
@click.option('--resolution', metavar='WxH', callback=_parse_resolution, help='Output size, e.g. 256x256.')
@click.option('--width', type=click.IntRange(min=1), help='Output width (StyleGAN2-ADA\'s spelling; with --height, same as --resolution=WxH).')
@click.option('--height', type=click.IntRange(min=1), help='Output height (see --width).')
@click.option('--transform', type=click.Choice(['center-crop', 'center-crop-wide']), help='Crop before resizing.')
@click.option('--resize-filter', type=click.Choice(['box', 'lanczos']), default='lanczos', show_default=True)
@click.option('--labels-from', type=click.Choice(['auto', 'json', 'folders', 'none']), default='auto', show_default=True,
    help='auto: the source\'s own labels (dataset.json, CIFAR, MNIST); folders: sub-folder names as classes.')
@click.option('--split', type=click.Choice(['train', 'test']), help='CIFAR/MNIST split [default: train].')
@click.option('--strict', is_flag=True, help='Stop at the first unreadable image instead of skipping it.')
@click.option('--overwrite', is_flag=True, help='Replace an existing --dest.')
def main(source, dest, max_images, resolution, width, height, transform, resize_filter, labels_from, split, strict, overwrite):
    """Convert images to a dataset zip (PNGs + dataset.json) for train.py and calc_metrics.py.

    \b
    python dataset_tool.py --source=cifar-10-python.tar.gz --dest=datasets/cifar10.zip
    python dataset_tool.py --source=cifar-10-python.tar.gz --split=test --dest=datasets/cifar10-test.zip
    python dataset_tool.py --source=photos/ --dest=datasets/obama.zip --transform=center-crop --resolution=256x256
    """
    if width is not None or height is not None:
        if resolution is not None:
            raise click.UsageError('give the output size either as --resolution=WxH or as --width/--height, not both')
        if width is None or height is None:
            raise click.UsageError('--width and --height go together (or use --resolution=WxH)')
        resolution = (width, height)
    geometry = _Geometry(resolution, transform, resize_filter)
    if os.path.isdir(source) and not dest.lower().endswith('.zip'):
        if os.path.commonpath([os.path.abspath(source), os.path.abspath(dest)]) == os.path.abspath(source):
            raise click.UsageError('--dest must not lie inside --source (its images would be read back next time)')
    check_dest(dest, overwrite)
    src = open_source(source, split, labels_from)
    try:
        mode = src.mode
        if mode is None:
            modes = src.probe_modes()
            mode = 'L' if modes and all(m in GRAY_MODES for m in modes) else 'RGB'
        channels = 1 if mode == 'L' else 3
        output = _Output(dest)
        try:
            written, skipped, shape = _convert(src, output, geometry, channels, max_images, strict)
            output.commit()
        except BaseException:
            output.discard()
            raise
    finally:
        src.close()

    click.echo(f'Wrote {written} images to {dest} from {src.description}; skipped {len(skipped)} unreadable images.')
    click.echo(f'  resolution {shape[1]}x{shape[0]}, {channels} channel{"s" if channels > 1 else ""}, '
        f'labels: {"yes" if src.labelled else "no"}, '
        f'classes: {len(src.class_names) if src.class_names is not None else "none"}')
    if skipped:
        click.echo(f'Skipped images (first {min(len(skipped), NUM_REPORTED_SKIPS)} of {len(skipped)}):')
        for origin, reason in skipped[:NUM_REPORTED_SKIPS]:
            click.echo(f'  {origin}: {reason}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
