"""conv2d / conv_transpose2d with correct higher-order gradients and an optional weight-gradient skip.

Native convolutions already support double backward, so by default these are the native ops.
The skip needs the convolution to sit in the autograd graph as our own Function, whose backward
consults `weight_gradients_disabled` when it runs. That Function is used while `enabled` is True
(the training loop sets it) or while no_weight_gradients() is active at forward time. Typical use:

    conv2d_gradfix.enabled = True
    logits = D(x)                                    # forward records the custom Function
    with conv2d_gradfix.no_weight_gradients():
        grads, = torch.autograd.grad(logits.sum(), [x], create_graph=True)   # no weight grads computed
"""

import contextlib

import torch
import torch.nn.functional as F

enabled = False                     # Route convolutions through the custom Function.
weight_gradients_disabled = False   # Set by no_weight_gradients(); read when backward runs.


@contextlib.contextmanager
def no_weight_gradients(disable=True):
    """Skip the first-order weight gradient of convolutions recorded by the custom Function.
    Gradients w.r.t. inputs, and second-order gradients w.r.t. weights, are unaffected."""
    global weight_gradients_disabled
    old = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = old


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if _use_custom_op():
        return _Conv2dFn.apply(input, weight, bias, False, _pair(stride, 'stride'), _pair(padding, 'padding'),
                               [0, 0], _pair(dilation, 'dilation'), groups)
    return F.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation,
                    groups=groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    if _use_custom_op():
        return _Conv2dFn.apply(input, weight, bias, True, _pair(stride, 'stride'), _pair(padding, 'padding'),
                               _pair(output_padding, 'output_padding'), _pair(dilation, 'dilation'), groups)
    return F.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                              output_padding=output_padding, groups=groups, dilation=dilation)


def _use_custom_op():
    return enabled or weight_gradients_disabled


def _pair(value, name):
    if isinstance(value, int):
        return [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return list(value)
    raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')


class _Conv2dFn(torch.autograd.Function):
    """Native forward; backward via aten.convolution_backward, which is itself differentiable,
    so gradients of any order flow through it."""

    @staticmethod
    def forward(ctx, input, weight, bias, transposed, stride, padding, output_padding, dilation, groups):
        ctx.save_for_backward(input, weight)
        ctx.params = (stride, padding, dilation, transposed, output_padding, groups)
        if transposed:
            return F.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                                      output_padding=output_padding, groups=groups, dilation=dilation)
        return F.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        need_input = ctx.needs_input_grad[0]
        need_weight = ctx.needs_input_grad[1] and not weight_gradients_disabled
        grad_input = grad_weight = grad_bias = None
        if need_input or need_weight:
            grad_input, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad_output, input, weight, None, *ctx.params, [need_input, need_weight, False])
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(dim=[0, 2, 3])
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None
