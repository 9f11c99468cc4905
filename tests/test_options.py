"""The option builders (training/options.py, training/presets.py, kd/options.py) against hand-computed values."""

import pytest

from kd import options as kd_options
from training import options
from training import presets

def _stylegan2(cfg='paper256', res=256, gpus=1, batch=None, batch_gpu=None, mbstd_group=None):
    spec = presets.resolve_preset(cfg, res, gpus)
    schedule, _name = options.build_schedule(spec, cfg=cfg, gpus=gpus, seed=0, kimg=None, gamma=None, batch=batch,
        batch_gpu=batch_gpu, tick=None, snap=None, keep=None, metrics='none')
    kwargs, _name = options.build_stylegan2(spec, cfg=cfg, gpus=gpus, batch=batch, batch_gpu=schedule['batch_gpu'], gamma=None,
        cbase=None, cmax=None, map_depth=None, mbstd_group=mbstd_group, glr=None, dlr=None, freezed=0, fp32=False, nhwc=False)
    return schedule, kwargs

def test_auto_preset_by_hand():
    # res 256, 2 processes: batch max(min(2 * min(4096 // 256, 32), 64), 2) = 32, mbstd min(32 // 2, 4) = 4,
    # fmaps 0.5 (res < 512), lr 0.0025 (res < 1024), gamma 0.0002 * 256^2 / 32 = 0.4096, EMA 32 * 10 / 32 = 10 kimg.
    spec = presets.resolve_preset('auto', 256, 2)
    assert (spec['mb'], spec['mbstd'], spec['fmaps'], spec['lrate'], spec['ema'], spec['ref_gpus']) == (32, 4, 0.5, 0.0025, 10, 2)
    assert spec['gamma'] == pytest.approx(0.4096)
    assert presets.CONFIG_PRESETS['auto']['mb'] == -1  # Resolving does not touch the table.

def test_an_explicit_batch_caps_the_minibatch_std_group():
    schedule, kwargs = _stylegan2()  # paper256: 64 images on 8 reference GPUs, groups of 8.
    assert (schedule['batch_size'], schedule['batch_gpu']) == (64, 8)
    assert kwargs['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == 8
    schedule, kwargs = _stylegan2(batch=4)  # 4 images per process: a group of 8 cannot form.
    assert (schedule['batch_size'], schedule['batch_gpu']) == (4, 4)
    assert kwargs['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == 4
    _schedule, kwargs = _stylegan2(batch=4, mbstd_group=2)  # An explicit group wins.
    assert kwargs['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == 2
    schedule, _kwargs = _stylegan2(gpus=2, batch=16, batch_gpu=4)  # Two passes of 4 per process and step.
    assert (schedule['batch_size'], schedule['batch_gpu']) == (16, 4)

def test_lazy_regularisation_and_the_cifar_preset():
    _schedule, kwargs = _stylegan2(cfg='cifar', res=32, batch=8)
    assert (kwargs['G_reg_interval'], kwargs['D_reg_interval']) == (4, 16)
    assert kwargs['loss_kwargs'] == dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0.01, style_mixing_prob=0, pl_weight=0)
    assert kwargs['D_kwargs']['architecture'] == 'orig'

def test_lecam_defaults_follow_the_backbone_and_the_kd_preset():
    sg2, biggan = presets.resolve_preset('auto', 32, 1), presets.resolve_preset('biggan-cifar', 32, 1)
    assert options.build_lecam(sg2, lecam=None, lecam_decay=None, kd='none', kd_preset='project') == (dict(), '')
    kwargs, name = options.build_lecam(sg2, lecam=None, lecam_decay=None, kd='agg', kd_preset='authors')
    assert kwargs['loss_kwargs'] == dict(lecam=0.3, lecam_decay=0.99, lecam_start_kimg=0) and name == '-lecam0.3'
    kwargs, _name = options.build_lecam(biggan, lecam=0.1, lecam_decay=None, kd='none', kd_preset='project')
    assert kwargs['loss_kwargs'] == dict(lecam=0.1, lecam_decay=0.9, lecam_start_kimg=200)

def test_no_entry_is_set_by_two_builders():
    c = dict()
    options._merge(c, dict(loss_kwargs=dict(class_name='L', r1_gamma=1)))
    options._merge(c, dict(loss_kwargs=dict(diffaugment='color'), augment_p=0))
    assert c == dict(loss_kwargs=dict(class_name='L', r1_gamma=1, diffaugment='color'), augment_p=0)
    with pytest.raises(AssertionError, match='diffaugment'):
        options._merge(c, dict(loss_kwargs=dict(diffaugment='')))
    with pytest.raises(AssertionError, match='augment_p'):
        options._merge(c, dict(augment_p=0.5))

@pytest.mark.parametrize('builder, kwargs, message', [
    (options.build_augmentation, dict(aug='fixed', p=None, target=None, augpipe=None, diffaugment=None), '--aug=fixed requires --p'),
    (options.build_augmentation, dict(aug='ada', p=None, target=None, augpipe=None, diffaugment='zoom'), '--diffaugment'),
    (options.build_lecam, dict(lecam=0.0, lecam_decay=0.5, kd='none', kd_preset='project'), 'no effect without --lecam'),
])
def test_builders_raise_one_line_value_errors(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(presets.resolve_preset('auto', 32, 1), **kwargs)

def test_one_kd_parser():
    assert kd_options.parse_kd('none') == [] and kd_options.parse_kd(['corr', 'agg']) == ['agg', 'corr']
    assert kd_options.parse_kd(' corr , agg ') == ['agg', 'corr']  # Canonical order.
    for bad in ['', 'agg,agg', 'agg,foo', 'none,agg']:
        with pytest.raises(ValueError, match='expected none, agg, corr or agg,corr'):
            kd_options.parse_kd(bad)
