"""Image datasets for training and metrics: a folder or zip of images plus an optional dataset.json.

The layout is the one dataset_tool.py writes (numbered sub-folders of PNGs and a dataset.json with
"labels" and "class_names"), but any folder or zip of same-sized RGB or grayscale images works.
"""

import hashlib
import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np
import PIL.Image
import torch

import dnnlib

try:
    import pyspng
except ImportError:
    pyspng = None

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
PNG_HEADER_BYTES = 26       # Signature (8), IHDR length and type (8), width, height (4 + 4), bit depth, colour type.
_PNG_CHANNELS = {0: 1, 2: 3}  # PNG colour type -> channels, for the two that training reads.
_PNG_KINDS = {3: 'a palette', 4: 'a grayscale+alpha', 6: 'an RGBA'}
_ONLY_L_RGB = 'only 8-bit grayscale and RGB are read here (dataset_tool.py converts the others)'
# Errors a damaged zip or zip member raises besides OSError; the zipfile module has no common base class.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, ValueError)

def _raise_walk_error(err):
    # os.walk skips unreadable folders silently by default, which would hide images.
    raise OSError(f'cannot read folder {err.filename}: {err.strerror}') from None

def _walk_files(path, skip_hidden):
    """Relative '/'-separated names of the files under path; skip_hidden drops names starting with '.'."""
    for root, dirs, files in os.walk(path, onerror=_raise_walk_error):
        if skip_hidden:
            dirs[:] = [d for d in dirs if not d.startswith('.')]
        rel_root = os.path.relpath(root, path)
        for fname in files:
            if not (skip_hidden and fname.startswith('.')):
                yield (fname if rel_root == '.' else os.path.join(rel_root, fname)).replace(os.sep, '/')

def _file_sha256(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()

def _shape_text(shape):
    channels, height, width = shape
    return f'{width}x{height} ' + {1: 'gray', 3: 'RGB'}.get(channels, f'{channels}-channel')

#----------------------------------------------------------------------------

class Dataset(torch.utils.data.Dataset):
    """Index bookkeeping shared by all image datasets: max_size / subset selection, x-flips, labels.

    Subclasses implement _load_raw_image(raw_idx) -> uint8 CHW array and _load_raw_labels() -> array
    of int class indices [N] or float label vectors [N, D], or None when the dataset has no labels.
    """

    def __init__(self,
        name,                   # Name of the dataset (used in logs and metric caches).
        raw_shape,              # Shape of the raw image data [N, C, H, W].
        max_size    = None,     # Keep at most this many images, a random choice seeded by random_seed.
        use_labels  = False,    # Return the labels (otherwise all-zero label vectors of length 0).
        xflip       = False,    # Append a mirrored copy of every image (doubles the length).
        random_seed = 0,        # Seed of the max_size choice.
        subset      = None,     # Use a random subset of this many images, seeded by subset_seed.
        subset_seed = 0,        # Seed of the subset choice.
        class_names = None,     # List of class names, or None.
    ):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._class_names = None if class_names is None else list(class_names)
        self._raw_labels = None
        self._label_shape = None

        num_raw = self._raw_shape[0]
        raw_idx = np.arange(num_raw, dtype=np.int64)
        self._subset_indices = None
        if subset is not None:
            if not 1 <= int(subset) <= num_raw:
                raise ValueError(f'subset={subset} is out of range: the dataset {name!r} has {num_raw} images')
            chosen = np.random.RandomState(subset_seed).choice(num_raw, size=int(subset), replace=False)
            raw_idx = np.sort(chosen)
            self._subset_indices = raw_idx.tolist()
        if max_size is not None:
            if int(max_size) < 1:
                raise ValueError(f'max_size must be at least 1, got {max_size}')
            if raw_idx.size > max_size:
                chosen = np.random.RandomState(random_seed).permutation(raw_idx.size)[:int(max_size)]
                raw_idx = raw_idx[np.sort(chosen)]

        # Mirrored copies are separate entries, so an epoch sees both orientations.
        self._xflip = np.zeros(raw_idx.size, dtype=np.uint8)
        if xflip:
            raw_idx = np.concatenate([raw_idx, raw_idx])
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])
        self._raw_idx = raw_idx

    def _get_raw_labels(self):
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            labels = np.asarray(labels)
            if labels.shape[0] != self._raw_shape[0]:
                raise ValueError(f'{self._name}: {labels.shape[0]} labels for {self._raw_shape[0]} images')
            if labels.ndim == 1:
                if not np.issubdtype(labels.dtype, np.integer):
                    raise ValueError(f'{self._name}: class labels must be integers, got {labels.dtype}')
                if labels.size and labels.min() < 0:
                    raise ValueError(f'{self._name}: class labels must be non-negative, got {labels.min()}')
                labels = labels.astype(np.int64)
            elif labels.ndim == 2:
                labels = labels.astype(np.float32)
            else:
                raise ValueError(f'{self._name}: labels must be class indices [N] or vectors [N, D], got shape {labels.shape}')
            self._raw_labels = labels
        return self._raw_labels

    def close(self):
        pass

    def _load_raw_image(self, raw_idx):
        raise NotImplementedError

    def _load_raw_labels(self):
        raise NotImplementedError

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        image = self._load_raw_image(int(self._raw_idx[idx]))
        if list(image.shape) != self.image_shape:
            raise ValueError(f'{self._name}: image {self._raw_idx[idx]} has shape {list(image.shape)}, '
                f'but the dataset is {self.image_shape}; rebuild it with dataset_tool.py --resolution=WxH')
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image), self.get_label(idx)

    def get_label(self, idx):
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.ndim == 0:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    def get_details(self, idx):
        return dnnlib.EasyDict(
            raw_idx = int(self._raw_idx[idx]),
            xflip   = bool(self._xflip[idx]),
            raw_label = self._get_raw_labels()[self._raw_idx[idx]].copy(),
        )

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._raw_shape[1:])

    @property
    def num_channels(self):
        return self.image_shape[0]

    @property
    def resolution(self):
        _, height, width = self.image_shape
        if height != width:
            raise ValueError(f'{self._name}: images are {width}x{height}; training needs square images '
                '(rebuild with dataset_tool.py --transform=center-crop --resolution=NxN)')
        return height

    @property
    def label_shape(self):
        if self._label_shape is None:
            labels = self._get_raw_labels()
            if labels.ndim == 1:
                # Prefer the class list, so a subset that misses the last class keeps the full width.
                num_classes = int(labels.max()) + 1 if labels.size else 0
                if self._class_names is not None:
                    if num_classes > len(self._class_names):
                        raise ValueError(f'{self._name}: label {num_classes - 1} is out of range for '
                            f'{len(self._class_names)} class names')
                    num_classes = len(self._class_names)
                self._label_shape = [num_classes]
            else:
                self._label_shape = list(labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self):
        return self.label_shape[0]

    @property
    def has_labels(self):
        return any(dim != 0 for dim in self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().ndim == 1

    @property
    def class_names(self):
        return None if self._class_names is None else list(self._class_names)

    @property
    def subset_indices(self):
        """Sorted raw indices chosen by `subset`, or None when no subset was asked for."""
        return None if self._subset_indices is None else list(self._subset_indices)

#----------------------------------------------------------------------------

class ImageFolderDataset(Dataset):
    """Images in a folder (searched recursively) or a zip file, with labels from dataset.json."""

    def __init__(self,
        path,                   # Folder or zip file.
        resolution  = None,     # Expected resolution; None = take it from the data.
        name        = None,     # Dataset name; None = the file or folder name.
        **super_kwargs,         # Arguments of Dataset: max_size, use_labels, xflip, random_seed, subset, subset_seed.
    ):
        self._path = path
        self._zipfile = None
        self._zipfile_pid = None

        if os.path.isdir(path):
            self._type = 'dir'
            self._all_fnames = list(_walk_files(path, skip_hidden=False))
        elif self._file_ext(path) == '.zip':
            if not os.path.isfile(path):
                raise ValueError(f'dataset not found: {path}')
            self._type = 'zip'
            try:
                self._all_fnames = self._get_zipfile().namelist()
            except _ZIP_ERRORS as e:
                raise ValueError(f'{path}: not a readable zip file ({e})') from None
            except OSError as e:
                raise OSError(f'{path}: cannot read the zip file ({e.strerror or e})') from None
        else:
            raise ValueError(f'dataset path must be a folder or a .zip file: {path}')

        self._image_fnames = sorted(f for f in self._all_fnames if self._file_ext(f) in IMAGE_EXTENSIONS
            and not any(part.startswith('.') or part == '__MACOSX' for part in f.split('/')))
        if len(self._image_fnames) == 0:
            raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) found in {path}')

        meta = self._load_meta()
        if name is None:
            name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        first = self._load_raw_image(0)
        raw_shape = [len(self._image_fnames)] + list(first.shape)
        if resolution is not None and (raw_shape[2] != resolution or raw_shape[3] != resolution):
            raise ValueError(f'{path}: images are {raw_shape[3]}x{raw_shape[2]} ({self._image_fnames[0]}), '
                f'but resolution={resolution} was asked for')
        self._meta_labels = meta.get('labels')
        super().__init__(name=name, raw_shape=raw_shape, class_names=meta.get('class_names'), **super_kwargs)

    @staticmethod
    def _file_ext(fname):
        return os.path.splitext(fname)[1].lower()

    def _get_zipfile(self):
        # One handle per process: a handle inherited through fork shares its file offset with the parent.
        if self._zipfile is None or self._zipfile_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname):
        if self._type == 'dir':
            return open(os.path.join(self._path, fname), 'rb')
        return self._get_zipfile().open(fname, 'r')

    def _read_file(self, fname, size=-1):
        """The first `size` bytes (all for -1) of one file; a damaged zip member gives a ValueError naming it."""
        try:
            with self._open_file(fname) as f:
                return f.read(size)
        except (_ZIP_ERRORS + (RuntimeError,)) as e:  # RuntimeError: an encrypted member.
            raise ValueError(f'{self._path}: {fname} cannot be read from the zip ({e})') from None

    def close(self):
        if self._zipfile is not None and self._zipfile_pid == os.getpid():
            self._zipfile.close()
        self._zipfile = None
        self._zipfile_pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_zipfile'] = None
        state['_zipfile_pid'] = None
        return state

    def __del__(self):
        try:
            self.close()
        except Exception: # Interpreter shutdown may have torn down zipfile already.
            pass

    def _load_meta(self):
        if 'dataset.json' not in self._all_fnames:
            return {}
        with self._open_file('dataset.json') as f:
            try:
                meta = json.load(f)
            except ValueError as e:
                raise ValueError(f'{self._path}: dataset.json is not valid JSON: {e}') from None
        if not isinstance(meta, dict):
            raise ValueError(f'{self._path}: dataset.json must hold an object with "labels" and "class_names"')
        class_names = meta.get('class_names')
        if class_names is not None and not (isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)):
            raise ValueError(f'{self._path}: dataset.json "class_names" must be a list of strings or null')
        return meta

    def _load_raw_image(self, raw_idx):
        fname = self._image_fnames[raw_idx]
        data = self._read_file(fname)
        if pyspng is not None and self._file_ext(fname) == '.png':
            image = pyspng.load(data)
        else:
            with PIL.Image.open(io.BytesIO(data)) as pil_image:
                if pil_image.mode not in ('L', 'RGB'):
                    raise ValueError(f'{self._path}: {fname} has PIL mode {pil_image.mode}; only 8-bit grayscale '
                        'and RGB are read here (dataset_tool.py converts the others)')
                image = np.array(pil_image)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if image.dtype != np.uint8 or image.shape[2] not in (1, 3):
            raise ValueError(f'{self._path}: {fname} is not 8-bit grayscale or RGB (shape {list(image.shape)}, '
                f'{image.dtype}); rebuild the dataset with dataset_tool.py')
        return image.transpose(2, 0, 1)

    def _load_raw_labels(self):
        labels = self._meta_labels
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(e, list) and len(e) == 2 for e in labels):
            raise ValueError(f'{self._path}: dataset.json "labels" must be a list of [file name, label] pairs or null')
        by_name = dict(labels)
        missing = [f for f in self._image_fnames if f not in by_name]
        if missing or len(labels) != len(self._image_fnames):
            example = f'; first image without a label: {missing[0]}' if missing else ''
            raise ValueError(f'{self._path}: dataset.json has {len(labels)} labels for {len(self._image_fnames)} '
                f'images{example}')
        values = [by_name[f] for f in self._image_fnames]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return np.array(values, dtype=np.int64)
        if all(isinstance(v, list) for v in values):
            return np.array(values, dtype=np.float32)
        raise ValueError(f'{self._path}: dataset.json labels must all be class indices or all be lists of numbers')

    def check_images(self):
        """Raise ValueError unless every image (all of them, whatever subset or max_size) is 8-bit grayscale or
        RGB of one width, height and channel count: the first image's, as decoded by __init__.

        Only headers are read (26 bytes of a PNG, PIL's lazy open for the rest), so 50k PNGs take seconds and
        train.py can refuse the data before it creates a run directory.
        """
        shapes = {}  # (C, H, W) -> [count, first file name], in file-name order.
        for fname in self._image_fnames:
            shapes.setdefault(self._header_shape(fname), [0, fname])[0] += 1
        expected = tuple(self._raw_shape[1:])
        if list(shapes) != [expected]:
            raise ValueError(self._shapes_message(shapes, expected))

    def _shapes_message(self, shapes, expected):
        # The shape training would use leads; the others follow, most common first.
        order = sorted(shapes, key=lambda shape: (shape != expected, -shapes[shape][0]))
        parts = []
        for i, shape in enumerate(order):
            count, first = shapes[shape]
            noun = ('images ' if count > 1 else 'image ') if i == 0 else ''
            where = f'first: {first}' if count > 1 else first
            parts.append(f'{count} {noun}{"are" if count > 1 else "is"} {_shape_text(shape)} ({where})')
        text = ', '.join(parts)
        if expected not in shapes:  # The headers disagree with what __init__ decoded: say both.
            text += f', but {self._image_fnames[0]} decodes to {_shape_text(expected)}'
        if len({shape[1:] for shape in shapes} | {expected[1:]}) > 1:
            fix = 'rebuild it with dataset_tool.py --resolution=WxH'
        else:
            fix = 'rebuild it with dataset_tool.py, which gives every image the same channel count'
        return f'{self._path}: images differ in shape: {text}; {fix}'

    def _header_shape(self, fname):
        """(C, H, W) of one image from its header alone, never decoding pixels; ValueError if unreadable."""
        if self._file_ext(fname) == '.png':
            return self._png_header_shape(fname, self._read_file(fname, PNG_HEADER_BYTES))
        try:
            with self._open_file(fname) as f, PIL.Image.open(f) as image:  # Lazy: parses the header only.
                mode, (width, height) = image.mode, image.size
        except (OSError, SyntaxError) + _ZIP_ERRORS as e:
            raise ValueError(f'{self._path}: {fname} is not a readable image ({e})') from None
        if mode not in ('L', 'RGB'):
            raise ValueError(f'{self._path}: {fname} has PIL mode {mode}; {_ONLY_L_RGB}')
        return (1 if mode == 'L' else 3, height, width)

    def _png_header_shape(self, fname, head):
        if len(head) < PNG_HEADER_BYTES or head[:8] != b'\x89PNG\r\n\x1a\n':
            raise ValueError(f'{self._path}: {fname} is not a readable PNG (no PNG signature)')
        if head[8:16] != b'\x00\x00\x00\x0dIHDR':  # The spec puts a 13-byte IHDR first.
            raise ValueError(f'{self._path}: {fname} is not a readable PNG (no IHDR chunk after the signature)')
        width, height, bit_depth, color_type = struct.unpack('>IIBB', head[16:26])
        if width == 0 or height == 0:
            raise ValueError(f'{self._path}: {fname} is not a readable PNG (size {width}x{height})')
        if color_type not in _PNG_CHANNELS:
            kind = _PNG_KINDS.get(color_type, f'a colour type {color_type}')
            raise ValueError(f'{self._path}: {fname} is {kind} PNG; {_ONLY_L_RGB}')
        if bit_depth != 8:
            raise ValueError(f'{self._path}: {fname} is a {bit_depth}-bit PNG; {_ONLY_L_RGB}')
        return (_PNG_CHANNELS[color_type], height, width)

    def fingerprint(self):
        """'sha256:<hex>' of the dataset's content, not its path: tells resume whether the data is the run's.

        A zip hashes its central directory only, nothing decompressed: the sorted (name, CRC-32, size) of every
        file member, dataset.json included. A folder hashes the sorted (relative path, size, SHA-256 of the
        bytes) of every file whose name does not start with '.'. The schemes differ, so a zip and a folder of
        the same images have different fingerprints.
        """
        if self._type == 'zip':
            entries = [(info.filename, info.CRC, info.file_size) for info in self._get_zipfile().infolist()
                if not info.is_dir()]
        else:
            entries = []
            for rel in _walk_files(self._path, skip_hidden=True):
                full = os.path.join(self._path, rel)
                if os.path.isfile(full):  # Not sockets, pipes or broken links.
                    entries.append((rel, os.path.getsize(full), _file_sha256(full)))
        digest = hashlib.sha256()
        for entry in sorted(entries):
            digest.update(json.dumps(entry).encode() + b'\n')  # JSON: unambiguous for any file name.
        return f'sha256:{digest.hexdigest()}'

#----------------------------------------------------------------------------

def open_checked(dataset_kwargs, flag='--data'):
    """Open a dataset and read every image's header: mixed shapes or unreadable files stop here, before any run
    directory exists, rather than mid-training. Errors are one ValueError line that starts with `flag`."""
    try:
        dataset = dnnlib.util.construct_class_by_name(**dataset_kwargs)
        dataset.check_images()
        return dataset
    except (OSError, ValueError) as err:
        raise ValueError(f'{flag}: {err}') from None

#----------------------------------------------------------------------------
