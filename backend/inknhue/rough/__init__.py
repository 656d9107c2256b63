"""Rough-colour providers: where the pipeline's second prior, the rough colours, comes from.

The published method takes Style2Paints' output; this package lets any source plug in.
`base.py` says what a provider is; one module per provider (`flats`, `shader`, `image`,
`style2paints`), each registered by importing this package; `transfer.py` the optional
colour transfer from a reference.
"""

from . import flats, image, shader, style2paints  # noqa: F401  (registers the built-in providers)
from .base import PROVIDERS, Networks, RoughProvider, RoughRequest, empty_hints_warning, get_provider, register

__all__ = ["PROVIDERS", "Networks", "RoughProvider", "RoughRequest", "empty_hints_warning", "get_provider",
           "register"]
