"""Build the CUDA plugins ahead of time and report the toolchain: `python -m torch_utils.ops --build [--verbose]`.

Its command line uses argparse, not click: click belongs to the root tools, not to the library."""

import argparse
import importlib
import os
import sys
import time
import warnings

import torch

from .. import custom_ops

PLUGIN_OPS = ['bias_act', 'upfirdn2d'] # Modules of torch_utils.ops with a module-level _init() -> bool.

#----------------------------------------------------------------------------

def _report_toolchain():
    cuda_home = custom_ops.find_cuda_home()
    print(f'torch:              {torch.__version__} (CUDA {torch.version.cuda})')
    print(f'CUDA_HOME:          {cuda_home}')
    print(f'nvcc:               {custom_ops.nvcc_path(cuda_home)} (release {custom_ops.nvcc_version(cuda_home)})')
    source = ('TORCH_CUDA_ARCH_LIST' if os.environ.get('TORCH_CUDA_ARCH_LIST') else
        'the visible GPUs' if torch.cuda.is_available() else 'default without a GPU; set TORCH_CUDA_ARCH_LIST to change')
    print(f'arch list:          {custom_ops.arch_list()} ({source})')
    print(f'GPU visible:        {torch.cuda.is_available()}' +
        (f' ({torch.cuda.get_device_name(0)})' if torch.cuda.is_available() else ''))
    print('nvidia include dirs:')
    for d in custom_ops.nvidia_include_dirs() or ['(none)']:
        print(f'  {d}')

def _build_one(name):
    """(ok, seconds, reason) for one op's plugin."""
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            ok = importlib.import_module(f'{__package__}.{name}')._init()
        except Exception as e: # A broken op module is a failed build too; say why.
            return False, time.time() - t0, f'{type(e).__name__}: {e}'
    reason = '\n'.join(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    return ok, time.time() - t0, reason

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m torch_utils.ops',
        description='Report the CUDA toolchain and build the plugins of torch_utils.ops; exits 1 if a build fails.')
    parser.add_argument('--build', action='store_true', help='Build (or load from the cache) every CUDA plugin.')
    parser.add_argument('--verbose', action='store_true', help='Show the full compiler output.')
    return parser.parse_args(argv)

def main(build, verbose):
    """Report the CUDA toolchain and build the plugins of torch_utils.ops; exits 1 if a build fails."""
    _report_toolchain()
    if not build:
        return
    custom_ops.verbosity = 'full' if verbose else 'brief'
    failed = []
    for name in PLUGIN_OPS:
        ok, seconds, reason = _build_one(name)
        print(f'{name}: {"OK" if ok else "FAILED"} ({seconds:.1f} s)')
        if not ok:
            failed.append(name)
            print(f'  {reason}'.replace('\n', '\n  '))
    if failed:
        sys.exit(1)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    args = parse_args()
    main(build=args.build, verbose=args.verbose)
