"""Whole chapters: `inknhue colorize PAGES... -o FOLDER`.

A chapter is a plan, checked in full before the first slow stage, then a loop over its pages.

- Pages: the files named, and the images in the folders named (not in their subfolders;
  hidden files and names without an image extension are passed over), in natural order
  (p2 before p10), each folder's pages where the folder was named. A file named twice counts once.
- Matching, by file name: `--hints DIR` and `--rough DIR` hold one image per page whose
  stem is the page's stem, with any image extension (pages/p001.jpg -> hints/p001.png).
  Every page needs its match in every folder given: a page without one is an error
  naming the pages, before any work (nothing is lost: pages already done are skipped on
  the next run, so adding the missing hints and running again costs nothing); two
  candidates (hints/p001.png and hints/p001.tif) are an error naming both. With a single
  page, `--hints` and `--rough` may name its file instead. `--reference REF` serves every
  page: one palette for the chapter.
- Outputs: FOLDER/<page stem>.png. Two pages with one stem, an output that is an input, or
  an output folder that is also a folder of inputs (its results would be taken for pages
  or hints by the next run) are errors before any work.
- Done: outputs are written atomically (`imaging.write_image`: a temporary file renamed into
  place), so a file under an output's name is always whole. Then `Manifest` records it in
  FOLDER/.inknhue-chapter.json: the digests of its input files, the settings that change
  its pixels (`look`), and the digest of the file written. One run at a time: the run
  locks the manifest (`runtime.lock`, FOLDER/.inknhue-chapter.json.lock) before reading it
  and until it ends, and a second run into the folder refuses, naming the first (pid, host,
  command, start); the lock of a run that was killed is recognised and taken over. The
  manifest is read as a regular file of at most 64 MiB nested at most 64 deep: anything
  else (a FIFO, a symlink to /dev/zero, a document nested 100,000 deep) is "damaged", and
  the run writes a fresh one. A page is
  - skipped as done when its output exists and the record's inputs and settings are
    today's (an output edited since stays: it is still done);
  - colorized again when its output is the very file inkn'hue wrote but an input or a
    setting changed (new hints, another ratio);
  - skipped, and said, when its output exists but was not recorded (written by someone
    else, or by the single-page command) or was changed since inkn'hue wrote it while
    its inputs changed too: nobody's work is overwritten;
  - always colorized again with `--overwrite`.
- The loop loads the models once (or uses a running backend: `--server`), reads each page
  only when its turn comes, shows one progress bar over the pages with the page's stage,
  and goes on after a page fails (bad data found late, out of memory); missing or broken
  weights and a backend that is gone stop it. Ctrl-C stops it: the pages written stay
  written and recorded (a Ctrl-C while a page is being written and recorded takes effect
  just after), and the same command resumes.

No `cache.StageCache`: no stage's inputs repeat from page to page; the one thing shared,
the reference, is read once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import InknhueError, InputError, WeightsError
from ..runtime.small_files import parse_json, read_small_file
from ..runtime.lock import FileLock, Holder

log = logging.getLogger(__name__)

MANIFEST_NAME = ".inknhue-chapter.json"
LOCK_NAME = MANIFEST_NAME + ".lock"
#: the largest manifest read (a record is about 500 bytes: 100,000 pages fit)
MAX_MANIFEST_BYTES = 64 << 20
OUTPUT_SUFFIX = ".png"
_LISTED = 5  # names shown in an error that lists pages

#: a record's input files, in the order messages name them (any other role after these)
INPUT_ROLES = ("page", "hints", "rough", "reference")
#: server error codes that concern one page; any other ends the chapter
PAGE_ERROR_CODES = ("bad_input", "too_large", "device", "internal")


# --- what the command line asked for ------------------------------------------------------

def is_chapter(pages: list[str], output: str) -> bool:
    """Several pages, a folder of pages, or -o an existing folder (or ending in a slash):
    a chapter. One page file and an -o naming a file: the single-page command."""
    if len(pages) > 1 or Path(pages[0]).is_dir():
        return True
    return Path(output).is_dir() or output.endswith(("/", os.sep))


def image_suffixes() -> frozenset[str]:
    """The file name extensions of the images Pillow reads (.png, .jpg, .tif, .psd, ...)."""
    from PIL import Image

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def natural_key(name: str) -> tuple:
    """Sort key that orders numbers by value: p2 before p10, then case-blind text."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(part) if i % 2 else part.casefold() for i, part in enumerate(parts)), name


def folder_images(folder: Path) -> list[Path]:
    """The images directly in `folder` (no subfolders, no hidden files), in natural order."""
    suffixes = image_suffixes()
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list the folder {folder}: {exc.strerror or exc}") from None
    found = [entry for entry in entries if not entry.name.startswith(".")
             and entry.suffix.lower() in suffixes and entry.is_file()]
    return sorted(found, key=lambda path: natural_key(path.name))


def look(args, prior: str) -> dict:
    """Every setting that changes the pixels written. A page done with other values is done
    again; a new option that changes the output belongs here."""
    return {"prior": prior, "ratio": args.ratio, "max_size": args.max_size, "output_size": args.output_size,
            "layer": args.layer, "fill_all": bool(args.fill_all), "transfer": bool(args.transfer)}


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


# --- the record of what was written -----------------------------------------------------

class Manifest:
    """FOLDER/.inknhue-chapter.json: for each output written, the digests of the files it
    was made from, its settings, and the digest of the file written. Replaced atomically
    after each page; a damaged or missing one only means outputs are not known as ours
    (they are then kept, never overwritten)."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        self.damaged = False
        try:
            data = parse_json(read_small_file(self.path, MAX_MANIFEST_BYTES))
        except FileNotFoundError:
            return
        except (OSError, ValueError):  # unreadable, not a regular file, too large, not JSON, too deep
            self.damaged = True
            return
        pages = data.get("pages") if isinstance(data, dict) else None
        if not isinstance(pages, dict):
            self.damaged = True
            return
        self.entries = {name: entry for name, entry in pages.items() if isinstance(entry, dict)}

    @staticmethod
    def lock(folder: Path) -> FileLock:
        """The lock that one run at a time holds while it reads and writes FOLDER's manifest."""
        return FileLock(folder / LOCK_NAME, f"the manifest {folder / MANIFEST_NAME}")

    def get(self, output_name: str) -> dict | None:
        return self.entries.get(output_name)

    def record(self, output_name: str, entry: dict) -> None:
        self.entries[output_name] = entry
        text = json.dumps({"inknhue": __version__, "pages": self.entries}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            mask = os.umask(0o022)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise


# --- the plan ----------------------------------------------------------------------------

@dataclass
class Page:
    name: str                     #: the page file's stem: what messages call it
    path: Path
    output: Path
    hints: Path | None = None
    rough: Path | None = None
    inputs: dict[str, str] = field(default_factory=dict)  #: role -> file digest
    skip: str | None = None       #: why it is skipped ("done", ...), None to colorize it
    redo: str | None = None       #: why a page done before is colorized again


@dataclass
class Plan:
    folder: Path
    prior: str
    settings: dict
    reference: Path | None
    pages: list[Page]
    manifest: Manifest
    lock: FileLock | None = None    #: held from the manifest's reading to the run's end
    stale: Holder | None = None     #: the holder of a stale lock taken over


class _Matches:
    """One `--hints`/`--rough` argument: a folder matched by stem, or a single page's file."""

    def __init__(self, option: str, given: str | None, what: str, single: bool):
        self.option, self.what = option, what
        self.folder: Path | None = None
        self.file: Path | None = None
        self.by_stem: dict[str, list[Path]] = {}
        if not given:
            return
        path = Path(given)
        if path.is_dir():
            self.folder = path
            for image in folder_images(path):
                self.by_stem.setdefault(image.stem, []).append(image)
        elif not path.exists():
            raise InputError(f"{option} {path}: no such folder")
        elif single:
            self.file = path
        else:
            raise InputError(f"{option} {path} is a file; with several pages {option} names a folder "
                             f"of {what} matched to the pages by file name")

    def __bool__(self) -> bool:
        return bool(self.folder or self.file)

    def find(self, page: Path) -> Path | None:
        if self.file:
            return self.file
        found = self.by_stem.get(page.stem, [])
        if len(found) > 1:
            raise InputError(f"several {self.what} match the page {page}: {', '.join(map(str, found))}; "
                             f"keep one")
        return found[0] if found else None


def discover_pages(given: list[str]) -> tuple[list[Path], list[Path]]:
    """The pages in the order given (folders expanded in natural order), each file once;
    and the folders named."""
    pages: list[Path] = []
    folders: list[Path] = []
    seen: set[Path] = set()
    for text in given:
        path = Path(text)
        if path.is_dir():
            found = folder_images(path)
            if not found:
                raise InputError(f"no images in the folder {path} (subfolders are not searched)")
            folders.append(path)
        elif path.exists():
            found = [path]
        else:
            raise InputError(f"page not found: {path}")
        for page in found:
            if page.resolve() not in seen:
                seen.add(page.resolve())
                pages.append(page)
    return pages, folders


def make_plan(args) -> Plan:
    """Everything checked before any slow stage; raises InputError, one line, at the first problem."""
    from ..engine.pipeline import check_max_size
    from ..page.imaging import aspect_mismatch, check_work_size, check_writable, read_header
    from ..rough.image import MAX_ASPECT_MISMATCH

    check_max_size(args.max_size)
    prior = args.prior or ("image" if args.rough else "flats")
    if args.rough and prior != "image":
        raise InputError(f"--rough is the input of --prior image, not of --prior {prior}")
    if prior != "image" and not args.hints:
        raise InputError(f"--prior {prior} needs hint strokes: --hints HINTS_FOLDER")
    if args.layer == "flats" and prior != "flats":
        raise InputError("--layer flats is the flats of your hint strokes: use it with --prior flats (the default)")
    if args.transfer and not args.reference:
        raise InputError("--transfer needs a reference image: --reference REF")

    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file; for a chapter -o names a folder (one <page>.png per page)")
    if not folder.exists() and folder.suffix.lower() in image_suffixes():
        raise InputError(f"-o {folder}: for a chapter -o names a folder, not an image file")

    paths, page_folders = discover_pages(args.pages)
    single = len(paths) == 1
    hints = _Matches("--hints", args.hints, "hint files", single)
    rough = _Matches("--rough", args.rough, "rough-colour images", single)
    reference = Path(args.reference) if args.reference else None
    if reference is not None and reference.is_dir():
        raise InputError(f"--reference {reference} is a folder: it takes one image, used for every page")

    pages: list[Page] = []
    missing: dict[str, list[str]] = {}
    outputs: dict[str, Page] = {}
    for path in paths:
        page = Page(path.stem, path, folder / f"{path.stem}{OUTPUT_SUFFIX}")
        for matches in (hints, rough):
            if matches:
                found = matches.find(path)
                if found is None:
                    missing.setdefault(matches.option, []).append(path.name)
                setattr(page, "hints" if matches is hints else "rough", found)
        twin = outputs.setdefault(page.output.name, page)
        if twin is not page:
            raise InputError(f"the pages {twin.path} and {path} would both be written to {page.output}: "
                             f"colorize them into different folders")
        pages.append(page)
    for option, names in missing.items():
        source = hints if option == "--hints" else rough
        example = Path(names[0])
        raise InputError(f"no {source.what} in {source.folder} for {len(names)} of {len(paths)} pages: "
                         f"{_listing(names)} (matched by file name: {example.name} takes "
                         f"{source.folder / example.stem}.png, or .jpg, .tif...)")

    # nothing is written over an input, and no result lands where the next run reads inputs
    inputs = {p.resolve(): what for p, what in [(reference, "reference")] if p}
    for page in pages:
        inputs.update({p.resolve(): what for p, what in ((page.path, "page"), (page.hints, "hints"),
                                                          (page.rough, "rough colours")) if p})
    for what, folders in (("pages", page_folders), ("hints", [hints.folder]), ("rough colours", [rough.folder])):
        for given in folders:
            if given is not None and given.resolve() == folder.resolve():
                raise InputError(f"the output folder {folder} is also the folder of the {what}: the results "
                                 f"would be taken for {what} next time; choose another -o")
    for page in pages:
        if page.output.resolve() in inputs:
            raise InputError(f"refusing to overwrite the input {page.output} (a {inputs[page.output.resolve()]} "
                             f"file); choose another -o")
        if page.output.is_dir():
            raise InputError(f"cannot write {page.output}: it is a folder")

    # every file's header: readable, within the limits, the sizes that go together
    if reference is not None:
        read_header(reference, "reference")
    for page in pages:
        width, height, _ = read_header(page.path, "page")
        check_work_size(width, height, args.max_size)
        if page.hints:
            hint_w, hint_h, alpha = read_header(page.hints, "hints")
            if (hint_w, hint_h) != (width, height):
                raise InputError(f"the hints {page.hints} are {hint_w}x{hint_h} but the page {page.path} is "
                                 f"{width}x{height}: paint them on a layer of the page's size")
            if not alpha:
                raise InputError(f"hints {page.hints} have no transparency: paint the strokes on a transparent "
                                 f"layer and save it as PNG with alpha")
        if page.rough:
            rough_w, rough_h, _ = read_header(page.rough, "rough colours")
            mismatch = aspect_mismatch((rough_w, rough_h), (width, height))
            if mismatch > MAX_ASPECT_MISMATCH:
                raise InputError(f"the rough colours {page.rough} ({rough_w}x{rough_h}) and the page {page.path} "
                                 f"({width}x{height}) differ in aspect ratio by {mismatch:.1%} (at most "
                                 f"{MAX_ASPECT_MISMATCH:.0%} allowed): are they of the same page?")
    check_writable(pages[0].output)  # creates the folder; one folder, so one check

    settings = look(args, prior)
    lock = Manifest.lock(folder)
    stale = lock.acquire()  # Locked (an InknhueError) names the run that holds it
    try:
        manifest = Manifest(folder)
        reference_digest = file_digest(reference) if reference else None
        for page in pages:
            page.inputs = {role: file_digest(path) for role, path in
                           (("page", page.path), ("hints", page.hints), ("rough", page.rough)) if path}
            if reference_digest:
                page.inputs["reference"] = reference_digest
            decide(page, settings, manifest, args.overwrite)
    except BaseException:
        lock.release()
        raise
    return Plan(folder, prior, settings, reference, pages, manifest, lock, stale)


def decide(page: Page, settings: dict, manifest: Manifest, overwrite: bool) -> None:
    """Skip a page, colorize it, or colorize it again (the rules are in the module's docstring)."""
    if overwrite or not page.output.exists():
        return
    record = manifest.get(page.output.name)
    if record is None:
        page.skip = f"{page.output} exists (--overwrite redoes it)"
        return
    old_inputs = record.get("inputs") if isinstance(record.get("inputs"), dict) else {}
    old_settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    roles = [role for role in INPUT_ROLES if role in page.inputs or role in old_inputs]
    roles += sorted((set(page.inputs) | set(old_inputs)) - set(roles))
    changed = [role for role in roles if page.inputs.get(role) != old_inputs.get(role)]
    changed += [key.replace("_", " ") for key in sorted(set(settings) | set(old_settings))
                if settings.get(key) != old_settings.get(key)]
    if not changed:
        page.skip = "done"
    elif file_digest(page.output) == record.get("output"):
        page.redo = f"{', '.join(changed)} changed since it was done"
    else:
        page.skip = (f"its {', '.join(changed)} changed, but {page.output} was changed after inkn'hue wrote it: "
                     f"kept (--overwrite redoes it)")


# --- colorizing one page, here or on a backend ----------------------------------------------

StageReport = Callable[[str], None]


class _Here:
    """The networks in this process, loaded once for the whole chapter."""

    def __init__(self, args, plan: Plan, say: Callable[[str], None]):
        from ..engine.options import from_args as engine_options
        from ..engine.pipeline import Engine
        from ..rough import get_provider

        self.args, self.say = args, say
        self.engine = Engine(args.weights, args.device, engine_options(args))
        self.engine.check_weights()
        self.provider = get_provider(plan.prior)
        self.provider.require(self.engine.weights_dir)
        self.loaded = False
        self.said: set[str] = set()  #: weights warnings said in this run

    def colorize(self, request, stage: StageReport):
        if not self.loaded:
            stage("loading the models")
            seconds = self.engine.load()
            self.say(f"loaded the models from {self.engine.weights_dir} on {self.engine.device.type} "
                     f"in {seconds:.2f} s")
            self._say_weights(self.engine.weights_warnings)
            self.loaded = True

        def progress(event):
            if event.seconds is None or event.cached:
                stage(f"{event.stage} {event.index}/{event.total}")

        result = self.engine.colorize(request.page, self.provider, request, max_size=self.args.max_size,
                                      ratio=self.args.ratio, progress=progress)
        # NaN weights (every result carries them): said once a run, as soon as they are known
        # (the engine's at load, a provider's networks at its first page), not with each page
        weights = [*self.engine.weights_warnings,
                   *self.provider.weights_warnings(self.engine.weights_dir, self.engine.device)]
        self._say_weights(weights)
        page = [w for w in result.warnings if w not in weights]
        return result.final(self.args.ratio, self.args.output_size, self.args.layer), result.ran, page

    def _say_weights(self, warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in self.said:
                self.say(f"warning: {warning}")
                self.said.add(warning)

    def close(self) -> None:
        pass


class _Flats:
    """--layer flats: the flats of each page's strokes, here, with no network and no weights."""

    def __init__(self, args, plan: Plan, say: Callable[[str], None]):
        from ..rough import get_provider

        self.args, self.provider = args, get_provider("flats")

    def colorize(self, request, stage: StageReport):
        from ..rough.flats import flat_layer

        stage("flats")
        warnings = self.provider.check(request)
        return flat_layer(request.page, self.provider.checked_hints(request), request.fill_all,
                          request.reference), ["rough"], warnings

    def close(self) -> None:
        pass


class _OnServer:
    """A running `inknhue serve`: one connection, one job per page."""

    def __init__(self, args, plan: Plan, say: Callable[[str], None]):
        from inknhue_krita.client import Client, ServerError

        self.args, self.prior = args, plan.prior
        try:
            self.client = Client(args.server, timeout=args.timeout)
            hello = self.client.hello()
        except ServerError as exc:
            raise InknhueError(f"the backend says: {exc.message}") from None
        say(f"server {self.client.connection.address}: {hello['device']['name']}, models {hello['models']}")

    def colorize(self, request, stage: StageReport):
        import numpy as np

        from inknhue_krita.client import ServerError
        from inknhue_krita.protocol import RawImage

        def raw(array):
            if array is None:
                return None
            return RawImage(array.shape[1], array.shape[0], "RGBA" if array.shape[2] == 4 else "RGB",
                            np.ascontiguousarray(array).tobytes())

        stage("sending")
        job = self.client.colorize(raw(request.page), raw(request.hints), raw(request.reference),
                                   raw(request.rough), provider=self.prior, ratio=self.args.ratio,
                                   max_size=self.args.max_size, fill_all=request.fill_all,
                                   transfer=request.transfer,
                                   output={"size": self.args.output_size, "channels": "RGB", "layer": self.args.layer})

        def show(event):
            if event.get("type") == "progress" and (event.get("seconds") is None or event.get("cached")):
                stage(f"{event.get('stage')} {event.get('index')}/{event.get('total')}")

        try:
            header, image = self.client.wait(job, on_event=show)
        except KeyboardInterrupt:
            try:
                self.client.cancel(job)  # leave the backend free for the next run
            except (ServerError, KeyboardInterrupt):
                pass
            raise
        final = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
        warnings = [w for w in header.get("warnings", []) if isinstance(w, str)]
        return final, list(header.get("ran", [])), warnings

    def close(self) -> None:
        self.client.close()


# --- the loop -----------------------------------------------------------------------------

class _Held:
    caught = False  #: a Ctrl-C came while held


@contextmanager
def _ctrl_c_held(held: _Held | None = None):
    """A Ctrl-C while a page is written and recorded is held until both are done
    (milliseconds), so an output and its record never disagree: `.caught` says it came.
    (Only the main thread gets signals; elsewhere nothing is held.)"""
    held = _Held() if held is None else held
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: setattr(held, "caught", True))
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
    if held.caught and previous is not signal.default_int_handler:
        held.caught = False  # someone else's handler (or SIG_IGN) decides
        if callable(previous):
            previous(signal.SIGINT, None)


@dataclass
class Tally:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def line(self, total: int) -> str:
        left = total - len(self.done) - len(self.skipped) - len(self.failed)
        text = f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"
        text += f", {left} not done" if left else ""
        return text + (f" (failed: {_listing(self.failed)})" if self.failed else "")


def _page_failure(exc: Exception) -> str:
    """The one-line reason a page failed; raises an error that ends the whole chapter instead
    (the weights, or the backend gone: every page would fail the same way)."""
    from inknhue_krita.client import ServerError

    from ..logs import LOG_NAME, log_dir

    if isinstance(exc, ServerError):
        if exc.code in PAGE_ERROR_CODES:
            return exc.message
        raise InknhueError(f"the backend says: {exc.message}") from None
    if isinstance(exc, WeightsError):
        raise exc
    if isinstance(exc, InknhueError):
        return str(exc)
    log.error("page failed", exc_info=exc)
    return f"unexpected failure; details in {log_dir() / LOG_NAME}"


def run(args, say: Callable[[str], None]) -> int:
    """`inknhue colorize` for a chapter; returns the exit code (0, 1 if a page failed, 130 on Ctrl-C)."""
    plan = make_plan(args)
    try:
        return _run(args, plan, say)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def read_request(page: Page, args, reference):
    """A page's inputs, read when its turn comes."""
    from ..page.imaging import read_hints, read_rgb
    from ..rough import RoughRequest

    return RoughRequest(
        page=read_rgb(page.path, "page"),
        hints=read_hints(page.hints) if page.hints else None,
        reference=reference,
        rough=read_rgb(page.rough, "rough colours") if page.rough else None,
        fill_all=args.fill_all, transfer=args.transfer, max_size=args.max_size)


def keep(plan: Plan, page: Page, final, held: _Held) -> None:
    """Writes a page's result atomically and records it, a Ctrl-C held until both are done
    (`held.caught` says one came, also when writing failed)."""
    from ..page.imaging import write_image

    with _ctrl_c_held(held):
        try:
            write_image(final, page.output)
        except OSError as exc:  # a full disk, a folder gone: this page is not done
            raise InknhueError(f"cannot write {page.output}: {exc.strerror or exc}") from None
        try:
            plan.manifest.record(page.output.name, {
                "page": str(page.path), "inputs": page.inputs, "settings": plan.settings,
                "output": file_digest(page.output), "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError as exc:
            raise InknhueError(f"wrote {page.output} but could not record it in {plan.manifest.path} "
                               f"({exc.strerror or exc}): the next run keeps it as it is") from None


def done_line(page: Page, final, seconds: float, ran: list[str]) -> str:
    return (f"done {page.name}: wrote {page.output} ({final.shape[1]}x{final.shape[0]}) in "
            f"{seconds:.2f} s (stages run: {', '.join(ran) or 'none'})")


def opening_lines(args, plan: Plan, todo: list[Page]) -> list[str]:
    lines = []
    if plan.stale is not None:
        lines.append(f"note: took over the lock of a run that is gone ({plan.stale.describe()})")
    lines.append(f"chapter: {len(plan.pages)} pages -> {plan.folder}, {len(todo)} to colorize "
                 f"({plan.prior}, ratio {args.ratio:g}, max size {args.max_size})")
    if plan.manifest.damaged:
        lines.append(f"warning: {plan.manifest.path} is damaged: outputs already there are kept as they are")
    return lines


def chapter_bar(total: int):
    """One bar over the chapter's pages, on a terminal only (disable=None): a log file gets
    the pages' lines alone."""
    from tqdm import tqdm

    return tqdm(total=total, unit="page", file=sys.stderr, dynamic_ncols=True, disable=None)


def _run(args, plan: Plan, say: Callable[[str], None]) -> int:
    from ..page.imaging import read_rgb

    todo = [page for page in plan.pages if not page.skip]
    for line in opening_lines(args, plan, todo):
        say(line)
    tally = Tally()
    bar = chapter_bar(len(plan.pages))

    def tell(line: str) -> None:
        log.info("%s", line)
        bar.write(line, file=sys.stderr)

    def stage(text: str) -> None:
        bar.set_postfix_str(text, refresh=True)

    colorist = None
    try:
        reference = None
        if todo:  # nothing is loaded for a chapter that is done
            colorist = (_Flats if args.layer == "flats" else _OnServer if args.server else _Here)(args, plan, tell)
            reference = read_rgb(plan.reference, "reference") if plan.reference else None
        for page in plan.pages:
            bar.set_description(page.name, refresh=False)
            if page.skip:
                tally.skipped.append(page.name)
                tell(f"skipped {page.name}: {page.skip}")
                bar.update(1)
                continue
            if page.redo:
                tell(f"{page.name}: {page.redo}; colorizing it again")
            started = time.perf_counter()
            held = _Held()
            try:
                stage("reading")
                request = read_request(page, args, reference)
                final, ran, warnings = colorist.colorize(request, stage)
                for warning in warnings:
                    tell(f"warning: {page.name}: {warning}")
                stage("writing")
                keep(plan, page, final, held)
            except Exception as exc:  # one page's failure is reported, the rest go on
                tally.failed.append(page.name)
                tell(f"failed {page.name}: {_page_failure(exc)}")
            else:
                tally.done.append(page.name)
                tell(done_line(page, final, time.perf_counter() - started, ran))
            bar.update(1)
            if held.caught:  # this page is done and recorded (or failed): now stop
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        say(f"interrupted: {tally.line(len(plan.pages))}; run the same command again to go on")
        log.info("chapter interrupted: %s", tally.line(len(plan.pages)))
        return 130
    except InknhueError:
        bar.close()
        say(f"stopped: {tally.line(len(plan.pages))}")
        raise
    finally:
        bar.close()
        if colorist is not None:
            colorist.close()
    say(f"chapter: {tally.line(len(plan.pages))} -> {plan.folder}")
    return 1 if tally.failed else 0
