"""make gpu-check: refuses cleanly without a GPU, and turns step results into figures and a table."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bench'))
import gpu_check  # noqa: E402

REPO = gpu_check.REPO

def test_refuses_without_a_gpu(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    md = tmp_path / 'table.md'
    proc = subprocess.run([sys.executable, 'bench/gpu_check.py', f'--md={md}'], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'no CUDA device is visible' in proc.stderr and 'Traceback' not in proc.stderr
    assert not md.exists()

def test_make_target_refuses_with_status_2_on_a_given_interpreter():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['make', '--no-print-directory', 'gpu-check', f'PYTHON={sys.executable}'], cwd=REPO, env=env,
        capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f'{sys.executable} bench/gpu_check.py' in proc.stdout and 'no CUDA device is visible' in proc.stderr

def test_plan_covers_the_issue_list():
    names = [name for name, _argv, _limit in gpu_check.plan()]
    assert names[:2] == ['build', 'tests']
    for cfg in ('cifar', 'low_shot-256', 'biggan-cifar'):
        assert f'train {cfg}' in names and f'train {cfg} kd' in names
    assert 'train cifar ref-ops' in names and names[-1] == 'features'
    argv = dict((name, argv) for name, argv, _ in gpu_check.plan())
    assert '--batch=64' in argv['train cifar'] and '--batch=8' in argv['train low_shot-256'] and '--res=256' in argv['train low_shot-256']
    assert '--batch=50' in argv['train biggan-cifar'] and '--kd=agg,corr' in argv['train biggan-cifar kd']

def _train(sec, mem=1.5):
    return dict(status='ok', seconds=10, json=[dict(sec_per_kimg=sec, peak_gpu_mem_gb=mem, phase_ms=dict(Gmain=5.0, Dmain=4.0))])

def test_figures_and_markdown():
    results = [('build', dict(status='ok', seconds=61.0, json=[])),
               ('tests', dict(status='ok', seconds=30, json=[], summary='120 passed, 3 skipped')),
               ('train cifar', _train(2.0)), ('train cifar kd', _train(2.5)),
               ('train low_shot-256', dict(status='timeout', detail='over 120 s')),
               ('train cifar ref-ops', _train(8.0)),
               ('features', dict(status='ok', seconds=5, json=[dict(detector='x', batch=100, images_per_s=2500.0)]))]
    rows = gpu_check.figures(results)
    table = {(r['check'], r['what']): r['value'] for r in rows}
    assert table[('kd overhead cifar', 'sec/kimg with KD / without')] == 1.25
    assert table[('custom kernels cifar', 'sec/kimg custom kernels / reference ops')] == 0.25
    assert table[('train cifar', 'peak GPU memory')] == 1.5 and table[('train cifar', 'Gmain time')] == 5.0
    assert table[('train low_shot-256', 'status')] == 'timeout'
    assert table[('tests', 'pytest -m gpu')] == '120 passed, 3 skipped'
    assert not any(r['check'] == 'kd overhead low_shot-256' for r in rows)  # No ratio from a missing run.
    md = gpu_check.markdown(rows, 'NVIDIA H200', '2.14.1')
    assert md.splitlines()[2] == '| check | figure | value | unit |'
    assert '| kd overhead cifar | sec/kimg with KD / without | 1.25 | x |' in md
    json.dumps(rows)  # Every row prints as a JSON line.

def test_pytest_summary_and_json_lines():
    assert gpu_check._pytest_summary('...\n12 passed, 2 skipped in 3.1s\n') == '12 passed, 2 skipped in 3.1s'
    assert gpu_check._json_lines('noise\n{"a": 1}\n{bad}\n') == [dict(a=1)]

def test_inception_shaped_feature_extraction_runs_on_cpu(monkeypatch, tmp_path):
    # The same code the GPU check times, on 2 images: without a cached detector, torchvision's architecture.
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))
    monkeypatch.delenv('KD_DETECTOR_DIR', raising=False)
    result = gpu_check.inception_features(batch=2, batches=1, device='cpu')
    assert result['detector'].startswith('Inception-v3 shape') and result['batch'] == 2 and result['images_per_s'] > 0
