"""Behaviour is unchanged: tiny runs, dry runs and every tool's --help equal the outputs recorded in
tests/golden/golden.json (tests/golden/record.py says what and how). Exact on the environment they were
recorded in; on another torch, numpy or CPU kernel set, tensors are compared by their sums to 1e-4.

After a change that is meant to alter behaviour, rerun `python tests/golden/record.py` and commit
golden.json with the change, saying why in the message."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'golden'))
import record  # noqa: E402

def test_golden_outputs_are_unchanged():
    # In a fresh process: imports and state left by other tests (registered models, statistics) stay out.
    result = subprocess.run([sys.executable, record.__file__, '--check'], capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert 'equal (exactly)' in result.stdout or 'another environment' in result.stdout

def test_the_comparison_sees_a_one_bit_change():
    want = json.load(open(record.GOLDEN))
    got = json.loads(json.dumps(want))
    snap = got['runs']['auto_ada']['snapshots']['network-snapshot-000000.016.pkl']
    snap['G_ema']['synthesis.b16.torgb.bias']['sha'] += '0'
    snap['resume_state']['cur_nimg'] += 1
    got['dry_runs'][0]['output'] = got['dry_runs'][0]['output'].replace('"r1_gamma"', '"r1_gamma "')
    diffs = record.differences(want, got)
    assert len(diffs) == 3, diffs
    # The relaxed comparison of another environment still sees a changed sum.
    snap['G_ema']['synthesis.b16.torgb.bias']['sum'] += 1e-2
    assert any('torgb.bias' in d for d in record.differences(want, got, exact=False))
