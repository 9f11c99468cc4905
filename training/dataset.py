"""Image datasets for training and metrics: a folder or zip of images plus an optional dataset.json.

The layout is the one dataset_tool.py writes (numbered sub-folders of PNGs and a dataset.json with
"labels" and "class_names"), but any folder or zip of same-sized RGB or grayscale images works.
"""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import torch

import dnnlib

try:
    import pyspng
except ImportError:
    pyspng = None

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')

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
            self._all_fnames = []
            for root, _dirs, files in os.walk(path):
                rel_root = os.path.relpath(root, path)
                for fname in files:
                    rel = fname if rel_root == '.' else os.path.join(rel_root, fname)
                    self._all_fnames.append(rel.replace(os.sep, '/'))
        elif self._file_ext(path) == '.zip':
            if not os.path.isfile(path):
                raise ValueError(f'dataset not found: {path}')
            self._type = 'zip'
            self._all_fnames = self._get_zipfile().namelist()
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
        with self._open_file(fname) as f:
            data = f.read()
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

#----------------------------------------------------------------------------
