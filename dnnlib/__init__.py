"""Small utilities shared by the whole codebase: EasyDict, object construction by name, downloads."""

from .util import EasyDict, make_cache_dir_path  # noqa: F401
