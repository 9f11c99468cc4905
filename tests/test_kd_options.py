"""KD settings as recorded and checked by train.py, the per-step AGKD gate, the BigGAN head init."""

import json
import os

import pytest
import torch

from kd import agkd
from kd.heads import KDHead
from kd.loss import build_kd_terms
from test_train_e2e import TINY_ARGS, make_dataset_zip, run_train
from tiny_clip import register_tiny_clip, save_tiny_clip_weights

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kd_options')
    name = register_tiny_clip(str(tmp))
    return name, save_tiny_clip_weights(name, str(tmp / 'tiny.pt')), str(tmp / f'{name}.json')

def _kd(tiny, **kwargs):
    name, weights, _ = tiny
    D = torch.nn.Module()
    D.feature_dim = 8
    return build_kd_terms(D, device='cpu', log=lambda *_: None, kd='agg', kd_clip=name, kd_clip_pretrained=None,
        kd_clip_weights=weights, class_names=['cat', 'dog'], **kwargs)

def test_agkd_gate_is_drawn_once_per_phase(tiny):
    kd = _kd(tiny, kd_agg_p=0.5)
    gates = set()
    for step in range(40):
        kd.begin_phase(f'0-{step}-2')
        seen = set()
        for _ in range(3):  # Three passes of one phase share the gate, whatever torch's RNG does between them.
            torch.manual_seed(torch.randint(0, 10**6, []).item())
            img, feat = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 8)
            kd.d_terms(real_img=img, real_feat=feat, gen_img=img.flip(0), gen_feat=feat.flip(0))
            seen.add(kd._step_gate)
        assert len(seen) == 1
        gates |= seen
        kd.begin_phase(f'0-{step}-2')
        assert kd._step_gate in seen  # The same key gives the same gate (exact resume).
    assert gates == {0.0, 1.0}

def test_gate_value_enters_the_loss(tiny):
    kd = _kd(tiny, kd_agg_p=0.5)
    img, feat = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 8)
    for key in range(20):
        kd.begin_phase(key)
        got = kd.d_terms(real_img=img, real_feat=feat, gen_img=img.flip(0), gen_feat=feat.flip(0))['agg']
        teacher = kd.teacher.encode_images(torch.cat([img, img.flip(0)]))
        head = kd.D.kd_head
        expect = agkd.agkd_loss(teacher[:2], teacher[2:], head(feat), head(feat.flip(0)), cross_gate=kd._step_gate) * 10
        torch.testing.assert_close(got, expect)

def test_biggan_head_is_initialised_like_the_authors_d():
    torch.manual_seed(0)
    head = KDHead(in_features=256, out_features=512, spectral_norm=True)
    for fc in (head.fc0, head.fc1):
        assert abs(fc.weight.std().item() - 0.02) < 1e-3 and abs(fc.weight.mean().item()) < 1e-3
        assert torch.count_nonzero(fc.bias) == 0
    # The StyleGAN2 head keeps equalized learning rate: unit-variance stored weights.
    plain = KDHead(in_features=256, out_features=512)
    assert abs(plain.fc0.weight.std().item() - 1) < 0.05

#----------------------------------------------------------------------------

def _dry_run(tmp_path, *extra):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4, num_classes=2)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--dry-run', '--cond=1'] + TINY_ARGS + list(extra))
    return result

def _options(output):
    return json.loads(output[output.index('{'):output.index('\nOutput directory')])

def test_resolved_kd_settings_are_recorded(tmp_path, tiny):
    _name, _weights, config = tiny
    result = _dry_run(tmp_path, '--kd=corr,agg', f'--kd-clip={config}', '--kd-teacher=random')
    assert result.exit_code == 0, result.output
    kd = _options(result.output)['kd_kwargs']
    assert kd['kd'] == 'agg,corr'  # Canonical order.
    from kd.prompts import class_prompts
    assert kd['prompt_list'] == class_prompts(['class0', 'class1'])  # From the dataset's class names.
    assert kd['head_kind'] == 'equalized' and kd['embed_dim'] == 16 and kd['teacher_source'] == 'random weights'

def test_prompts_without_corr_or_div_are_an_error(tmp_path, tiny):
    _name, _weights, config = tiny
    result = _dry_run(tmp_path, '--kd=agg', f'--kd-clip={config}', '--kd-teacher=random', '--kd-prompts=generic')
    assert result.exit_code != 0 and '--kd-prompts has no effect unless --kd includes corr or --kd-div' in result.output
    assert _dry_run(tmp_path, '--kd=agg', f'--kd-clip={config}', '--kd-teacher=random', '--kd-prompts=generic',
        '--kd-div=1').exit_code == 0

def test_unavailable_clip_weights_stop_before_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('KD_CLIP_CACHE', str(tmp_path / 'empty-cache'))
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    outdir = tmp_path / 'runs'
    result = run_train(['--outdir', str(outdir), '--data', data, '--kd=agg'] + TINY_ARGS)
    assert result.exit_code != 0
    assert 'CLIP weights for model' in result.output and '--kd-clip-weights=FILE' in result.output
    assert 'Traceback' not in result.output
    assert not outdir.exists() or os.listdir(outdir) == []
