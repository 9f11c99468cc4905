"""Persistent classes: instances pickle together with the source code of their defining module,
so a snapshot loads in a process that cannot import (or has a changed copy of) that module.

A persistent object pickles as `_reconstruct_persistent_obj(meta)` with
meta = dict(type='class', version=6, module_src, module_name, class_name, state),
the same format NVIDIA's stylegan2-ada-pytorch uses, so pickles load in both directions.
"""

import copy
import hashlib
import inspect
import pickle
import sys
import types

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

_version = 6                # Format version of `meta`; the one stylegan2-ada-pytorch writes.
_decorators = set()         # Every class returned by persistent_class.
_import_hooks = []          # Callables applied to `meta` before an object is rebuilt.
_module_to_src_dict = dict()  # module object -> its source text
_src_to_module_dict = dict()  # source text -> module object built from it

#----------------------------------------------------------------------------


def persistent_class(orig_class):
    """Class decorator: instances of the returned subclass record their constructor arguments
    (as `init_args` / `init_kwargs`) and pickle with their module's source code."""
    if not isinstance(orig_class, type):
        raise TypeError(f'persistent_class: expected a class, got {type(orig_class).__name__}')
    if is_persistent(orig_class):
        return orig_class

    orig_module = sys.modules[orig_class.__module__]
    orig_module_src = _module_to_src(orig_module)

    class Decorator(orig_class):
        _orig_module_src = orig_module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)
            # The loader finds the class by name in the module source: it must be a top-level name.
            if orig_module.__dict__.get(orig_class.__name__) is not Decorator:
                raise TypeError(f'persistent_class: {orig_class.__name__} must be defined at the top level of '
                                f'module {orig_module.__name__} (and decorated there) to be picklable')
            _check_pickleable((self._init_args, self._init_kwargs), what=f'{self._orig_class_name} constructor arguments')

        @property
        def init_args(self):
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self):
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            if type(self) is not Decorator:  # It would unpickle as this base class.
                raise TypeError(f'{type(self).__name__} subclasses persistent class {orig_class.__name__}; '
                                f'decorate it with persistent_class too')
            meta = dict(type='class', version=_version, module_src=self._orig_module_src,
                        module_name=orig_module.__name__, class_name=self._orig_class_name,
                        state=self.__getstate__())
            return (_reconstruct_persistent_obj, (meta,))

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__qualname__
    Decorator.__module__ = orig_class.__module__
    Decorator.__doc__ = orig_class.__doc__
    _decorators.add(Decorator)
    return Decorator

#----------------------------------------------------------------------------


def is_persistent(obj):
    """True for a class made by persistent_class, or an instance of one."""
    try:
        if obj in _decorators:
            return True
    except TypeError:  # Unhashable objects cannot be decorators.
        pass
    return type(obj) in _decorators


def import_hook(hook):
    """Register hook(meta) -> meta (or None after editing in place), called on every persistent
    object before it is rebuilt; lets callers patch meta.module_src or meta.state of old pickles."""
    if not callable(hook):
        raise TypeError(f'import_hook: expected a callable, got {type(hook).__name__}')
    _import_hooks.append(hook)

#----------------------------------------------------------------------------


def _reconstruct_persistent_obj(meta):
    """Unpickling entry point (its name is part of the pickle format)."""
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state)
    for hook in _import_hooks:
        result = hook(meta)
        if result is not None:
            meta = result
    if meta.get('type') != 'class':
        raise ValueError(f'Unknown persistent object type {meta.get("type")!r} in pickle')
    if meta.get('version') != _version:
        raise ValueError(f'Persistent object format version {meta.get("version")!r} is not supported '
                         f'(this code reads version {_version})')

    module = _src_to_module(meta.module_src)
    if meta.class_name not in module.__dict__:
        raise ValueError(f'Pickled class {meta.class_name} is not defined in the pickled source of module {meta.module_name}')
    decorator_class = persistent_class(module.__dict__[meta.class_name])
    obj = decorator_class.__new__(decorator_class)
    setstate = getattr(obj, '__setstate__', None)
    if callable(setstate):
        setstate(meta.state)
    else:
        obj.__dict__.update(meta.state)
    return obj

#----------------------------------------------------------------------------


def _module_to_src(module):
    """Source text of a module (remembered for modules built from pickled source)."""
    src = _module_to_src_dict.get(module, None)
    if src is None:
        try:
            src = inspect.getsource(module)
        except (OSError, TypeError) as e:
            raise TypeError(f'persistent_class: cannot read the source of module {module.__name__}: {e}') from e
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
    return src


def _src_to_module(src):
    """Module built by executing `src`; one module per distinct source text."""
    module = _src_to_module_dict.get(src, None)
    if module is None:
        module_name = '_imported_module_' + hashlib.sha1(src.encode('utf-8')).hexdigest()
        module = types.ModuleType(module_name)
        sys.modules[module_name] = module
        # Register before exec: persistent_class inside the source looks its module up here.
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
        try:
            exec(compile(src, f'<persistent module {module_name}>', 'exec'), module.__dict__)
        except BaseException:
            del sys.modules[module_name]
            del _module_to_src_dict[module]
            del _src_to_module_dict[src]
            raise
    return module

#----------------------------------------------------------------------------


def _check_pickleable(obj, what):
    """Fail early (at construction, not at snapshot time) when constructor arguments cannot be pickled.
    Tensors, arrays and persistent objects are skipped: they pickle on their own."""
    def strip(x):
        if isinstance(x, (type(None), str, int, float, bool, bytes, bytearray)):
            return None
        if isinstance(x, (tuple, list, set)):
            return [strip(v) for v in x]
        if isinstance(x, dict):
            return [[strip(k), strip(v)] for k, v in x.items()]
        if isinstance(x, (torch.Tensor, np.ndarray)) or is_persistent(x):
            return None
        return x
    try:
        pickle.dumps(strip(obj))
    except Exception as e:
        raise TypeError(f'{what} are not picklable: {e}') from e

#----------------------------------------------------------------------------
