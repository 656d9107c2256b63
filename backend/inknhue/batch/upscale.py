"""`inknhue upscale PAGE COLOURED -o OUT`: colourings brought to their pages' size
(page/upscale.py), one page or a chapter.

- One page: PAGE and COLOURED are image files, OUT an image file.
- A chapter: PAGE is a folder of pages (or several page files), COLOURED a folder of
  colourings matched by stem as `colorize --hints DIR` is (pages/p001.jpg ->
  coloured/p001.png, any image extension), OUT a folder: OUT/<page stem>.png.
  Everything is checked before any work: a page without its colouring, or with two, two
  pages with one stem, an output over an input, a colouring of another shape (headers
  only, nothing decoded), an output folder that is also a folder of inputs.
  Done/redo/skip as `colorize` chapters (batch/chapter.py's `Manifest`, `decide`, `keep`
  and lock, in the same FOLDER/.inknhue-chapter.json): a page whose output exists with
  the same page, colouring and `--layer` is skipped as done; one whose page or colouring
  changed is done again if its output is still the file inkn'hue wrote, kept (and said)
  if someone retouched it; an output not recorded (another tool's, the single-page
  command's) is kept; `--overwrite` redoes every page. A page that fails late (damaged
  pixel data) is reported and the others go on (exit 1). Ctrl-C stops after the page
  being written and recorded; the same command goes on. Outputs are written atomically:
  a file under an output's name is always whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InknhueError, InputError
from ..page.imaging import check_writable, read_header, read_rgb, write_image
from ..page.upscale import check_fits, read_colouring, upscale
from .chapter import (OUTPUT_SUFFIX, Manifest, Page, Plan, Tally, _Held, _Matches, decide, discover_pages,
                      file_digest, image_suffixes, keep)


def _made(page: Path, coloured: Path, layer: str, say: Callable[[str], None], device=None
          ) -> tuple[np.ndarray, tuple[int, int]]:
    """The page-size result (on `device`, a GPU, where given), and the colouring's size; its notes said."""
    page_rgb = read_rgb(page, "page")
    colouring = read_colouring(coloured)
    notes = list(colouring.notes)
    result = upscale(page_rgb, colouring.rgb, layer, notes, device)
    for note in notes:
        say(f"note: {note}")
    return result, (colouring.rgb.shape[1], colouring.rgb.shape[0])


def _one(page: Path, coloured: Path, output: Path, layer: str, say: Callable[[str], None], device=None) -> None:
    started = time.perf_counter()
    result, size = _made(page, coloured, layer, say, device)
    write_image(result, output)
    say(f"wrote {output} ({result.shape[1]}x{result.shape[0]}, from {size[0]}x{size[1]}) in "
        f"{time.perf_counter() - started:.2f} s")


def _refuse_overwriting(output: Path, inputs: list[Path]) -> None:
    for given in inputs:
        if output.resolve() == given.resolve():
            raise InputError(f"refusing to overwrite the input {given}; choose another -o")


def run(pages: list[str], coloured: str, output: str, layer: str, say: Callable[[str], None],
        overwrite: bool = False, device=None) -> int:
    """One page or a chapter; device: a GPU (torch.device) to render on, None for the CPU."""
    if len(pages) == 1 and not Path(pages[0]).is_dir() and not Path(coloured).is_dir():
        page, colouring, out = Path(pages[0]), Path(coloured), Path(output)
        if out.is_dir() or output.endswith(("/", "\\")):
            out = out / (page.stem + OUTPUT_SUFFIX)
        _refuse_overwriting(out, [page, colouring])
        check_writable(out)
        _one(page, colouring, out, layer, say, device)
        return 0
    return _chapter(pages, coloured, output, layer, say, overwrite, device)


def look(layer: str) -> dict:
    """The settings that change an upscale's pixels (the manifest's `settings`): a page done
    with others, or by `colorize`, is done again."""
    return {"command": "upscale", "layer": layer}


def _chapter(pages_given: list[str], coloured: str, output: str, layer: str, say: Callable[[str], None],
             overwrite: bool = False, device=None) -> int:
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file; for a chapter -o names a folder (one <page>.png per page)")
    if not folder.exists() and folder.suffix.lower() in image_suffixes():
        raise InputError(f"-o {folder}: for a chapter -o names a folder, not an image file")
    matches = _Matches("COLOURED", coloured, "colourings", single=False)
    paths, page_folders = discover_pages(pages_given)
    for given, what in [*((f, "pages") for f in page_folders), (matches.folder, "colourings")]:
        if given is not None and given.resolve() == folder.resolve():
            raise InputError(f"the output folder {folder} is also the folder of the {what}: the results would be "
                             f"taken for {what} next time; choose another -o")
    pages, missing, stems, colourings = [], [], {}, {}
    for path in paths:
        if path.stem in stems:
            raise InputError(f"two pages named {path.stem}: {stems[path.stem]} and {path}; their outputs would "
                             f"be one file")
        stems[path.stem] = path
        found = matches.find(path)
        if found is None:
            missing.append(path.name)
            continue
        page = Page(path.stem, path, folder / (path.stem + OUTPUT_SUFFIX))
        colourings[page.name] = found
        _refuse_overwriting(page.output, [path, found])
        width, height, _ = read_header(path, "page")
        c_width, c_height, _ = read_header(found, "colouring")
        check_fits((width, height), (c_width, c_height), f"the colouring {found}")
        pages.append(page)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"no colouring in {coloured} for {len(missing)} page(s): {shown} (matched by file name)")
    check_writable(folder / "x.png")
    lock = Manifest.lock(folder)
    stale = lock.acquire()  # Locked (one line) names the run that holds it
    try:
        plan = Plan(folder, "upscale", look(layer), None, pages, Manifest(folder), lock, stale)
        for page in pages:
            page.inputs = {"page": file_digest(page.path), "coloured": file_digest(colourings[page.name])}
            decide(page, plan.settings, plan.manifest, overwrite)
        return _loop(plan, colourings, layer, say, device)
    finally:
        lock.release()


def _loop(plan: Plan, colourings: dict[str, Path], layer: str, say: Callable[[str], None], device=None) -> int:
    """The chapter's pages in order: skipped, done again or done, each written and recorded
    (chapter.keep); Ctrl-C stops after the page being written, and the same command goes on."""
    todo = [page for page in plan.pages if not page.skip]
    if plan.stale is not None:
        say(f"note: took over the lock of a run that is gone ({plan.stale.describe()})")
    if plan.manifest.damaged:
        say(f"warning: {plan.manifest.path} is damaged: outputs already there are kept as they are")
    say(f"upscale: {len(plan.pages)} pages -> {plan.folder}, {len(todo)} to do ({layer})")
    tally = Tally()
    try:
        for index, page in enumerate(plan.pages, 1):
            if page.skip:
                tally.skipped.append(page.name)
                say(f"[{index}/{len(plan.pages)}] skipped {page.name}: {page.skip}")
                continue
            say(f"[{index}/{len(plan.pages)}] {page.name}" + (f": {page.redo}; doing it again" if page.redo else ""))
            held = _Held()
            try:
                started = time.perf_counter()
                result, size = _made(page.path, colourings[page.name], layer, say, device)
                keep(plan, page, result, held)
                say(f"wrote {page.output} ({result.shape[1]}x{result.shape[0]}, from {size[0]}x{size[1]}) in "
                    f"{time.perf_counter() - started:.2f} s")
                tally.done.append(page.name)
            except InknhueError as exc:
                tally.failed.append(page.name)
                say(f"failed: {page.path}: {exc}")
            if held.caught:  # this page is written and recorded (or failed): now stop
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        say(f"interrupted: {tally.line(len(plan.pages))}; run the same command again to go on")
        return 130
    say(f"upscale: {tally.line(len(plan.pages))} -> {plan.folder}")
    return 1 if tally.failed else 0
