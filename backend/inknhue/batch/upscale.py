"""`inknhue upscale PAGE COLOURED -o OUT`: colourings brought to their pages' size
(page/upscale.py), one page or a chapter.

- One page: PAGE and COLOURED are image files, OUT an image file.
- A chapter: PAGE is a folder of pages (or several page files), COLOURED a folder of
  colourings matched by stem as `colorize --hints DIR` is (pages/p001.jpg ->
  coloured/p001.png, any image extension), OUT a folder: OUT/<page stem>.png.
  Everything is checked before any work: a page without its colouring, or with two, two
  pages with one stem, an output over an input, a colouring of another shape (headers
  only, nothing decoded). No manifest: a page takes seconds, so every run does every page
  again. A page that fails late (damaged pixel data) is reported and the others go on
  (exit 1). Outputs are written atomically: a file under an output's name is always whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..errors import InknhueError, InputError
from ..page.imaging import check_writable, read_header, read_rgb, write_image
from ..page.upscale import check_fits, read_colouring, upscale
from .chapter import OUTPUT_SUFFIX, _Matches, discover_pages, image_suffixes


def _one(page: Path, coloured: Path, output: Path, layer: str, say: Callable[[str], None]) -> None:
    started = time.perf_counter()
    page_rgb = read_rgb(page, "page")
    colouring = read_colouring(coloured)
    notes = list(colouring.notes)
    result = upscale(page_rgb, colouring.rgb, layer, notes)
    for note in notes:
        say(f"note: {note}")
    write_image(result, output)
    say(f"wrote {output} ({result.shape[1]}x{result.shape[0]}, from {colouring.rgb.shape[1]}x"
        f"{colouring.rgb.shape[0]}) in {time.perf_counter() - started:.2f} s")


def _refuse_overwriting(output: Path, inputs: list[Path]) -> None:
    for given in inputs:
        if output.resolve() == given.resolve():
            raise InputError(f"refusing to overwrite the input {given}; choose another -o")


def run(pages: list[str], coloured: str, output: str, layer: str, say: Callable[[str], None]) -> int:
    if len(pages) == 1 and not Path(pages[0]).is_dir() and not Path(coloured).is_dir():
        page, colouring, out = Path(pages[0]), Path(coloured), Path(output)
        if out.is_dir() or output.endswith(("/", "\\")):
            out = out / (page.stem + OUTPUT_SUFFIX)
        _refuse_overwriting(out, [page, colouring])
        check_writable(out)
        _one(page, colouring, out, layer, say)
        return 0
    return _chapter(pages, coloured, output, layer, say)


def _chapter(pages_given: list[str], coloured: str, output: str, layer: str, say: Callable[[str], None]) -> int:
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file; for a chapter -o names a folder (one <page>.png per page)")
    if not folder.exists() and folder.suffix.lower() in image_suffixes():
        raise InputError(f"-o {folder}: for a chapter -o names a folder, not an image file")
    matches = _Matches("COLOURED", coloured, "colourings", single=False)
    pages, _ = discover_pages(pages_given)
    plan, missing, stems = [], [], {}
    for page in pages:
        if page.stem in stems:
            raise InputError(f"two pages named {page.stem}: {stems[page.stem]} and {page}; their outputs would "
                             f"be one file")
        stems[page.stem] = page
        found = matches.find(page)
        if found is None:
            missing.append(page.name)
            continue
        out = folder / (page.stem + OUTPUT_SUFFIX)
        _refuse_overwriting(out, [page, found])
        width, height, _ = read_header(page, "page")
        c_width, c_height, _ = read_header(found, "colouring")
        check_fits((width, height), (c_width, c_height), f"the colouring {found}")
        plan.append((page, found, out))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"no colouring in {coloured} for {len(missing)} page(s): {shown} (matched by file name)")
    check_writable(folder / "x.png")
    failed = 0
    for index, (page, found, out) in enumerate(plan, 1):
        say(f"[{index}/{len(plan)}] {page.name}")
        try:
            _one(page, found, out, layer, say)
        except InknhueError as exc:
            failed += 1
            say(f"failed: {page}: {exc}")
    say(f"{len(plan) - failed} of {len(plan)} pages written to {folder}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
