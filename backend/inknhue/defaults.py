"""User-facing defaults and choices, kept free of heavy imports so the CLI and plugin start fast."""

DEFAULT_MAX_SIZE = 768          #: the published app's max_size
DEFAULT_RATIO = 0.8             #: the published app's colour ratio
MIN_MAX_SIZE, MAX_MAX_SIZE = 64, 4096
OUTPUT_SIZES = ("page", "working")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PROVIDER_NAMES = ("flats", "shader", "image")  #: the rough-colour providers (inknhue.rough)
