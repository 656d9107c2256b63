"""inkn'hue for Krita: the plugin.

Imported by Krita, it registers the docker. Imported anywhere else (the backend, the
tests) it does nothing, so `inknhue_krita.protocol` and `inknhue_krita.client` can be
used without Krita.
"""

try:
    import krita  # noqa: F401
except ImportError:
    krita = None
