"""inkn'hue for Krita: the backend (networks, weights, pipeline, server, command line)."""

__version__ = "0.1.0"
