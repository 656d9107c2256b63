"""The `inknhue` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import __version__, weights
from .defaults import DEFAULT_MAX_SIZE, DEFAULT_RATIO, DEVICE_CHOICES, OUTPUT_SIZES
from .errors import InknhueError, InputError
from .logs import setup_logging

log = logging.getLogger(__name__)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="DIR",
                        help=f"weights folder (default: ${weights.ENV_VAR} or {weights.default_weights_dir()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inknhue", description="inkn'hue manga colorization: shading + rough colours -> aligned colours.")
    parser.add_argument("--version", action="version", version=f"inknhue {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    colorize = commands.add_parser("colorize", help="colorize a page",
                                   description="Colorize PAGE with the rough colours ROUGH.")
    colorize.add_argument("page", metavar="PAGE", help="the manga page (any image Pillow reads)")
    colorize.add_argument("--rough", metavar="ROUGH", required=True,
                          help="rough colours of the same page (e.g. Style2Paints V4.5 output)")
    colorize.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the result")
    colorize.add_argument("--ratio", type=_ratio, default=DEFAULT_RATIO,
                          help=f"colour blend, 0 = aligned VAE output, 1 = rough colours (default {DEFAULT_RATIO})")
    colorize.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE,
                          help=f"working resolution, a multiple of 32 (default {DEFAULT_MAX_SIZE})")
    colorize.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                          help="auto picks CUDA, then Apple MPS, then the CPU")
    colorize.add_argument("--output-size", choices=OUTPUT_SIZES, default="page",
                          help="page: PAGE's own size (default); working: as the network made it")
    _add_weights_option(colorize)

    weights_cmd = commands.add_parser("weights", help="download, locate or check the weights")
    weights_sub = weights_cmd.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    download = weights_sub.add_parser("download", help=f"fetch the released weights from {weights.HF_REPO}")
    download.add_argument("--revision", help="a branch, tag or commit of the hub repo (default: main)")
    _add_weights_option(download)
    path = weights_sub.add_parser("path", help="print the weights folder in use")
    _add_weights_option(path)
    check = weights_sub.add_parser("check", help="load every network strictly and report")
    _add_weights_option(check)
    return parser


def _print_progress(stage: str, index: int, total: int, seconds: float | None) -> None:
    if seconds is not None:
        _say(f"[{index}/{total}] {stage:<9} {seconds:6.2f} s")


def cmd_colorize(args) -> int:
    from .imaging import read_rgb, write_image
    from .pipeline import STAGES, Engine
    from .rough import RoughRequest, get_provider

    out = Path(args.output)
    for given in (args.page, args.rough):
        if out.resolve() == Path(given).resolve():
            raise InputError(f"refusing to overwrite the input {given} with the result; choose another -o")
    page = read_rgb(args.page, "page")
    rough = read_rgb(args.rough, "rough colours")
    engine = Engine(args.weights, args.device)
    engine.check_weights()
    _say(f"loading weights from {engine.weights_dir} on {engine.device.type}")
    _say(f"[0/{len(STAGES)}] load      {engine.load():6.2f} s")
    started = time.perf_counter()
    result = engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough),
                             max_size=args.max_size, ratio=args.ratio, progress=_print_progress)
    final = result.final(args.ratio, args.output_size)
    write_image(final, out)
    _say(f"wrote {out} ({final.shape[1]}x{final.shape[0]}) in {time.perf_counter() - started:.2f} s")
    return 0


def cmd_weights(args) -> int:
    directory = weights.resolve_weights_dir(args.weights)
    if args.weights_command == "path":
        print(directory)
        missing = weights.missing_files(directory)
        if missing:
            _say(f"missing: {', '.join(missing)}; {weights.HOW_TO_GET}")
            return 1
        return 0
    if args.weights_command == "download":
        from . import hub

        _say(f"downloading {weights.HF_REPO} into {directory}")
        hub.download(directory, args.revision, report=_say)
        _say("weights ready")
        return 0
    # check
    from .checkpoints import load_alignment_vae, load_shading_generator

    started = time.perf_counter()
    load_shading_generator(directory)
    load_alignment_vae(directory)
    _say(f"{directory}: all networks load strictly ({time.perf_counter() - started:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    log.info("inknhue %s: %s", __version__, " ".join(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "colorize":
            return cmd_colorize(args)
        return cmd_weights(args)
    except InknhueError as exc:
        log.error("%s", exc)
        _say(f"inknhue: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("inknhue: interrupted")
        return 130
    except Exception:
        log.exception("unexpected failure")
        _say(f"inknhue: unexpected failure; details in {log_file}")
        raise


if __name__ == "__main__":
    sys.exit(main())
