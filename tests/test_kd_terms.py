"""Prompt resolution, option validation and KDTerms end to end with a tiny CLIP and a fake D."""

import json

import numpy as np
import pytest
import torch

from kd.heads import KDHead
from kd.loss import build_kd_terms
from kd.prompts import resolve_prompts
from tiny_clip import register_tiny_clip
from tiny_clip import save_tiny_clip_weights

#----------------------------------------------------------------------------
# Prompts.

AUTHORS_TEN = ['a airplane', 'a automobile', 'a bird', 'a cat', 'a deer', 'a dog', 'a frog', 'a horse', 'a ship',
               'a truck']

def test_prompt_file_wins_and_skips_blank_lines(tmp_path):
    path = tmp_path / 'prompts.txt'
    path.write_text('a red car\n\n   \n  a blue sky  \n')
    assert resolve_prompts(str(path), class_names=['cat'], dataset_name='cifar10') == ['a red car', 'a blue sky']
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    with pytest.raises(ValueError, match='no prompts'):
        resolve_prompts(str(empty))

def test_named_sets():
    assert resolve_prompts('cifar10-authors', class_names=['x']) == AUTHORS_TEN
    assert resolve_prompts('cifar10')[0] == 'a photo of a airplane'
    c100 = resolve_prompts('cifar100')
    assert len(c100) == 100 and len(set(c100)) == 100
    assert c100[0] == 'a photo of a apple' and 'a photo of a maple tree' in c100 and c100[-1] == 'a photo of a worm'
    assert len(resolve_prompts('generic')) > 0
    with pytest.raises(ValueError, match='cifar10-authors.*generic'):
        resolve_prompts('no-such-set')

def test_class_names_then_cifar_then_generic():
    assert resolve_prompts(None, class_names=['dog', 'sweet_pepper'], dataset_name='cifar100') == \
        ['a photo of a dog', 'a photo of a sweet pepper']
    assert resolve_prompts(None, dataset_name='cifar10-20pct') == resolve_prompts('cifar10')
    assert resolve_prompts(None, dataset_name='CIFAR-100') == resolve_prompts('cifar100')
    assert resolve_prompts(None, dataset_name='cifar', label_dim=100) == resolve_prompts('cifar100')
    assert resolve_prompts(None, dataset_name='cifar100', label_dim=10) == resolve_prompts('cifar10')
    assert resolve_prompts(None, dataset_name='obama') == resolve_prompts('generic')
    assert resolve_prompts() == resolve_prompts('generic')

#----------------------------------------------------------------------------
# KDTerms.

class FakeD(torch.nn.Module):
    """A one-layer 'discriminator' exposing feature_dim like the real backbones."""
    feature_dim = 8

    def __init__(self, kd_head_kind=None):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, self.feature_dim)
        if kd_head_kind is not None:
            self.kd_head_kind = kd_head_kind

    def forward(self, img):
        return self.fc(torch.nn.functional.avg_pool2d(img, 2).flatten(1))

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tiny_clip_terms')
    name = register_tiny_clip(tmp)
    return dict(kd_clip=name, kd_clip_pretrained=None, kd_clip_weights=save_tiny_clip_weights(name, str(tmp / 'w.pt')))

def _build(D, tiny, **kwargs):
    return build_kd_terms(D, torch.device('cpu'), log=lambda msg: None, **tiny, **kwargs)

def _images(n=4):
    return torch.rand(n, 3, 16, 16) * 2 - 1

def test_kd_none_returns_none_and_leaves_d_alone():
    D = FakeD()
    assert build_kd_terms(D, 'cpu', kd='none') is None
    assert not hasattr(D, 'kd_head')

@pytest.mark.parametrize('kwargs, match', [
    (dict(kd='agg,foo'), 'foo'),
    (dict(kd=''), 'none'),
    (dict(kd='agg', kd_agg_weight=-1), 'kd-agg-weight'),
    (dict(kd='corr', kd_corr_weight=float('nan')), 'kd-corr-weight'),
    (dict(kd='agg', kd_agg_p=1.5), 'kd-agg-p'),
    (dict(kd='agg', kd_dist='l3'), 'kd-dist'),
    (dict(kd='corr', kd_corr_norm='col'), 'kd-corr-norm'),
    (dict(kd='agg', kd_clip_norm='imagenet'), 'kd-clip-norm'),
    (dict(kd='agg', kd_resize='area'), 'kd-resize'),
    (dict(kd='agg', kd_teacher='distilled'), 'kd-teacher'),
    (dict(kd='agg', kd_div=-0.5), 'kd-div'),
    (dict(kd='none', kd_div=1.0), 'kd-div'),
    (dict(kd='agg', kd_agg_wieght=3), 'kd_agg_wieght'),
])
def test_bad_options_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_kd_terms(FakeD(), 'cpu', log=lambda msg: None, **kwargs)

@pytest.mark.parametrize('kd, names', [('agg', ['agg']), ('corr', ['corr_real', 'corr_fake']),
                                       ('agg,corr', ['agg', 'corr_real', 'corr_fake'])])
def test_term_names_and_gradient_routing(tiny, kd, names):
    D = FakeD()
    terms = _build(D, tiny, kd=kd)
    assert isinstance(D.kd_head, KDHead) and (D.kd_head.in_features, D.kd_head.out_features) == (8, 16)
    assert not D.kd_head.spectral_norm
    real, fake = _images(), _images().requires_grad_()
    out = terms.d_terms(real, D(real), fake, D(fake.detach()))
    assert sorted(out) == sorted(names) and all(v.ndim == 0 for v in out.values())
    sum(out.values()).backward()
    assert D.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in D.kd_head.parameters())
    assert all(p.grad is None for p in terms.teacher._clip.model.parameters())
    assert fake.grad is None  # The teacher sees the images without grad.
    assert terms.g_terms(fake) == {}

def test_values_match_independent_numpy(tiny):
    D = FakeD()
    terms = _build(D, tiny, kd='agg,corr', kd_agg_weight=3, kd_corr_weight=0.5, kd_agg_p=0.0)
    real, fake = _images(), _images()
    feat_real, feat_fake = D(real), D(fake)
    out = {name: float(value.detach()) for name, value in terms.d_terms(real, feat_real, fake, feat_fake).items()}
    t_real = terms.teacher.encode_images(real).double().numpy()
    t_fake = terms.teacher.encode_images(fake).double().numpy()
    s_real = D.kd_head(feat_real).detach().double().numpy()
    s_fake = D.kd_head(feat_fake).detach().double().numpy()
    text = terms.text.double().numpy()
    paired = np.linalg.norm(t_real - s_real, axis=1).mean() + np.linalg.norm(t_fake - s_fake, axis=1).mean()
    assert out['agg'] == pytest.approx(3 * paired, rel=1e-4)  # p = 0: no cross terms.
    def rownorm(m):
        return m / np.linalg.norm(m, axis=1, keepdims=True)
    for name, t, s in [('real', t_real, s_real), ('fake', t_fake, s_fake)]:
        expected = 0.5 * ((rownorm(t @ text.T) - rownorm(s @ text.T)) ** 2).sum()
        assert out[f'corr_{name}'] == pytest.approx(expected, rel=1e-4)

def test_agg_gate_uses_p(tiny):
    D = FakeD()
    terms = _build(D, tiny, kd='agg', kd_agg_p=0.5)
    real, fake = _images(2), _images(2)
    torch.manual_seed(1)  # The gate comes from torch's global RNG, seeded per pass by the training loop.
    with torch.no_grad():
        feat_real, feat_fake = D(real), D(fake)
        values = {round(float(terms.d_terms(real, feat_real, fake, feat_fake)['agg']), 4) for _ in range(8)}
    assert len(values) == 2  # Cross terms on some steps, off on others.

def test_div_term_gradient_reaches_generated_images(tiny):
    terms = _build(FakeD(), tiny, kd='corr', kd_div=2.0)
    fake = _images().requires_grad_()
    out = terms.g_terms(fake)
    assert list(out) == ['div'] and out['div'].ndim == 0
    out['div'].backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in terms.teacher._clip.model.parameters())

def test_head_kept_on_resume_and_checked(tiny):
    D = FakeD()
    _build(D, tiny, kd='agg')
    head = D.kd_head
    _build(D, tiny, kd='corr')
    assert D.kd_head is head
    D.kd_head = KDHead(in_features=8, out_features=32, hidden=4)
    with pytest.raises(ValueError, match='kd_head'):
        _build(D, tiny, kd='agg')

def test_head_kind_from_d_and_argument(tiny):
    D = FakeD(kd_head_kind='spectral')
    _build(D, tiny, kd='agg')
    assert D.kd_head.spectral_norm
    D2 = FakeD(kd_head_kind='spectral')
    _build(D2, tiny, kd='agg', head_kind='equalized')
    assert not D2.kd_head.spectral_norm

def test_options_are_json_and_complete(tiny):
    messages = []
    terms = build_kd_terms(FakeD(), 'cpu', log=messages.append, kd='corr,agg', kd_prompts='cifar10-authors',
        kd_corr_norm='matrix', kd_dist='l1', **tiny)
    options = json.loads(json.dumps(terms.options))
    assert options['kd'] == 'agg,corr' and options['prompt_list'] == AUTHORS_TEN
    assert options['kd_corr_norm'] == 'matrix' and options['kd_dist'] == 'l1' and options['kd_agg_weight'] == 10
    assert options['kd_resize'] == 'nearest' and options['kd_clip_norm'] == 'clip' and options['embed_dim'] == 16
    assert len(messages) == 1 and 'agg,corr' in messages[0]

def test_random_teacher_logged(tiny):
    messages = []
    with pytest.warns(UserWarning, match='meaningless'):
        terms = build_kd_terms(FakeD(), 'cpu', log=messages.append, kd='agg', kd_teacher='random', kd_clip=tiny['kd_clip'],
            kd_clip_pretrained=None)
    assert any('meaningless' in m for m in messages) and terms.options['kd_teacher'] == 'random'

#----------------------------------------------------------------------------
