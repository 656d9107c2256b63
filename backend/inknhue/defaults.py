"""User-facing defaults and choices, kept free of heavy imports so the CLI and plugin start fast."""

from inknhue_krita.messages import LAYERS, OUTPUT_SIZES  # noqa: F401  (the protocol's choices are the CLI's)

DEFAULT_MAX_SIZE = 768          #: the published app's max_size
DEFAULT_RATIO = 0.8             #: the published app's colour ratio
MIN_MAX_SIZE, MAX_MAX_SIZE = 64, 2048
#: the working resolution's area at most: an A4 or US comic page at max size 2048 (2048 x 3328);
#: beyond it the VAE's full-resolution levels outgrow a 24 GB machine
MAX_WORKING_PIXELS = 2048 * 3328
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: engine/options.py: the VAE in bfloat16 where native / as the published app / float32 throughout
PRECISIONS = ("fast", "published", "reference")
#: the rough-colour providers (inknhue.rough); style2paints runs only where its networks were fetched
PROVIDER_NAMES = ("flats", "shader", "image", "style2paints")
