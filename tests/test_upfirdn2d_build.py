"""Compiles the upfirdn2d CUDA plugin (needs nvcc, not a GPU) and checks that it loads."""

import pytest

from torch_utils import custom_ops
from torch_utils.ops import upfirdn2d


@pytest.mark.cuda_build
def test_upfirdn2d_plugin_builds_and_loads():
    # build_plugin raises with the compiler's message, unlike get_plugin which warns and returns None.
    module = custom_ops.build_plugin(**upfirdn2d._PLUGIN_SPEC)
    assert callable(module.upfirdn2d)
    assert upfirdn2d._init()
