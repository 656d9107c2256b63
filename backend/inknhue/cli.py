"""The `inknhue` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from inknhue_krita.protocol import DEFAULT_PORT

from . import __version__, weights
from .defaults import DEFAULT_MAX_SIZE, DEFAULT_RATIO, DEVICE_CHOICES, LAYERS, OUTPUT_SIZES, PRECISIONS, PROVIDER_NAMES
from .errors import InknhueError, InputError
from .install import installer
from .logs import LOG_NAME, log_dir, setup_logging
from .runtime import host_memory
from .runtime.termination import Terminated

log = logging.getLogger(__name__)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1.0 <= value <= 86400.0:
        raise argparse.ArgumentTypeError(f"must be between 1 and 86400 seconds, got {text}")
    return value


def _add_page_options(parser: argparse.ArgumentParser, chapter: bool = False) -> None:
    if chapter:
        parser.add_argument("pages", metavar="PAGE", nargs="+",
                            help="the manga page (any image Pillow reads); several, or folders of them: a chapter")
    else:
        parser.add_argument("page", metavar="PAGE", help="the manga page (any image Pillow reads)")
    parser.add_argument("--hints", metavar="HINTS",
                        help="hint strokes: an image of the page's size, colour where it is not transparent"
                             + ("; for a chapter, a folder of them matched by name" if chapter else ""))
    parser.add_argument("--prior", choices=PROVIDER_NAMES,
                        help="where the rough colours come from: flats (default with --hints), "
                             "shader (the shading network guided by the hints), image (--rough), "
                             "style2paints (Style2Paints V4.5 from the hints and --reference; "
                             "needs `inknhue weights download --style2paints`)")
    parser.add_argument("--rough", metavar="ROUGH",
                        help="a rough-colour image of the same page (e.g. Style2Paints V4.5 output)"
                             + ("; for a chapter, a folder of them matched by name" if chapter else ""))
    parser.add_argument("--reference", metavar="REF",
                        help="a coloured page or character sheet: flats take unhinted regions' colours from it"
                             + ("; one for every page of a chapter" if chapter else ""))
    parser.add_argument("--transfer", action="store_true",
                        help="match the rough colours' hues to the reference (global CIELAB transfer)")
    parser.add_argument("--fill-all", action="store_true",
                        help="flats: colour regions without strokes from the nearest stroke too")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE,
                        help=f"working resolution, a multiple of 32 (default {DEFAULT_MAX_SIZE})")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto picks CUDA, then Apple MPS, then the CPU")
    _add_precision_option(parser)
    _add_weights_option(parser)


def _add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fast",
                        help="fast: the VAE in bfloat16 where the device computes it natively (CUDA, CPUs with "
                             "AVX512-BF16 or AMX), a few levels from float32; published: as the published app "
                             "runs on this device; reference: float32 throughout (default fast)")


def engine_options(args):
    from .engine.options import from_args

    return from_args(args)


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="DIR",
                        help=f"weights folder (default: ${weights.ENV_VAR} or {weights.default_weights_dir()})")


CHAPTER_HELP = """\
chapters:
  inknhue colorize PAGES... -o FOLDER --hints HINTS_FOLDER [--reference REF]
  PAGES are image files and folders of images (not their subfolders, not hidden files),
  colorized in natural order (p2 before p10) into FOLDER/<page name>.png. With one page,
  -o names a folder when it is one already or ends with a slash.
  Matching by file name: HINTS_FOLDER (and a --rough folder) holds, for page p001.jpg,
  p001.png or p001 with another image extension. A page without its match, or with two,
  is an error before any work; so are two pages with one name and an output over an input.
  --reference REF applies to every page: one palette for the chapter.
  Pages already done are skipped, so an interrupted run is resumed by running it again; a
  page whose hints, rough image, reference or settings changed since is colorized again
  unless its output was edited since (FOLDER/.inknhue-chapter.json records what was
  written). --overwrite redoes every page. A failed page is reported and the others go on
  (exit 1); Ctrl-C keeps the pages written (exit 130).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inknhue", description="inkn'hue manga colorization: shading + rough colours -> aligned colours.")
    parser.add_argument("--version", action="version", version=f"inknhue {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    colorize = commands.add_parser(
        "colorize", help="colorize a page or a chapter",
        description="Colorize PAGE from hint strokes (--hints) or a rough-colour image (--rough);\n"
                    "or a chapter: several pages, or folders of them, into a folder (see below).",
        epilog=CHAPTER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_page_options(colorize, chapter=True)
    colorize.add_argument("-o", "--output", metavar="OUT", required=True,
                          help="where to write the result: an image file for one page, a folder for a chapter")
    colorize.add_argument("--overwrite", action="store_true",
                          help="chapter: redo the pages whose outputs exist (default: skip them)")
    colorize.add_argument("--ratio", type=_ratio, default=DEFAULT_RATIO,
                          help=f"colour blend, 0 = aligned VAE output, 1 = rough colours (default {DEFAULT_RATIO})")
    colorize.add_argument("--output-size", choices=OUTPUT_SIZES, default="page",
                          help="page: PAGE's own size, with its own lines, lettering and tone (default); "
                               "working: as the network made it (the published app's output)")
    colorize.add_argument("--layer", choices=LAYERS, default="full",
                          help="full: the coloured page (default); colour: the colours without the line art, "
                               "for a Multiply layer under your ink (multiplied by PAGE it gives the full result); "
                               "flats: the flat colours of your strokes alone, RGBA, transparent where paper stays "
                               "(no network, no weights: --prior flats; write a .png, .tif or .webp)")
    colorize.add_argument("--server", metavar="ADDRESS",
                          help="send the job to a running `inknhue serve` (tcp://HOST:PORT, or auto: "
                               "its connection file) instead of running the networks here; a chapter "
                               "sends one job per page")
    colorize.add_argument("--timeout", type=float, default=10.0,
                          help="with --server: seconds without an answer before giving up (default 10)")
    colorize.add_argument("--cluster", metavar="ADDRESS",
                          help="a chapter on Ray (pip install 'inknhue[cluster]'): ray starts a local Ray "
                               "(every GPU of this machine), auto joins the one Ray finds, ray://HOST:PORT or "
                               "HOST:PORT joins a running cluster; one actor per GPU, pages to whichever is free")
    colorize.add_argument("--actors", type=_positive_int, metavar="N",
                          help="with --cluster: how many actors (default: one per GPU, or one per node without GPUs)")
    colorize.add_argument("--actor-cpus", type=_positive_int, metavar="N",
                          help="with --cluster and no GPUs: CPUs per actor (default: a node's CPUs)")
    _add_engine_options(colorize)

    serve = commands.add_parser(
        "serve", help="run the backend for the Krita plugin",
        description="Serve colorization jobs over ZeroMQ, keeping the models loaded (see docs/protocol.md).")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--bind", default="127.0.0.1", metavar="HOST",
                       help="address to listen on (default 127.0.0.1; others need --curve-dir)")
    serve.add_argument("--curve-dir", type=Path, metavar="DIR",
                       help="encrypt and authenticate with ZeroMQ CURVE keys from DIR")
    serve.add_argument("--make-curve-keys", type=Path, metavar="DIR",
                       help="create a server and a client key pair in DIR, then exit")
    serve.add_argument("--cache-mb", type=int, default=2048,
                       help="memory for cached intermediates (default 2048)")
    serve.add_argument("--connection-file", type=Path, metavar="PATH",
                       help="where to write the connection file (default: the user data dir)")
    serve.add_argument("--lease", type=_seconds, metavar="SECONDS",
                       help="stop when no client has sent anything for SECONDS (the Krita plugin starts "
                            "its backend with a lease and renews it, so a killed Krita leaves no backend behind)")
    serve.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                       help="auto picks CUDA, then Apple MPS, then the CPU")
    serve.add_argument("--no-calibration", dest="calibrate", action="store_false",
                       help="do not time small passes once the models load (the first job's time left "
                            "then waits for its own stages)")
    _add_precision_option(serve)
    _add_weights_option(serve)

    rough = commands.add_parser(
        "rough", help="write the rough colours alone",
        description="Write the rough colours a provider makes for PAGE (at PAGE's size), to inspect them.")
    _add_page_options(rough)
    rough.add_argument("-o", "--output", metavar="ROUGH", required=True, help="where to write the rough colours")
    _add_engine_options(rough)

    up = commands.add_parser(
        "upscale", help="bring a colouring made at a lower resolution to the page's size, with its own ink",
        description="Bring COLOURED (any colouring of PAGE: another tool's, an older result, a hand colouring, "
                    "at any size up to the page's and with its shape) to PAGE's size with PAGE's own lines, "
                    "lettering and tone, as `colorize --output-size page` does. A chapter: PAGE a folder of "
                    "pages, COLOURED a folder of colourings matched by file name (p001.jpg -> p001.png), "
                    "-o a folder (one <page>.png each).")
    up.add_argument("pages", metavar="PAGE", nargs="+", help="the page (or pages, or folders of them)")
    up.add_argument("coloured", metavar="COLOURED", help="its colouring, or a folder of them for a chapter")
    up.add_argument("-o", "--output", metavar="OUT", required=True,
                    help="an image file for one page, a folder for a chapter")
    up.add_argument("--layer", choices=("full", "colour"), default="full",
                    help="full: the coloured page (default); colour: the colours without the line art, for a "
                         "Multiply layer under your ink")
    up.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                    help="where to render: auto (a CUDA or Apple GPU if there is one, default), cpu, cuda, mps")
    up.add_argument("--overwrite", action="store_true",
                    help="a chapter: do every page again, also those done or retouched since (by default a "
                         "rerun does only pages whose page or colouring changed, and keeps retouched outputs)")

    install = commands.add_parser(
        "install", help="set up everything: torch, weights, the Krita plugin",
        description="Install torch for this machine, the weights, and the Krita plugin (again and again safely).")
    installer.add_options(install)  # shared with installer/install.py, whose --help shows them too
    install.add_argument("--source", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    install.add_argument("--rerun-command", metavar="COMMAND", help=argparse.SUPPRESS)  # from installer/install.py
    install.add_argument("--uninstall", action="store_true", help="remove exactly what was installed")

    doctor = commands.add_parser("doctor", help="check the whole installation and say how to fix it")
    doctor.add_argument("--krita-dir", type=Path, metavar="PATH", help="Krita's resource folder")
    _add_weights_option(doctor)

    weights_cmd = commands.add_parser("weights", help="download, locate or check the weights")
    weights_sub = weights_cmd.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    download = weights_sub.add_parser("download", help=f"fetch the released weights from {weights.HF_REPO}")
    download.add_argument("--revision", help="a branch, tag or commit of the hub repo (default: main)")
    download.add_argument("--style2paints", action="store_true",
                          help="instead: Style2Paints V4.5's networks for --prior style2paints, after showing "
                               "where they come from and their author's terms, and only if you accept them")
    download.add_argument("--accept-terms", action="store_true",
                          help="with --style2paints: accept the terms without being asked (for scripts)")
    download.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                          help="with --style2paints: convert the .net files you already have in DIR instead "
                               "of downloading them")
    _add_weights_option(download)
    path = weights_sub.add_parser("path", help="print the weights folder in use")
    _add_weights_option(path)
    check = weights_sub.add_parser("check", help="load every network strictly and report")
    _add_weights_option(check)

    _add_style2paints_commands(commands)
    return parser


def _add_style2paints_commands(commands) -> None:
    style2paints = commands.add_parser(
        "style2paints", help="Style2Paints V4.5's networks, from your own copy of its .net files",
        description="Style2Paints V4.5 ships its networks as Keras HDF5 files (nets/*.net); inkn'hue "
                    "converts them to safetensors and runs them with torch, never with their Python code.")
    actions = style2paints.add_subparsers(dest="style2paints_command", required=True, metavar="ACTION")
    inspect = actions.add_parser(
        "inspect", help="what inkn'hue makes of a folder of .net files",
        description="For each .net (or .h5) file in DIR: the Keras version, inputs and outputs, the layer "
                    "types with counts and whether each is supported, and the conversion's result "
                    "(converted in a temporary folder, loaded and run once). Exit status 1 if any fails.")
    inspect.add_argument("directory", metavar="DIR", help="a folder of Keras .net / .h5 files (or one file)")
    inspect.add_argument("--reference", metavar="REF",
                         help="a folder of TensorFlow's outputs for the same files (written by "
                              "inknhue/weights/convert/keras_reference.py) to compare the conversion with")
    inspect.add_argument("--bilinear", choices=("legacy", "half_pixel"),
                         help="UpSampling2D's bilinear rule: legacy (TF <= 1.14) or half_pixel (TF >= 1.15); "
                              "default: by the file's keras_version")
    inspect.add_argument("--size", type=int, default=128,
                         help="the height and width of the zero input each model is run on once (default 128)")


def _print_progress(event, stream=None) -> None:
    """A line per stage; on a terminal, the running stage's part done and the time left too,
    redrawn in place (a CPU spends a minute in one stage)."""
    stream = stream or sys.stderr
    terminal = stream.isatty()
    if event.seconds is not None:
        line = f"[{event.index}/{event.total}] {event.stage:<9} {event.seconds:6.2f} s" + \
            (" (cached)" if event.cached else "")
        print(("\r\033[K" if terminal else "") + line, file=stream, flush=True)
    elif terminal and event.fraction is not None:
        left = f", about {event.eta:.0f} s left" if event.eta is not None else ", estimating the time left"
        print(f"\r\033[K[{event.index}/{event.total}] {event.stage:<9} {100 * event.fraction:3.0f}%{left}",
              end="", file=stream, flush=True)


def _rough_inputs(args):
    """Read what the artist gave and check all of it that needs no weights; returns (page,
    provider, request). A missing file is said before torch is imported (seconds)."""
    for what, given in (("page", args.page), ("hints", args.hints), ("rough colours", args.rough),
                        ("reference", args.reference)):
        if given and not Path(given).exists():
            raise InputError(f"{what} not found: {given}")
    from .engine.pipeline import check_max_size
    from .page.imaging import check_work_size, check_writable, read_hints, read_rgb
    from .rough import RoughRequest, get_provider
    from .rough.base import empty_hints_warning

    check_max_size(args.max_size)
    prior = args.prior or ("image" if args.rough else "flats")
    if args.rough and prior != "image":
        raise InputError(f"--rough is the input of --prior image, not of --prior {prior}")
    if prior != "image" and not args.hints:
        raise InputError(f"--prior {prior} needs hint strokes: --hints HINTS.png")
    if args.transfer and not args.reference:
        raise InputError("--transfer needs a reference image: --reference REF")
    for given in (args.page, args.hints, args.rough, args.reference):
        if given and Path(args.output).resolve() == Path(given).resolve():
            raise InputError(f"refusing to overwrite the input {given}; choose another -o")
    check_writable(args.output)  # before any slow stage
    page = read_rgb(args.page, "page")
    check_work_size(page.shape[1], page.shape[0], args.max_size)
    request = RoughRequest(
        page=page,
        hints=read_hints(args.hints) if args.hints else None,
        reference=read_rgb(args.reference, "reference") if args.reference else None,
        rough=read_rgb(args.rough, "rough colours") if args.rough else None,
        fill_all=args.fill_all, transfer=args.transfer, max_size=args.max_size)
    provider = get_provider(prior)
    provider.validate(request)  # e.g. hints of another size than the page: now, not after the weights load
    if prior != "image" and empty_hints_warning(request):
        raise InputError(f"the hints {args.hints} are fully transparent: paint colour strokes on the layer "
                         f"(the result would be the page on blank paper)")
    return page, provider, request


def check_flats_args(args) -> None:
    """--layer flats: the flats provider's layer, in a file that keeps transparency."""
    from .page.imaging import check_alpha_format

    if (args.prior or ("image" if args.rough else "flats")) != "flats":
        raise InputError("--layer flats is the flats of your hint strokes: use it with --prior flats (the default)")
    if not args.hints:
        raise InputError("--layer flats needs hint strokes: --hints HINTS.png")
    check_alpha_format(args.output)


def _flats_page(args) -> int:
    """--layer flats: no network, no weights, here whatever --server says."""
    from .page.imaging import write_image
    from .rough.flats import flat_layer

    check_flats_args(args)
    page, provider, request = _rough_inputs(args)
    for warning in provider.check(request):
        _say(f"warning: {warning}")
    started = time.perf_counter()
    layer = flat_layer(page, provider.checked_hints(request), request.fill_all, request.reference)
    write_image(layer, args.output)
    _say(f"wrote the flats {args.output} ({layer.shape[1]}x{layer.shape[0]}) in {time.perf_counter() - started:.2f} s")
    return 0


def cmd_colorize(args) -> int:
    from .batch import chapter

    if args.cluster:
        from .batch import cluster

        if not chapter.is_chapter(args.pages, args.output):
            raise InputError("--cluster colorizes chapters: give -o a folder (one that exists, or a name ending in /)")
        return cluster.run(args, say=_say)
    if chapter.is_chapter(args.pages, args.output):
        return chapter.run(args, say=_say)
    args.page = args.pages[0]  # one page file to one image file: written over whatever is there
    return _colorize_page(args)


def _colorize_page(args) -> int:
    if args.layer == "flats":
        return _flats_page(args)
    page, provider, request = _rough_inputs(args)
    from .engine.pipeline import STAGES, Engine, output_made  # torch: only once the inputs are sound
    from .page.imaging import write_image

    if args.server:
        return _colorize_on_server(args, page, provider, request)
    engine = Engine(args.weights, args.device, engine_options(args))
    engine.check_weights()
    provider.require(engine.weights_dir)
    _say(f"loading weights from {engine.weights_dir} on {engine.device.type}")
    _say(f"[0/{len(STAGES)}] load      {engine.load():6.2f} s")
    said = engine.weights_warnings  # NaN weights, said at load (and not again below)
    for warning in said:
        _say(f"warning: {warning}")
    started = time.perf_counter()
    result = engine.colorize(page, provider, request, max_size=args.max_size, ratio=args.ratio,
                             progress=_print_progress)
    for warning in result.warnings:
        if warning not in said:
            _say(f"warning: {warning}")
    rendering = time.perf_counter()
    final = result.final(args.ratio, args.output_size, args.layer)
    output_made(time.perf_counter() - rendering, result.page_size)
    write_image(final, args.output)
    _say(f"wrote {args.output} ({final.shape[1]}x{final.shape[0]}) in {time.perf_counter() - started:.2f} s")
    return 0


def _colorize_on_server(args, page, provider, request) -> int:
    import numpy as np

    from inknhue_krita.client import Client, ServerError
    from inknhue_krita.protocol import RawImage

    from .page.imaging import write_image

    def raw(array):
        if array is None:
            return None
        return RawImage(array.shape[1], array.shape[0], "RGBA" if array.shape[2] == 4 else "RGB",
                        np.ascontiguousarray(array).tobytes())

    started = time.perf_counter()
    try:
        with Client(args.server, timeout=args.timeout) as client:
            hello = client.hello()
            _say(f"server {client.connection.address}: {hello['device']['name']}, models {hello['models']}")
            job = client.colorize(raw(page), raw(request.hints), raw(request.reference), raw(request.rough),
                                  provider=provider.name, ratio=args.ratio, max_size=args.max_size,
                                  fill_all=request.fill_all, transfer=request.transfer,
                                  output={"size": args.output_size, "channels": "RGB", "layer": args.layer})

            def show(event):
                if event.get("type") == "progress" and event.get("seconds") is not None:
                    _print_progress(argparse.Namespace(**{k: event[k] for k in ("stage", "index", "total",
                                                                                  "seconds", "cached")}))

            header, image = client.wait(job, on_event=show)
            for warning in header.get("warnings", []):
                _say(f"warning: {warning}")
    except ServerError as exc:
        raise InknhueError(f"the backend says: {exc.message}") from None
    final = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
    write_image(final, args.output)
    _say(f"wrote {args.output} ({image.width}x{image.height}) in {time.perf_counter() - started:.2f} s "
         f"(stages run: {', '.join(header['ran']) or 'none, all cached'})")
    return 0


def cmd_serve(args) -> int:
    from .server import Server, make_curve_keys, serve

    if args.make_curve_keys:
        make_curve_keys(args.make_curve_keys)
        _say(f"wrote CURVE keys to {args.make_curve_keys} (give clients/laptop.key_secret's pair to the client)")
        return 0
    server = Server(args.weights, args.device, options=engine_options(args), host=args.bind, port=args.port,
                    connection_file=args.connection_file, cache_bytes=args.cache_mb << 20,
                    curve_dir=args.curve_dir, lease=args.lease, calibrate=args.calibrate)

    def ready(address):
        print(f"inknhue serve: listening on {address}", flush=True)
        _say(f"connection file: {server.connection_file}; logs: {log_dir() / 'server.log'}")
        for note in server.notes:
            _say(f"warning: {note}")

    serve(server, on_ready=ready)
    left = server.unfinished()
    if left:
        # Stopped while the models load (SIGTERM, an expired lease): torch cannot be cut short, and
        # Python exiting under a thread that runs its C++ aborts the process ("terminate called
        # without an active exception"). Everything is closed and the connection file is gone:
        # end here, without the interpreter's teardown.
        log.info("stopped while %s was still running (loading the models): exiting now", ", ".join(left))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def cmd_install(args) -> int:
    if args.uninstall:
        return installer.uninstall()
    rerun = args.rerun_command or installer.command_line(
        [weights.inknhue_command(), "install", *installer.options_argv(args)])
    return installer.install(args.device, args.weights_from, args.no_weights, args.krita_dir, args.source,
                             args.wheels_from, args.pyzmq, torch_index=args.torch_index, rerun=rerun,
                             own_weights=args.own_weights, cluster=args.cluster)


def cmd_doctor(args) -> int:
    from .install import doctor

    return doctor.run(args.krita_dir, weights.resolve_weights_dir(args.weights))


def cmd_rough(args) -> int:
    from .engine.pipeline import Engine
    from .page.imaging import resize_to, write_image

    page, provider, request = _rough_inputs(args)
    engine = Engine(args.weights, args.device, engine_options(args))
    provider.require(engine.weights_dir)
    started = time.perf_counter()
    rough = resize_to(provider(request, engine), page.shape[1], page.shape[0])
    write_image(rough, args.output)
    _say(f"wrote {args.output} ({provider.name}, {rough.shape[1]}x{rough.shape[0]}) "
         f"in {time.perf_counter() - started:.2f} s")
    return 0


def cmd_upscale(args) -> int:
    from .batch import upscale

    device = None
    if args.device != "cpu":  # torch only where a GPU may be asked for
        from .runtime.devices import pick_device

        picked = pick_device(args.device)
        device = None if picked.type == "cpu" else picked
    if device is not None:
        _say(f"rendering on {device}")
    return upscale.run(args.pages, args.coloured, args.output, args.layer, say=_say, overwrite=args.overwrite,
                       device=device)


def cmd_weights(args) -> int:
    directory = weights.resolve_weights_dir(args.weights)
    if args.weights_command == "path":
        print(directory)
        missing = weights.missing_files(directory)
        if missing:
            _say(f"missing: {', '.join(missing)}; {weights.HOW_TO_GET}")
            return 1
        return 0
    if args.weights_command == "download" and args.style2paints:
        from .weights import style2paints as style2paints_weights

        style2paints_weights.agree(directory, args.from_dir, args.accept_terms, _say)
        style2paints_weights.obtain(directory, args.from_dir, args.revision, report=_say)
        _say(f"Style2Paints networks ready in {directory / weights.STYLE2PAINTS}: --prior style2paints")
        return 0
    if args.weights_command == "download":
        if args.accept_terms or args.from_dir:
            raise InputError("--accept-terms and --from go with --style2paints")
        from .weights import hub

        _say(f"downloading {weights.HF_REPO} into {directory}")
        hub.download(directory, args.revision, report=_say)
        _say("weights ready")
        return 0
    # check
    from .weights.checkpoints import load_alignment_vae, load_shading_generator

    started = time.perf_counter()
    load_shading_generator(directory)
    load_alignment_vae(directory)
    _say(f"{directory}: all networks load strictly ({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_style2paints(args) -> int:
    from .runtime.termination import signals_raise
    from .weights.convert.keras_inspect import inspect_dir

    with signals_raise():  # a SIGTERM or a timeout cleans the scratch folder up too
        return inspect_dir(args.directory, print, reference=args.reference, bilinear=args.bilinear, size=args.size)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging(logging.DEBUG if args.verbose else logging.INFO,
                             "server.log" if args.command == "serve" else LOG_NAME)
    log.info("inknhue %s: %s", __version__, " ".join(sys.argv[1:] if argv is None else argv))
    if args.command in ("colorize", "serve"):  # before any thread starts
        host_memory.reuse_freed_memory()
    try:
        commands = {"colorize": cmd_colorize, "rough": cmd_rough, "serve": cmd_serve, "weights": cmd_weights,
                    "install": cmd_install, "doctor": cmd_doctor, "style2paints": cmd_style2paints,
                    "upscale": cmd_upscale}
        return commands[args.command](args)
    except InknhueError as exc:
        log.error("%s", exc)
        _say(f"inknhue: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("inknhue: interrupted")
        return 130
    except Terminated as exc:
        log.info("%s", exc)
        _say(f"inknhue: {exc}")
        return exc.exit_code
    except Exception:
        log.exception("unexpected failure")
        _say(f"inknhue: unexpected failure; details in {log_file}")
        raise


if __name__ == "__main__":
    sys.exit(main())
