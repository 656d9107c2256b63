"""Getting Style2Paints V4.5's networks for the `style2paints` provider, only with the user's say.

The author keeps all rights to the trained models, so inkn'hue never ships them and never
fetches them on its own: `inknhue weights download --style2paints` shows where they come
from and their terms, asks (or takes `--accept-terms`), then fetches the four `.net` files
used (resumable, verified against the mirror's own digests; or takes them from `--from
DIR`) and converts them on this machine with `inknhue.weights.convert.keras_h5` into the
weights folder's `style2paints/` (layout in `weights/__init__.py`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from .. import weights
from ..errors import InknhueError, InputError, WeightsError

NETWORKS = weights.STYLE2PAINTS_NETWORKS
MIRROR_REPO = "HighCWu/Style2Paints-4.5-Gradio"   #: a Hugging Face Space holding the V4.5 networks
MIRROR_TYPE = "space"
MIRROR_FILES = tuple(f"nets/{name}.net" for name in NETWORKS)
PROJECT_URL = "https://github.com/lllyasviel/style2paints"
#: about, in MB (the mirror's exact sizes are checked on download)
SIZES_MB = {"tail": 4, "reader": 41.5, "head": 412, "neck": 412}

#: the licence section of lllyasviel/style2paints' README, word for word (its spelling too)
TERMS = ("All codes are released in Apache-2.0 License.\n"
         "We preserve all rights on all pretrained deep learning models and binary releases.\n"
         "Your colorized images are yours, and we do not add any extra lisences to colorized results. "
         "Use your colorized images in any commercial or non-commercial cases.")


def again_command() -> str:
    return f"{weights.inknhue_command()} weights download --style2paints"


def notice(weights_dir: Path, from_dir: Path | None = None) -> str:
    """What the user is asked to agree to: what, from where, under which terms, what happens."""
    total = sum(SIZES_MB.values())
    source = (f"  from:     your folder {from_dir} (tail.net, reader.net, head.net, neck.net, or nets/*.net)"
              if from_dir else
              f"  from:     the Hugging Face Space {MIRROR_REPO}, folder nets/ (a third-party copy of the\n"
              f"            V4.5 release's network files; checked against the Space's own digests)")
    terms = "\n".join(f"    {line}" for line in TERMS.splitlines())
    return (f"Style2Paints V4.5's networks tail, reader, head and neck (about {total:.0f} MB), by lllyasviel\n"
            f"{source}\n"
            f"  project:  {PROJECT_URL} (V4.5)\n"
            f"Their author's terms, the licence section of the project's README:\n"
            f"{terms}\n"
            f"The author keeps all rights to the trained networks. inkn'hue does not ship them or pass them on:\n"
            f"they are fetched for you, converted on this machine into {weights_dir / weights.STYLE2PAINTS},\n"
            f"and used only by the 'style2paints' rough-colour provider. Whether your use is allowed is\n"
            f"between you and their author.")


def agree(weights_dir: Path, from_dir: Path | None, accept_terms: bool, say: Callable[[str], None],
          ask: Callable[[str], str] | None = None, interactive: Callable[[], bool] | None = None) -> None:
    """Show the notice; go on only with --accept-terms or a 'y' typed at a terminal."""
    say(notice(weights_dir, from_dir))
    if accept_terms:
        say("terms accepted with --accept-terms")
        return
    interactive = interactive or (lambda: sys.stdin is not None and sys.stdin.isatty())
    if not interactive():
        raise InputError("Style2Paints' networks come only with your agreement to their author's terms: "
                         "run this in a terminal to answer, or add --accept-terms to say you accept them")
    try:
        answer = (ask or input)("Do you accept these terms? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise InputError("terms not accepted: nothing was downloaded")


def converter():
    """The Keras converter (`inknhue.weights.convert.keras_h5`), and the runtime it converts
    for (`inknhue.networks.keras`), both imported by name so a test can stand them in."""
    try:
        importlib.import_module("inknhue.networks.keras")
        return importlib.import_module("inknhue.weights.convert.keras_h5")
    except ImportError as exc:
        raise WeightsError(f"this inkn'hue cannot convert Keras networks yet ({exc}); "
                           f"nothing was downloaded: update inkn'hue, then run `{again_command()}`") from exc


def _given(from_dir: Path, name: str) -> Path:
    for candidate in (from_dir / f"{name}.net", from_dir / "nets" / f"{name}.net"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{from_dir} has no {name}.net (nor nets/{name}.net): give the folder that holds "
                     f"Style2Paints V4.5's network files")


def _convert(keras, source: Path, weights_dir: Path, name: str) -> Path:
    """Convert into a scratch folder, then move the results in, the network's file last, so
    the provider never sees half a conversion."""
    folder = weights_dir / weights.STYLE2PAINTS
    scratch = folder / ".converting" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    target = weights.style2paints_file(weights_dir, name)
    try:
        try:
            # V4.5 ran on TF 1.14, whatever Keras version wrote the file: TF1's bilinear rule
            keras.convert(source, scratch / target.name, bilinear="legacy")
        except InknhueError:
            raise
        except Exception as exc:  # noqa: BLE001  (one line for the user)
            raise WeightsError(f"{source} could not be converted ({type(exc).__name__}: {exc}); is it "
                               f"Style2Paints V4.5's {name}.net? Run `{again_command()}` again") from exc
        made = sorted(scratch.iterdir(), key=lambda path: path.name == target.name)
        if not made or made[-1].name != target.name:
            raise WeightsError(f"converting {source} wrote no {target.name}")
        for path in made:
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(folder / ".converting", ignore_errors=True)
    return target


def obtain(weights_dir: Path, from_dir: Path | None = None, revision: str | None = None,
           report: Callable[[str], None] = print) -> list[Path]:
    """Fetch (or take from `from_dir`) and convert the networks not converted yet; returns the
    converted files. The terms must have been agreed to (`agree`)."""
    keras = converter()  # before any download: without it the files would be of no use
    wanted = [name for name in NETWORKS if not weights.style2paints_file(weights_dir, name).is_file()]
    for name in NETWORKS:
        if name not in wanted:
            report(f"style2paints/{name}: present")
    if not wanted:
        return []
    if from_dir is not None:
        sources = {name: _given(from_dir, name) for name in wanted}
    else:
        from . import hub

        original = weights_dir / weights.STYLE2PAINTS_ORIGINAL
        hub.download_files(original, MIRROR_REPO, tuple(f"nets/{name}.net" for name in wanted), revision,
                           repo_type=MIRROR_TYPE, report=report, again=again_command())
        sources = {name: original / "nets" / f"{name}.net" for name in wanted}
    converted = []
    for name in wanted:
        report(f"style2paints/{name}: converting {sources[name]}")
        converted.append(_convert(keras, sources[name], weights_dir, name))
        report(f"style2paints/{name}: converted")
    return converted
