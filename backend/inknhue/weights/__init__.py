"""The weights folder: where it is and what it holds.

This package is where weights come from and how they are read: `checkpoints` (reading the
released checkpoints safely, loading them strictly), `hub` (downloads from the Hugging Face
hub), `style2paints` (Style2Paints' networks, with the user's agreement), `convert/`
(foreign formats to files loaded safely).

The folder mirrors the Hugging Face repo `rossiyareich/inknhue`:

    pretrained_nets/shader.ckpt                 the shading generator's state_dict
    pretrained_nets/kl-f8.ckpt                  the kl-f8 training checkpoint
    pretrained_nets/kl-f8.yaml                  its architecture
    conditional_nets/model_epoch000019.ckpt     the alignment VAE's conditional parts

and, only where the user fetched them (`inknhue weights download --style2paints`), the
Style2Paints V4.5 networks of the `style2paints` rough-colour provider:

    style2paints/{tail,reader,head,neck}.safetensors   converted by inknhue.weights.convert
                                                        (with whatever it writes beside them)
    style2paints/original/nets/*.net                    the author's Keras files as downloaded,
                                                        kept to convert again; not read at run time
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import WeightsError

HF_REPO = "rossiyareich/inknhue"
SHADER = "pretrained_nets/shader.ckpt"
KL_F8 = "pretrained_nets/kl-f8.ckpt"
KL_F8_CONFIG = "pretrained_nets/kl-f8.yaml"
CONDITIONAL = "conditional_nets/model_epoch000019.ckpt"
FILES = (SHADER, KL_F8, KL_F8_CONFIG, CONDITIONAL)

ENV_VAR = "INKNHUE_WEIGHTS"

STYLE2PAINTS = "style2paints"                        #: the converted Style2Paints networks' folder
STYLE2PAINTS_NETWORKS = ("tail", "reader", "head", "neck")
STYLE2PAINTS_ORIGINAL = f"{STYLE2PAINTS}/original"  #: downloaded `.net` files, in the mirror's layout


def inknhue_script() -> Path:
    """This environment's `inknhue` command (beside its Python)."""
    return Path(sys.executable).parent / ("inknhue.exe" if os.name == "nt" else "inknhue")


def inknhue_command() -> str:
    """How to name `inknhue` in advice: by its full path, since the venv the installer makes is
    not on PATH (plain `inknhue` only where no such script exists, e.g. run from a source tree)."""
    script = inknhue_script()
    return str(script) if script.exists() else "inknhue"


HOW_TO_GET = (f"get the weights with `{inknhue_command()} weights download` "
              f"(or point --weights or INKNHUE_WEIGHTS at a folder that holds them)")
REPLACE = f"`{inknhue_command()} weights download` replaces it"


def default_weights_dir() -> Path:
    """The user data dir's weights folder (platformdirs' user_data_dir, computed with the
    standard library so the installer can use it before any dependency is installed)."""
    from inknhue_krita.paths import user_data_dir

    return user_data_dir() / "weights"


def resolve_weights_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--weights DIR wins, then $INKNHUE_WEIGHTS, then the user data dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_weights_dir()


def missing_files(weights_dir: Path) -> list[str]:
    return [name for name in FILES if not (weights_dir / name).is_file()]


def require(weights_dir: Path, name: str) -> Path:
    path = weights_dir / name
    if not path.is_file():
        raise WeightsError(f"weights file missing: {path}; {HOW_TO_GET}")
    return path


def style2paints_file(weights_dir: Path, network: str) -> Path:
    """Where a converted Style2Paints network lies (what `inknhue.weights.convert.keras_h5.convert` writes
    as `dst` and `inknhue.networks.keras.load` reads)."""
    return weights_dir / STYLE2PAINTS / f"{network}.safetensors"


def missing_style2paints(weights_dir: Path) -> list[str]:
    return [name for name in STYLE2PAINTS_NETWORKS if not style2paints_file(weights_dir, name).is_file()]
