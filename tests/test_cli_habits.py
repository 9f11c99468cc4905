"""What StyleGAN2-ADA and DiffAugment users type: -n, --nhwc, --width/--height, named transfer sources."""

import json
import os

import pytest
from click.testing import CliRunner

import dnnlib
import train
from test_dataset_tool import load_all, run_tool
from test_train_e2e import TINY_ARGS, make_dataset_zip, run_train
from training import networks_stylegan2 as net
from training import resume
from training.snapshot import save_snapshot

def _options(output):
    return json.loads(output[output.index('{'):output.index('\nOutput directory')])

def test_n_is_dry_run_and_nhwc_sets_channels_last(tmp_path):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '-n', '--nhwc=1'] + TINY_ARGS)
    assert result.exit_code == 0 and 'Dry run' in result.output, result.output
    c = _options(result.output)
    assert c['G_kwargs']['fp16_channels_last'] is True and c['D_kwargs']['block_kwargs']['fp16_channels_last'] is True
    assert not os.path.exists(tmp_path / 'runs')

def test_dataset_tool_width_and_height(tmp_path):
    import numpy as np
    import PIL.Image
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(2):
        PIL.Image.fromarray(np.full([20, 20, 3], i * 50, np.uint8)).save(src / f'{i}.png')
    result = run_tool('--source', src, '--dest', tmp_path / 'out.zip', '--width=8', '--height=8')
    assert result.exit_code == 0, result.output
    ds, images, _ = load_all(tmp_path / 'out.zip')
    assert images.shape[2:] == (8, 8)
    result = run_tool('--source', src, '--dest', tmp_path / 'out2.zip', '--width=8')
    assert result.exit_code != 0 and '--width and --height go together' in result.output
    result = run_tool('--source', src, '--dest', tmp_path / 'out3.zip', '--width=8', '--height=8', '--resolution=8x8')
    assert result.exit_code != 0 and 'not both' in result.output

@pytest.mark.parametrize('name', sorted(train.RESUME_SPECS))
def test_named_transfer_sources_are_sg2a_urls(name):
    url = train.RESUME_SPECS[name]
    assert url.startswith('https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/')
    res = int(''.join(ch for ch in name if ch.isdigit()))
    assert f'res{res}' in url and resume.resolve_source(name, outdir='.') == url

def test_named_source_resolves_through_the_cache_and_checks_the_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    url = train.RESUME_SPECS['ffhq256']
    cache_path = os.path.join(dnnlib.make_cache_dir_path('downloads'), dnnlib.util.cache_file_name(url))
    os.makedirs(os.path.dirname(cache_path))
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=32, img_channels=3, channel_base=64, channel_max=4)
    save_snapshot(cache_path, dict(G=G, G_ema=G))  # Stands in for NVIDIA's 256x256 pickle.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)  # 16x16.
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--resume=ffhq256'] + TINY_ARGS)
    assert result.exit_code != 0
    assert f'the network in {url} is 32x32, 3 channels, but --data is 16x16' in result.output
    data32 = make_dataset_zip(tmp_path / 'tiny32.zip', num=4, res=32)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data32, '--resume=ffhq256', '-n'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    c = _options(result.output)
    assert c['resume_pkl'] == url and c['ada_kimg'] == 100
