"""inkn'hue for Krita: the plugin.

Imported by Krita, it registers the docker. Imported anywhere else (the backend, the
tests) it does nothing, so `inknhue_krita.protocol` and `inknhue_krita.client` can be
used without Krita or Qt.
"""

__version__ = "0.1.0"

try:
    import krita
except ImportError:
    krita = None

if krita is not None and not getattr(krita, "IS_FAKE", False):
    from .extension import register, start_logging

    start_logging()
    register()
