"""Settings that come from a source: the low_shot preset, BigGAN's evaluation interval, the resume rule."""

import json

from test_train_e2e import TINY_ARGS, make_dataset_zip, run_train

def _options(tmp_path, *args):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4, res=32)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--dry-run'] +
        [a for a in TINY_ARGS if not a.startswith(('--cbase', '--cmax', '--map-depth', '--mbstd-group', '--batch', '--snap', '--tick'))] + list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index('{'):result.output.index('\nOutput directory')])

def test_low_shot_is_diffaugment_stylegan2_pytorchs(tmp_path):
    # DiffAugment-stylegan2-pytorch, train.py, cfg_specs['low_shot'].
    c = _options(tmp_path, '--cfg=low_shot')
    assert (c['total_kimg'], c['batch_size'], c['ema_kimg'], c['ema_rampup']) == (300, 8, 10, None)
    assert c['G_kwargs']['channel_base'] == c['D_kwargs']['channel_base'] == 32768
    assert c['G_kwargs']['mapping_kwargs']['num_layers'] == 2 and c['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == 4
    assert c['G_opt_kwargs']['lr'] == c['D_opt_kwargs']['lr'] == 0.002 and c['loss_kwargs']['r1_gamma'] == 10
    assert c['network_snapshot_ticks'] == c['image_snapshot_ticks'] == 10
    assert c['loss_kwargs']['diffaugment'] == 'color,translation,cutout' and c['augment_kwargs'] is None
    assert _options(tmp_path, '--cfg=low_shot', '--snap=3')['network_snapshot_ticks'] == 3

def test_biggan_evaluates_every_4000_G_iterations(tmp_path):
    c = _options(tmp_path, '--cfg=biggan-cifar')
    reals_per_G_iteration = c['batch_size'] * c['D_steps']
    assert c['network_snapshot_ticks'] * c['kimg_per_tick'] * 1000 / reals_per_G_iteration == 4000

def _tiny_snapshot(path, res=32, state=None):
    from training import networks_stylegan2 as net
    from training.snapshot import save_snapshot
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=res, img_channels=3, channel_base=64, channel_max=4)
    save_snapshot(str(path), dict(G=G, G_ema=G, resume_state=state))

def test_transfer_learning_uses_sg2a_resume_settings(tmp_path):
    bare = tmp_path / 'elsewhere' / 'source.pkl'
    bare.parent.mkdir()
    _tiny_snapshot(bare)
    c = _options(tmp_path, f'--resume={bare}')
    assert c['ada_kimg'] == 100 and c['ema_rampup'] is None  # StyleGAN2-ADA train.py for any --resume.
    assert c['resume_mode'] == 'transfer'
    # A run of ours with this command's options (its training_options.json) and a training state continues,
    # with its own settings: the default ADA speed (no ada_kimg) and the preset's EMA ramp-up.
    run = tmp_path / 'runs' / '00000-old'
    run.mkdir(parents=True)
    (run / 'training_options.json').write_text(json.dumps(_options(tmp_path)))
    _tiny_snapshot(run / 'network-snapshot-000000.pkl', state=dict(cur_nimg=4))
    c = _options(tmp_path, f'--resume={run}')
    assert c['resume_mode'] == 'continue' and 'ada_kimg' not in c and c['ema_rampup'] == 0.05
    # The same snapshot with other options is transfer learning.
    c = _options(tmp_path, f'--resume={run}', '--gamma=3')
    assert c['resume_mode'] == 'transfer' and c['ada_kimg'] == 100 and c['ema_rampup'] is None
