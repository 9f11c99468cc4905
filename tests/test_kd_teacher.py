"""The CLIP teacher with a tiny open_clip model: input mapping, gradients, caching, weights errors."""

import time
import warnings

import numpy as np
import pytest
import torch

from kd import teacher as kd_teacher
from kd.teacher import CLIPTeacher
from kd.teacher import CLIPWeightsUnavailableError
from tiny_clip import register_tiny_clip
from tiny_clip import save_tiny_clip_weights

# OpenAI CLIP's normalisation constants, typed from the CLIP paper's code.
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073]).reshape(1, 3, 1, 1)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711]).reshape(1, 3, 1, 1)

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tiny_clip')
    name = register_tiny_clip(tmp)
    weights = save_tiny_clip_weights(name, str(tmp / 'tiny.pt'))
    return name, weights

def _teacher(tiny, **kwargs):
    name, weights = tiny
    return CLIPTeacher(model=name, pretrained=None, weights=weights, device='cpu', log=None, **kwargs)

def _naive_bilinear(img, out_h, out_w):
    """numpy loop: half-pixel centres, edge clamping (align_corners=False semantics)."""
    n, c, h, w = img.shape
    out = np.zeros([n, c, out_h, out_w])
    def taps(i, size_in, size_out):
        src = max((i + 0.5) * size_in / size_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, size_in - 1)
        return i0, i1, src - i0
    for y in range(out_h):
        y0, y1, wy = taps(y, h, out_h)
        for x in range(out_w):
            x0, x1, wx = taps(x, w, out_w)
            top = img[:, :, y0, x0] * (1 - wx) + img[:, :, y0, x1] * wx
            bottom = img[:, :, y1, x0] * (1 - wx) + img[:, :, y1, x1] * wx
            out[:, :, y, x] = top * (1 - wy) + bottom * wy
    return out

#----------------------------------------------------------------------------

def test_nearest_integer_factor_and_clip_norm(tiny):
    t = _teacher(tiny)
    assert t.image_size == (32, 32) and t.embed_dim == 16
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    up = x.numpy().repeat(2, axis=2).repeat(2, axis=3)
    expected = ((up + 1) / 2 - CLIP_MEAN) / CLIP_STD
    assert t.preprocess(x).numpy() == pytest.approx(expected, rel=1e-5, abs=1e-5)

def test_norm_none_feeds_raw_values(tiny):
    t = _teacher(tiny, clip_norm='none')
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert np.array_equal(t.preprocess(x).numpy(), x.numpy().repeat(4, axis=2).repeat(4, axis=3))

def test_bilinear_against_numpy_loop(tiny):
    t = _teacher(tiny, resize='bilinear', clip_norm='none')
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    assert t.preprocess(x).numpy() == pytest.approx(_naive_bilinear(x.numpy().astype(np.float64), 32, 32), abs=1e-5)

def test_bicubic_keeps_constant_image(tiny):
    t = _teacher(tiny, resize='bicubic', clip_norm='none')
    out = t.preprocess(torch.full([1, 3, 20, 20], 0.25))
    assert out.shape == (1, 3, 32, 32) and torch.allclose(out, torch.full_like(out, 0.25))

def test_nearest_non_integer_factor_falls_back_once(tiny):
    messages = []
    name, weights = tiny
    t = CLIPTeacher(model=name, pretrained=None, weights=weights, device='cpu', log=messages.append,
        clip_norm='none')
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with pytest.warns(UserWarning, match='bilinear'):
        out = t.preprocess(x)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t.preprocess(x)  # Said once only.
    assert len(messages) == 1 and '24x24' in messages[0] and 'bilinear' in messages[0]
    assert out.numpy() == pytest.approx(_naive_bilinear(x.numpy().astype(np.float64), 32, 32), abs=1e-5)

def test_gray_images_repeat_to_rgb(tiny):
    t = _teacher(tiny)
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    assert torch.equal(t.encode_images(gray), t.encode_images(gray.repeat(1, 3, 1, 1)))

def test_bad_input_and_options(tiny):
    t = _teacher(tiny)
    with pytest.raises(ValueError, match='1 or 3'):
        t.encode_images(torch.zeros(2, 4, 32, 32))
    with pytest.raises(ValueError, match='resize'):
        _teacher(tiny, resize='area')
    with pytest.raises(ValueError, match='clip_norm'):
        _teacher(tiny, clip_norm='imagenet')
    with pytest.raises(ValueError, match='Unknown open_clip model'):
        CLIPTeacher(model='no-such-model', device='cpu', log=None)
    with pytest.raises(ValueError, match='known tags'):
        CLIPTeacher(model='ViT-B-32', pretrained='no-such-tag', device='cpu', log=None)

#----------------------------------------------------------------------------

def test_embeddings_no_grad_by_default_grad_to_input_only(tiny):
    t = _teacher(tiny)
    x = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_()
    feat = t.encode_images(x)
    assert feat.shape == (3, 16) and feat.dtype == torch.float32 and not feat.requires_grad
    feat = t.encode_images(x, grad=True)
    feat.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    params = list(t._clip.model.parameters())
    assert all(not p.requires_grad and p.grad is None for p in params)
    assert not t._clip.model.training

def test_text_embeddings_cached_and_unnormalised(tiny):
    t = _teacher(tiny)
    prompts = ['a photo of a cat', 'a photo of a dog', 'a truck']
    text = t.encode_text(prompts)
    assert text.shape == (3, 16) and text.dtype == torch.float32 and not text.requires_grad
    assert t.encode_text(list(prompts)) is text
    assert not torch.allclose(text.norm(dim=1), torch.ones(3))

def test_weights_file_loaded_and_model_built_once(tiny):
    name, weights = tiny
    t1 = _teacher(tiny)
    t2 = _teacher(tiny, resize='bilinear')
    assert t1._clip is t2._clip
    saved = torch.load(weights)
    assert torch.equal(t1._clip.model.state_dict()['visual.conv1.weight'], saved['visual.conv1.weight'])
    with pytest.raises(CLIPWeightsUnavailableError, match='missing.pt'):
        CLIPTeacher(model=name, pretrained=None, weights='/nonexistent/missing.pt', device='cpu', log=None)

def test_random_teacher_warns_loudly(tiny):
    messages = []
    with pytest.warns(UserWarning, match='meaningless'):
        t = CLIPTeacher(model=tiny[0], pretrained=None, random=True, device='cpu', log=messages.append)
    assert len(messages) == 1 and 'RANDOM' in messages[0] and 'meaningless' in messages[0]
    assert t.encode_images(torch.zeros(1, 3, 32, 32)).shape == (1, 16)

#----------------------------------------------------------------------------
# Offline: no cached weights must give one clear error, fast, without touching the network.

def _check_offline_error(err, cache_dir):
    message = str(err)
    assert isinstance(err, RuntimeError)
    for needle in ["'ViT-B-32'", "'openai'", str(cache_dir), '--kd-clip-weights', 'KD_CLIP_WEIGHTS']:
        assert needle in message

def test_offline_error_with_hf_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(kd_teacher, '_reachable', lambda *args, **kwargs: pytest.fail('probed the network'))
    start = time.time()
    with pytest.raises(CLIPWeightsUnavailableError) as info:
        CLIPTeacher(model='ViT-B-32', pretrained='openai', device='cpu', cache_dir=str(tmp_path), log=None)
    assert time.time() - start < 10
    _check_offline_error(info.value, tmp_path)
    assert 'HF_HUB_OFFLINE' in str(info.value)

def test_offline_error_when_server_unreachable(tmp_path, monkeypatch):
    import huggingface_hub.constants
    for name in ['HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE']:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(kd_teacher, '_reachable', lambda *args, **kwargs: False)
    monkeypatch.setenv('KD_CLIP_CACHE', str(tmp_path))
    with pytest.raises(CLIPWeightsUnavailableError) as info:
        CLIPTeacher(model='ViT-B-32', pretrained='openai', device='cpu', log=None)
    _check_offline_error(info.value, tmp_path)
    assert 'cannot reach' in str(info.value)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # The cache-only lookup restored the flag.

#----------------------------------------------------------------------------

# The fp16 branch that CUDA takes by default, run on the CPU (torch runs fp16 matmuls and convolutions there).

@pytest.mark.parametrize('precision', ['fp16', 'bf16'])
def test_low_precision_teacher_on_cpu_matches_fp32(tiny, precision):
    t16 = _teacher(tiny, precision=precision)
    t32 = _teacher(tiny, precision='fp32')
    low = dict(fp16=torch.float16, bf16=torch.bfloat16)[precision]
    assert t16._clip.dtype == low and t16._clip.model.visual.conv1.weight.dtype == low
    assert t32._clip.dtype == torch.float32 and t32.precision == 'fp32'
    tol = dict(fp16=2e-2, bf16=8e-2)[precision]
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    img16, img32 = t16.encode_images(x), t32.encode_images(x)
    assert img16.dtype == torch.float32 and img16.shape == (4, 16)
    assert (img16 - img32).abs().max() <= tol * img32.abs().max()
    prompts = ['a photo of a cat', 'a truck']
    txt16, txt32 = t16.encode_text(prompts), t32.encode_text(prompts)
    assert txt16.dtype == torch.float32 and (txt16 - txt32).abs().max() <= tol * txt32.abs().max()

def test_auto_precision_is_fp16_on_cuda_only():
    assert kd_teacher.resolve_precision('auto', torch.device('cuda', 0)) == 'fp16'
    assert kd_teacher.resolve_precision('auto', 'cpu') == 'fp32'
    assert kd_teacher.resolve_precision('fp16', 'cpu') == 'fp16'
    with pytest.raises(ValueError, match='precision'):
        kd_teacher.resolve_precision('half', 'cpu')

def test_fp16_gradient_reaches_input_like_fp32(tiny):
    # --kd-div's path: gradient through the frozen fp16 teacher back to float32 images.
    grads = []
    x0 = torch.rand(3, 3, 32, 32) * 2 - 1
    for precision in ('fp16', 'fp32'):
        x = x0.clone().requires_grad_()
        _teacher(tiny, precision=precision).encode_images(x, grad=True).square().sum().backward()
        assert x.grad.dtype == torch.float32
        grads.append(x.grad)
    assert (grads[0] - grads[1]).abs().max() <= 3e-2 * grads[1].abs().max()

def test_kd_div_gradient_into_G_with_fp16_teacher(tiny):
    # A linear "generator" feeding the diversity term: its weights get the gradient, fp16 close to fp32.
    from kd.loss import build_kd_terms
    from kd.heads import KDHead
    name, weights = tiny
    grads = []
    for precision in ('fp16', 'fp32'):
        D = torch.nn.Module()
        D.feature_dim = 8
        D.kd_head = KDHead(in_features=8, out_features=16)
        kd = build_kd_terms(D, device='cpu', log=lambda *_: None, kd='agg', kd_clip=name, kd_clip_pretrained=None,
            kd_clip_weights=weights, kd_div=1.0, class_names=['cat', 'dog', 'truck'], kd_clip_precision=precision)
        assert kd.teacher._clip.dtype == (torch.float16 if precision == 'fp16' else torch.float32)
        torch.manual_seed(1)
        G = torch.nn.Linear(4, 3 * 16 * 16)
        z = torch.randn(4, 4)
        img = torch.tanh(G(z)).reshape(4, 3, 16, 16)
        kd.g_terms(gen_img=img)['div'].backward()
        grads.append(G.weight.grad)
    assert grads[1].abs().sum() > 0
    assert (grads[0] - grads[1]).abs().max() <= 5e-2 * grads[1].abs().max()

def test_fp16_model_handed_to_teacher(tiny):
    import open_clip
    name, _ = tiny
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        clip = open_clip.create_model(name, pretrained=None, precision='fp16', device='cpu')
    assert next(clip.parameters()).dtype == torch.float32  # positional_embedding: the trap of the old code.
    t = CLIPTeacher.from_model(clip, open_clip.get_tokenizer(name), log=None)
    assert t._clip.dtype == torch.float16 and t.precision == 'fp16' and t.embed_dim == 16
    feat = t.encode_images(torch.rand(2, 3, 32, 32) * 2 - 1)
    text = t.encode_text(['a cat', 'a dog'])
    assert feat.dtype == text.dtype == torch.float32 and feat.shape == (2, 16) and text.shape == (2, 16)
    assert torch.isfinite(feat).all() and torch.isfinite(text).all()

@pytest.mark.gpu
def test_cuda_teacher_fp16(tiny):
    name, weights = tiny
    t = CLIPTeacher(model=name, pretrained=None, weights=weights, device='cuda', log=None)
    assert t._clip.dtype == torch.float16
    x = torch.rand(2, 3, 16, 16, device='cuda') * 2 - 1
    ref = _teacher(tiny).encode_images(x.cpu())
    out = t.encode_images(x)
    assert out.dtype == torch.float32 and out.device.type == 'cuda'
    assert torch.allclose(out.cpu(), ref, rtol=2e-2, atol=2e-2)
    text = t.encode_text(['a cat', 'a dog'])
    assert text.dtype == torch.float32 and torch.allclose(text.cpu(), _teacher(tiny).encode_text(['a cat', 'a dog']), rtol=2e-2, atol=2e-2)
    xg = x.clone().requires_grad_()
    t.encode_images(xg, grad=True).square().sum().backward()
    assert xg.grad.dtype == torch.float32 and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0

#----------------------------------------------------------------------------
