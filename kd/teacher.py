"""The frozen CLIP teacher of KD-DLGAN, built through open_clip.

The CLIP model is loaded once per process (module-level cache) and never trained: eval mode,
requires_grad False. Precision is an argument: 'auto' (the default) is fp16 on CUDA and fp32
elsewhere; 'fp16' and 'bf16' also run on the CPU, which is how the tests cover the GPU branch.
CLIPTeacher wraps it with the input mapping from D's augmented [-1, 1] batch to CLIP's input
(resize and normalisation).
"""

import contextlib
import os
import socket
import urllib.parse
import warnings

import torch
import torch.nn.functional as F

import open_clip
from open_clip import pretrained as open_clip_pretrained

from kd.options import CLIP_NORMS
from kd.options import PRECISIONS
from kd.options import RESIZE_MODES

_model_cache = dict()   # (model, pretrained, weights, random, device, cache_dir, precision) -> _LoadedCLIP
_said_once = set()      # Messages already given in this process.

#----------------------------------------------------------------------------

class CLIPWeightsUnavailableError(RuntimeError):
    """The CLIP weights are neither cached nor downloadable (offline) nor given as a local file."""

def _say_once(key, message, log):
    if key in _said_once:
        return
    _said_once.add(key)
    if log is not None:
        log(message)
    warnings.warn(message, stacklevel=3)

def _check_option(name, value, choices):
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')
    return value

def _to_2tuple(size):
    return tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))

def default_cache_dir():
    """KD_CLIP_CACHE when set, else None: open_clip's own default (the Hugging Face hub cache)."""
    return os.environ.get('KD_CLIP_CACHE') or None

def _cache_description(cache_dir):
    if cache_dir is not None:
        return cache_dir
    try:
        from huggingface_hub import constants
        return f'{constants.HF_HUB_CACHE} (Hugging Face hub cache; ~/.cache/clip for direct URL downloads)'
    except ImportError:
        return '~/.cache/clip'

#----------------------------------------------------------------------------
# Fetching weights. The Hugging Face hub retries an unreachable server for about a minute before
# failing, so we look in the local cache first and probe the server before going online.

def _env_offline():
    value = os.environ.get('HF_HUB_OFFLINE') or os.environ.get('TRANSFORMERS_OFFLINE') or ''
    if value.strip().upper() in ('1', 'ON', 'YES', 'TRUE'):
        return True
    try:
        from huggingface_hub import constants
        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False

@contextlib.contextmanager
def _hub_cache_only():
    """Make the Hugging Face hub answer from its local cache only (it reads the flag per request)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved

def _download_host(tag_cfg):
    if tag_cfg.get('hf_hub') and open_clip_pretrained.has_hf_hub():
        from huggingface_hub import constants
        return urllib.parse.urlparse(constants.ENDPOINT).hostname
    return urllib.parse.urlparse(tag_cfg.get('url', '')).hostname

def _reachable(host, timeout=5.0):
    if any(os.environ.get(name) for name in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')):
        return True  # Behind a proxy a direct probe says nothing; let the download decide.
    if not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False

def cached_weights(tag_cfg, cache_dir):
    """The weights file from the local cache, or None; never touches the network."""
    if 'file' in tag_cfg:
        return tag_cfg['file']
    if tag_cfg.get('hf_hub') and open_clip_pretrained.has_hf_hub():
        try:
            with _hub_cache_only():
                return open_clip_pretrained.download_pretrained(tag_cfg, cache_dir=cache_dir) or None
        except Exception:  # Not cached.
            return None
    url = tag_cfg.get('url', '')
    path = os.path.join(cache_dir or os.path.expanduser('~/.cache/clip'), os.path.basename(url))  # open_clip's layout.
    return path if url and os.path.isfile(path) else None

def _fetch_weights(model, pretrained, tag_cfg, cache_dir):
    """Local path of the weights for an open_clip pretrained tag, from the cache or downloaded."""
    path = cached_weights(tag_cfg, cache_dir)
    if path:
        return path
    if _env_offline():
        reason = 'HF_HUB_OFFLINE is set'
    elif not _reachable(_download_host(tag_cfg)):
        reason = f'cannot reach {_download_host(tag_cfg)}'
    else:
        try:
            path = open_clip_pretrained.download_pretrained(tag_cfg, cache_dir=cache_dir)
            if path:
                return path
            reason = 'open_clip returned no file'
        except Exception as e:
            reason = f'{type(e).__name__}: {e}'
    raise CLIPWeightsUnavailableError(
        f'CLIP weights for model {model!r}, pretrained {pretrained!r} are not available: not found in the cache '
        f'folder {_cache_description(cache_dir)} and not downloadable ({reason}). Either pass a local weights file '
        f'with --kd-clip-weights=FILE (the demo reads the KD_CLIP_WEIGHTS environment variable), or download them '
        f'once with network access into that cache folder (KD_CLIP_CACHE chooses it).')

#----------------------------------------------------------------------------

class _LoadedCLIP:
    """One frozen open_clip model and what the teacher needs to feed it."""

    def __init__(self, model, tokenizer, embed_dim, image_size, mean, std, dtype, device):
        self.model = model
        self.tokenizer = tokenizer
        self.embed_dim = embed_dim
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        self.dtype = dtype
        self.device = device
        self.text_cache = dict()  # tuple of prompts -> [K, d] float32

def resolve_precision(precision, device):
    """open_clip's precision name for 'auto' | 'fp32' | 'fp16' | 'bf16' on this device."""
    _check_option('CLIP precision', precision, PRECISIONS)
    if precision == 'auto':
        return 'fp16' if torch.device(device).type == 'cuda' else 'fp32'
    return precision

def input_dtype(visual):
    """The dtype images must have for the visual tower: that of its first convolution or linear layer.
    Not next(parameters()): open_clip keeps embeddings and LayerNorms in fp32 when it casts to fp16."""
    for module in visual.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.weight is not None:
            return module.weight.dtype
    return next(p.dtype for p in visual.parameters() if p.is_floating_point())

def model_config(model):
    """(open_clip model name, its config) for a model name or a model config .json (registered here)."""
    if model.endswith('.json'):
        # A model config file (a custom architecture): register it; its file name is the model name.
        if not os.path.isfile(model):
            raise ValueError(f'--kd-clip: model config file not found: {model}')
        open_clip.add_model_config(model)
        model = os.path.splitext(os.path.basename(model))[0]
    model_cfg = open_clip.get_model_config(model)
    if model_cfg is None:
        raise ValueError(f'Unknown open_clip model {model!r} (--kd-clip); see open_clip.list_models()')
    return model, model_cfg

def resolve_checkpoint(model, pretrained, weights, random_init, cache_dir):
    """The weights file the teacher loads (None for random weights), from --kd-clip-weights, the cache
    or a download. Raises CLIPWeightsUnavailableError offline; train.py calls it before making the run
    directory. Returns (checkpoint, open_clip pretrained config)."""
    model, _cfg = model_config(model)
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
    if random_init:
        return None, tag_cfg
    if weights is not None:
        if not os.path.isfile(weights):
            raise CLIPWeightsUnavailableError(f'--kd-clip-weights: file not found: {weights}')
        return weights, tag_cfg
    if tag_cfg:
        return _fetch_weights(model, pretrained, tag_cfg, cache_dir), tag_cfg
    if pretrained and os.path.isfile(pretrained):
        return pretrained, tag_cfg
    tags = open_clip.list_pretrained_tags_by_model(model)
    raise ValueError(f'{pretrained!r} is not an open_clip pretrained tag of {model!r} (--kd-clip-pretrained); '
                     f'known tags: {", ".join(tags) or "none"}. A local file goes to --kd-clip-weights=FILE.')

def _load_clip(model, pretrained, weights, random_init, device, cache_dir, precision='auto'):
    precision = resolve_precision(precision, device)
    key = (model, pretrained, weights, bool(random_init), str(device), cache_dir, precision)
    if key in _model_cache:
        return _model_cache[key]
    checkpoint, tag_cfg = resolve_checkpoint(model, pretrained, weights, random_init, cache_dir)
    model, model_cfg = model_config(model)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # Random weights (--kd-teacher=random) are the same on every rank and run.
        clip = open_clip.create_model(model, pretrained=checkpoint, precision=precision, device=device,
            force_quick_gelu=bool(tag_cfg.get('quick_gelu', False)), cache_dir=cache_dir)
    clip.eval().requires_grad_(False)

    loaded = _LoadedCLIP(model=clip, tokenizer=open_clip.get_tokenizer(model), embed_dim=int(model_cfg['embed_dim']),
        image_size=_to_2tuple(clip.visual.image_size), mean=tag_cfg.get('mean', open_clip.OPENAI_DATASET_MEAN),
        std=tag_cfg.get('std', open_clip.OPENAI_DATASET_STD), dtype=input_dtype(clip.visual), device=device)
    _model_cache[key] = loaded
    return loaded

#----------------------------------------------------------------------------

class CLIPTeacher:
    """Frozen CLIP image and text encoders. Deliberately not an nn.Module, so its weights never join
    D's parameters, optimizer or snapshots."""

    def __init__(self, model='ViT-B-32', pretrained='openai', weights=None, random=False, resize='nearest',
            clip_norm='clip', device=None, cache_dir=None, precision='auto', log=print):
        _check_option('resize', resize, RESIZE_MODES)
        _check_option('clip_norm', clip_norm, CLIP_NORMS)
        self.device = torch.device(device if device is not None else ('cuda' if torch.cuda.is_available() else 'cpu'))
        self.model_name = model
        self.pretrained = pretrained
        self.weights = weights
        self.random = bool(random)
        self.resize = resize
        self.clip_norm = clip_norm
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.precision = resolve_precision(precision, self.device)
        self.log = log
        if self.random:
            message = (f'WARNING: --kd-teacher=random: the CLIP teacher {model!r} has RANDOM weights. '
                       f'Distillation from random weights is meaningless; use it only for tests and demos.')
            if log is not None:
                log(message)
            warnings.warn(message, stacklevel=2)
        self._clip = _load_clip(model=model, pretrained=pretrained, weights=weights, random_init=self.random,
            device=self.device, cache_dir=self.cache_dir, precision=self.precision)

    @classmethod
    def from_model(cls, clip, tokenizer, resize='nearest', clip_norm='clip', mean=None, std=None, log=print):
        """A teacher around an open_clip model built by the caller (any precision, on its device).
        mean/std: the model's input normalisation (default: OpenAI CLIP's)."""
        self = cls.__new__(cls)
        device = next(clip.parameters()).device
        embed_dim = getattr(clip.visual, 'output_dim', None)
        if not isinstance(embed_dim, int):
            embed_dim = int(clip.text_projection.shape[1])
        clip.eval().requires_grad_(False)
        self._clip = _LoadedCLIP(model=clip, tokenizer=tokenizer, embed_dim=embed_dim,
            image_size=_to_2tuple(clip.visual.image_size), mean=mean if mean is not None else open_clip.OPENAI_DATASET_MEAN,
            std=std if std is not None else open_clip.OPENAI_DATASET_STD, dtype=input_dtype(clip.visual), device=device)
        self.device = device
        self.model_name = type(clip).__name__
        self.pretrained = self.weights = None
        self.random = False
        self.resize = _check_option('resize', resize, RESIZE_MODES)
        self.clip_norm = _check_option('clip_norm', clip_norm, CLIP_NORMS)
        self.cache_dir = None
        self.precision = {torch.float16: 'fp16', torch.bfloat16: 'bf16'}.get(self._clip.dtype, 'fp32')
        self.log = log
        return self

    @property
    def embed_dim(self):
        return self._clip.embed_dim

    @property
    def image_size(self):
        return self._clip.image_size

    def preprocess(self, x):
        """D's batch [N, 1 or 3, H, W] in [-1, 1] -> CLIP's input [N, 3, *image_size], float32."""
        if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] in (1, 3) and x.is_floating_point()):
            raise ValueError(f'CLIPTeacher expects a float image batch [N, 1 or 3, H, W], got '
                             f'{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}')
        x = x.to(device=self.device, dtype=torch.float32)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        src = tuple(x.shape[2:])
        dst = self.image_size
        if src != dst:
            mode = self.resize
            if mode == 'nearest' and (dst[0] % src[0] or dst[1] % src[1]):
                mode = 'bilinear'
                _say_once(('nearest', src, dst), f'kd: resizing {src[0]}x{src[1]} to CLIP input {dst[0]}x{dst[1]} is '
                          f'not an integer upscaling factor; using bilinear instead of nearest', self.log)
            if mode == 'nearest':
                x = F.interpolate(x, size=dst, mode='nearest')
            else:
                shrink = src[0] > dst[0] or src[1] > dst[1]
                x = F.interpolate(x, size=dst, mode=mode, align_corners=False, antialias=shrink)
        if self.clip_norm == 'clip':
            x = ((x + 1) / 2 - self._clip.mean) / self._clip.std
        return x

    def encode_images(self, x, grad=False):
        """[N, d] float32 image embeddings (not normalised). grad=True lets gradient flow to x
        (the weights stay frozen; the gradient comes back in x's dtype); otherwise under no_grad."""
        with contextlib.nullcontext() if grad else torch.no_grad():
            img = self.preprocess(x).to(self._clip.dtype)
            return self._clip.model.encode_image(img).to(torch.float32)

    def encode_text(self, prompts):
        """[K, d] float32 text embeddings (not normalised), computed once per prompt list."""
        prompts = tuple(str(p) for p in prompts)
        if not prompts:
            raise ValueError('encode_text needs at least one prompt')
        cache = self._clip.text_cache
        if prompts not in cache:
            with torch.no_grad():
                tokens = self._clip.tokenizer(list(prompts)).to(self.device)
                cache[prompts] = self._clip.model.encode_text(tokens).to(torch.float32)
        return cache[prompts]

#----------------------------------------------------------------------------
