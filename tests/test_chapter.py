"""`inknhue colorize PAGES... -o FOLDER`: a whole chapter, resumable, one palette.

Pages p1, p2 and p10 (natural order: p10 comes last) of slightly different sizes, so that
which page a stage ran for can be told from the page's shape; hints in their own folder,
matched by file name. Everything at --max-size 64 on the CPU.
"""

import io
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from drawing import Page
from PIL import Image
from servers import INKNHUE, ServerProcess

from inknhue import cli
from inknhue.batch import chapter
from inknhue.engine.pipeline import Engine

#: name -> (width, height, hint colour)
PAGES = {"p1": (100, 150, (220, 40, 40)), "p2": (104, 156, (40, 170, 60)), "p10": (96, 144, (40, 60, 220))}
ORDER = ["p1", "p2", "p10"]


def draw(width, height, colour) -> Page:
    page = Page(width, height).rectangle(8, 8, width - 8, height - 8).circle(width // 2, height // 2, 25)
    page.stroke([(width // 2 - 8, height // 2), (width // 2 + 8, height // 2)], colour)
    return page


@pytest.fixture
def book(tmp_path):
    """pages/ and hints/ for three pages, and where the chapter goes."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "hints").mkdir()
    for name, (width, height, colour) in PAGES.items():
        page = draw(width, height, colour)
        Image.fromarray(page.grey).save(tmp_path / "pages" / f"{name}.png")
        Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints" / f"{name}.png")
    return tmp_path


def options(parity_weights):
    return ["--weights", str(parity_weights), "--device", "cpu", "--max-size", "64"]


def colorize(*argv) -> int:
    return cli.main(["colorize", *map(str, argv)])


def run_chapter(book, parity_weights, *extra, out="out"):
    """The chapter command in this process; returns its exit code."""
    return colorize(book / "pages", "--hints", book / "hints", "-o", book / out, *options(parity_weights), *extra)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def stamp(path):
    """What a rewrite would change: the file (inode), its time and its bytes."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


def page_of(shape) -> str:
    return next(name for name, (w, h, _) in PAGES.items() if shape[:2] == (h, w))


class Calls(list):
    """The pages `Engine.colorize` ran for, by name; `fail_at = (n, exception)` makes the
    n-th call raise instead."""

    fail_at = None


@pytest.fixture
def engine_calls(monkeypatch):
    calls, real = Calls(), Engine.colorize

    def counting(self, page, *args, **kwargs):
        calls.append(page_of(page.shape))
        if calls.fail_at is not None and len(calls) == calls.fail_at[0]:
            raise calls.fail_at[1]
        return real(self, page, *args, **kwargs)

    monkeypatch.setattr(Engine, "colorize", counting)
    return calls


def written(folder):
    return sorted(path.name for path in folder.iterdir() if path.name != chapter.MANIFEST_NAME)


# --- a chapter is its pages, each as the single-page command makes it ----------------------------

def test_three_pages_matched_by_name_give_what_the_single_page_command_gives(book, parity_weights, capsys):
    (book / "pages" / ".p3.png").write_bytes((book / "pages" / "p1.png").read_bytes())  # hidden: not a page
    (book / "pages" / "notes.txt").write_text("p4 needs more red")                       # not an image
    (book / "pages" / "sub").mkdir()                                                     # not searched
    (book / "pages" / "sub" / "p5.png").write_bytes((book / "pages" / "p1.png").read_bytes())

    assert run_chapter(book, parity_weights) == 0
    err = capsys.readouterr().err
    assert written(book / "out") == ["p1.png", "p10.png", "p2.png"]
    done = [line.split(":")[0] for line in err.splitlines() if line.startswith("done ")]
    assert done == ["done p1", "done p2", "done p10"]  # natural order
    assert err.count("loaded the models") == 1
    assert err.strip().splitlines()[-1].startswith("chapter: 3 done, 0 skipped, 0 failed")

    for name in ORDER:
        single = book / "single" / f"{name}.png"
        assert colorize(book / "pages" / f"{name}.png", "--hints", book / "hints" / f"{name}.png", "-o", single,
                        *options(parity_weights)) == 0
        np.testing.assert_array_equal(pixels(book / "out" / f"{name}.png"), pixels(single))


def test_hints_are_matched_by_stem_whatever_their_image_type(book, parity_weights, engine_calls):
    hints = book / "hints" / "p2.png"
    Image.open(hints).save(book / "hints" / "p2.tif")  # same strokes, another image type
    hints.unlink()
    assert run_chapter(book, parity_weights) == 0
    assert written(book / "out") == ["p1.png", "p10.png", "p2.png"]


def test_the_progress_bar_shows_the_page_and_its_stage_on_a_terminal(book, parity_weights, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert colorize(book / "pages" / "p2.png", "--hints", book / "hints", "-o", f"{book / 'out'}/",
                    *options(parity_weights)) == 0
    shown = terminal.getvalue()
    assert "p2:" in shown and "1/1" in shown  # one bar over the pages, named after the current one
    for stage in ("rough 1/6", "shade 2/6", "encode 4/6", "blend 6/6", "writing"):
        assert stage in shown
    assert (book / "out" / "p2.png").exists()


# --- interrupted, resumed: nothing done is recomputed or rewritten ------------------------------

def test_an_interrupted_run_resumes_without_redoing_what_was_done(book, parity_weights, capsys, engine_calls):
    engine_calls.fail_at = (2, KeyboardInterrupt())  # Ctrl-C during the second page
    assert run_chapter(book, parity_weights) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "interrupted: 1 done, 0 skipped, 0 failed, 2 not done" in err
    assert written(book / "out") == ["p1.png"]  # and no temporary file either
    first = stamp(book / "out" / "p1.png")

    engine_calls.clear()
    engine_calls.fail_at = None
    assert run_chapter(book, parity_weights) == 0
    err = capsys.readouterr().err
    assert engine_calls == ["p2", "p10"]  # no stage ran for p1
    assert "skipped p1: done" in err and "done p1:" not in err
    assert stamp(book / "out" / "p1.png") == first  # the same file, untouched
    assert written(book / "out") == ["p1.png", "p10.png", "p2.png"]
    assert "chapter: 2 done, 1 skipped, 0 failed" in err


def test_a_real_ctrl_c_keeps_whole_pages_and_the_same_command_goes_on(book, parity_weights):
    for n in range(3, 6):  # a longer chapter: Ctrl-C lands while pages are left
        (book / "pages" / f"p{n}.png").write_bytes((book / "pages" / "p1.png").read_bytes())
        (book / "hints" / f"p{n}.png").write_bytes((book / "hints" / "p1.png").read_bytes())
    argv = [str(INKNHUE), "colorize", str(book / "pages"), "--hints", str(book / "hints"), "-o", str(book / "out"),
            *options(parity_weights)]
    # as from a terminal: a test run started in the background inherits SIGINT ignored
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (book / "out" / "p1.png").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted: " in err and "run the same command again" in err

    kept = written(book / "out")
    assert kept and "p10.png" not in kept  # stopped before the end, pages done are kept
    manifest = json.loads((book / "out" / chapter.MANIFEST_NAME).read_text())["pages"]
    assert sorted(manifest) == kept  # every file there is whole and recorded, nothing else
    for name in kept:
        Image.open(book / "out" / name).load()
    before = {name: stamp(book / "out" / name) for name in kept}

    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    for name in kept:
        assert f"skipped {name[:-4]}: done" in again.stderr
        assert stamp(book / "out" / name) == before[name]
    assert len(written(book / "out")) == 6


def test_a_failure_while_writing_leaves_no_file_and_the_other_pages_go_on(book, parity_weights, capsys,
                                                                          monkeypatch):
    real_save, saves = Image.Image.save, []

    def disk_full_on_the_second_page(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 2:
            fp.write(b"\x89PNG\r\n\x1a\n" + bytes(100))  # half a file, then the disk is full
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full_on_the_second_page)
    assert run_chapter(book, parity_weights) == 1
    err = capsys.readouterr().err
    assert "failed p2: cannot write" in err and "No space left on device" in err
    assert "done p10:" in err and "chapter: 2 done, 0 skipped, 1 failed (failed: p2)" in err
    assert written(book / "out") == ["p1.png", "p10.png"]  # no p2.png, whole or half, no temporary file

    monkeypatch.setattr(Image.Image, "save", real_save)
    assert run_chapter(book, parity_weights) == 0
    err = capsys.readouterr().err
    assert "done p2:" in err and "skipped p1: done" in err and "skipped p10: done" in err


def test_a_page_damaged_behind_its_header_fails_alone(book, parity_weights, capsys):
    data = (book / "pages" / "p2.png").read_bytes()
    (book / "pages" / "p2.png").write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    assert run_chapter(book, parity_weights) == 1
    err = capsys.readouterr().err
    assert "failed p2: page " in err and "could not be decoded" in err
    assert written(book / "out") == ["p1.png", "p10.png"]


# --- done means: the same inputs and settings -------------------------------------------------

def test_changed_hints_redo_their_page_but_never_an_output_edited_since(book, parity_weights, capsys,
                                                                         engine_calls):
    assert run_chapter(book, parity_weights) == 0
    capsys.readouterr()
    hints = pixels(book / "hints" / "p2.png").copy()
    hints[20:26, 20:40] = (250, 200, 0, 255)  # a new stroke on p2
    Image.fromarray(hints).save(book / "hints" / "p2.png")
    edited = book / "out" / "p10.png"
    Image.new("RGB", (96, 144), "pink").save(edited)  # the artist painted over p10's result
    engine_calls.clear()

    assert run_chapter(book, parity_weights, "--ratio", "0.5") == 0
    err = capsys.readouterr().err
    assert "p1: ratio changed since it was done; colorizing it again" in err
    assert "p2: hints, ratio changed since it was done; colorizing it again" in err
    assert f"skipped p10: its ratio changed, but {edited} was changed after inkn'hue wrote it: kept" in err
    assert engine_calls == ["p1", "p2"]
    assert Image.open(edited).getpixel((0, 0)) == (255, 192, 203)

    engine_calls.clear()
    assert run_chapter(book, parity_weights, "--ratio", "0.5", "--overwrite") == 0
    assert engine_calls == ["p1", "p2", "p10"]


def test_an_output_not_written_by_a_chapter_run_is_kept(book, parity_weights, capsys, engine_calls):
    (book / "out").mkdir()
    Image.new("RGB", (100, 150), "pink").save(book / "out" / "p1.png")
    assert run_chapter(book, parity_weights) == 0
    assert f"skipped p1: {book / 'out' / 'p1.png'} exists (--overwrite redoes it)" in capsys.readouterr().err
    assert engine_calls == ["p2", "p10"]


# --- one palette: the reference serves every page ---------------------------------------------

def test_a_reference_applies_to_every_page(book, parity_weights):
    Image.new("RGB", (40, 40), (30, 90, 220)).save(book / "ref.png")  # a blue palette
    assert run_chapter(book, parity_weights, "--reference", book / "ref.png", "--transfer") == 0
    for name in ORDER:  # red, green and blue hints alike
        result = pixels(book / "out" / f"{name}.png").astype(int).reshape(-1, 3)
        red, green, blue = result[result.sum(axis=1) < 720].mean(axis=0)  # the coloured (not paper) pixels
        assert blue > red + 40 and blue > green + 40, name
        single = book / "single" / f"{name}.png"
        assert colorize(book / "pages" / f"{name}.png", "--hints", book / "hints" / f"{name}.png", "-o", single,
                        "--reference", book / "ref.png", "--transfer", *options(parity_weights)) == 0
        np.testing.assert_array_equal(pixels(book / "out" / f"{name}.png"), pixels(single))


# --- the matching rule's errors: one line each, before any work -------------------------------

# Each case changes the book and the command (more pages, or another value for an option)
# and gives the error's start, {book} standing for the test's folder.

def _missing(book):
    (book / "hints" / "p2.png").unlink()
    (book / "hints" / "p10.png").unlink()
    return {}, ("no hint files in {book}/hints for 2 of 3 pages: p2.png, p10.png (matched by file name: "
                "p2.png takes {book}/hints/p2.png, or .jpg, .tif...)")


def _ambiguous(book):
    Image.open(book / "hints" / "p2.png").save(book / "hints" / "p2.tif")
    return {}, "several hint files match the page {book}/pages/p2.png: {book}/hints/p2.png, {book}/hints/p2.tif"


def _two_pages_one_output(book):
    (book / "more").mkdir()
    (book / "more" / "p1.jpg").write_bytes(b"")
    return {"pages": [book / "more"]}, \
        "the pages {book}/pages/p1.png and {book}/more/p1.jpg would both be written to {book}/out/p1.png"


def _output_over_an_input(book):
    (book / "out").mkdir()  # a page kept in the output folder, named among the pages
    (book / "out" / "p7.png").write_bytes((book / "pages" / "p1.png").read_bytes())
    (book / "hints" / "p7.png").write_bytes((book / "hints" / "p1.png").read_bytes())
    return {"pages": [book / "out" / "p7.png"]}, "refusing to overwrite the input {book}/out/p7.png (a page file)"


def _output_folder_is_the_hints_folder(book):
    return {"-o": book / "hints"}, "the output folder {book}/hints is also the folder of the hints"


def _hints_of_another_size(book):
    Image.new("RGBA", (50, 50)).save(book / "hints" / "p10.png")
    return {}, "the hints {book}/hints/p10.png are 50x50 but the page {book}/pages/p10.png is 96x144"


def _a_file_for_a_folder(book):
    return {"--hints": book / "hints" / "p1.png"}, \
        "--hints {book}/hints/p1.png is a file; with several pages --hints names a folder"


def _an_image_name_for_the_folder(book):
    return {"-o": book / "out.png"}, "-o {book}/out.png: for a chapter -o names a folder"


@pytest.mark.parametrize("case", [_missing, _ambiguous, _two_pages_one_output, _output_over_an_input,
                                  _output_folder_is_the_hints_folder, _hints_of_another_size,
                                  _a_file_for_a_folder, _an_image_name_for_the_folder],
                         ids=lambda f: f.__name__.strip("_"))
def test_the_matching_rules_errors_are_one_line_before_any_work(book, parity_weights, capsys, engine_calls, case):
    changes, message = case(book)
    argv = [book / "pages", *changes.get("pages", []), "--hints", changes.get("--hints", book / "hints"),
            "-o", changes.get("-o", book / "out"), *options(parity_weights)]

    def files():
        return {path: stamp(path) for path in book.rglob("*") if path.is_file() and "home" not in path.parts}

    before = files()
    assert colorize(*argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inknhue: error: " + message.format(book=book)), lines
    assert engine_calls == []
    assert files() == before  # nothing written


# --- on a running backend ----------------------------------------------------------------------

def test_a_chapter_on_a_running_backend_found_by_auto(book, parity_weights, isolated_user_dirs, cli):
    # the server's connection file where `--server auto` looks: the user data dir
    server = ServerProcess(parity_weights, isolated_user_dirs / ".local/share/inknhue")
    try:
        server.wait_until_ready()
        argv = ["colorize", book / "pages", "--hints", book / "hints", "-o", book / "out", "--max-size", "64",
                "--server", "auto"]
        done = cli(*argv)
        assert done.returncode == 0, done.stderr
        assert "server tcp://127.0.0.1:" in done.stderr and "loaded the models" not in done.stderr
        assert [line[:8] for line in done.stderr.splitlines() if line.startswith("done ")] == \
            ["done p1:", "done p2:", "done p10"]
        first = stamp(book / "out" / "p1.png")
        (book / "out" / "p2.png").unlink()

        again = cli(*argv)
        assert again.returncode == 0, again.stderr
        assert "skipped p1: done" in again.stderr and "done p2:" in again.stderr and "skipped p10: done" in again.stderr
        assert stamp(book / "out" / "p1.png") == first
    finally:
        server.stop()
    for name in ORDER:  # the backend's pages are this process's pages
        local = book / "local" / f"{name}.png"
        assert colorize(book / "pages" / f"{name}.png", "--hints", book / "hints" / f"{name}.png", "-o", local,
                        *options(parity_weights)) == 0
        np.testing.assert_array_equal(pixels(book / "out" / f"{name}.png"), pixels(local))



# --- one run at a time, and a manifest anyone could have put there (issue 23) -------------------

LOCK_NAME = chapter.MANIFEST_NAME + ".lock"


def chapter_process(book, parity_weights, out="out"):
    """A chapter run as its own process, started; returns it once it has made its plan (its
    first line), so that it holds the manifest from then on."""
    argv = [str(INKNHUE), "colorize", str(book / "pages"), "--hints", str(book / "hints"), "-o", str(book / out),
            *options(parity_weights)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()
    assert first.startswith("chapter: 3 pages"), first + process.stderr.read()
    return process, argv


def test_a_second_run_into_the_folder_refuses_naming_the_first(book, parity_weights):
    """Two real runs into one folder: each rewrote the manifest from its own copy, and pages
    inkn'hue wrote were afterwards taken for someone else's. Now the second refuses, naming the
    first, and writes nothing; the first's records are whole."""
    first, argv = chapter_process(book, parity_weights)
    try:
        first.send_signal(signal.SIGSTOP)  # holds the manifest while the second one starts
        (book / "out").mkdir(exist_ok=True)
        before = sorted(p.name for p in (book / "out").iterdir())
        second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith(f"inknhue: error: the manifest {book / 'out' / chapter.MANIFEST_NAME} is locked "
                                  f"by another run: pid {first.pid} on ")
        assert "colorize" in message and "started 20" in message and "wait for it to finish" in message
        assert sorted(p.name for p in (book / "out").iterdir()) == before  # nothing written
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    manifest = json.loads((book / "out" / chapter.MANIFEST_NAME).read_text())["pages"]
    assert sorted(manifest) == written(book / "out") == ["p1.png", "p10.png", "p2.png"]
    assert not (book / "out" / LOCK_NAME).exists()
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr.count(": done") == 3, again.stderr  # all known as ours


def test_the_lock_of_a_killed_run_is_taken_over(book, parity_weights):
    first, argv = chapter_process(book, parity_weights)
    first.kill()  # SIGKILL: no cleanup at all
    first.communicate(timeout=60)
    assert (book / "out" / LOCK_NAME).exists()
    second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"note: took over the lock of a run that is gone (pid {first.pid} on " in second.stderr
    assert written(book / "out") == ["p1.png", "p10.png", "p2.png"]
    assert not (book / "out" / LOCK_NAME).exists()


def _deep(manifest):
    manifest.write_text('{"pages": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _fifo(manifest):
    os.mkfifo(manifest)


def _dev_zero(manifest):
    manifest.symlink_to("/dev/zero")


@pytest.mark.parametrize("damage", [_deep, _fifo, _dev_zero], ids=lambda f: f.__name__.strip("_"))
def test_a_hostile_manifest_is_damaged_and_replaced_by_a_fresh_one(book, parity_weights, capsys, damage):
    """Nested 100,000 deep (a RecursionError), a FIFO (blocked forever), a symlink to /dev/zero
    (all memory): the "damaged" warning, and a fresh manifest afterwards."""
    import threading

    (book / "out").mkdir()
    manifest = book / "out" / chapter.MANIFEST_NAME
    damage(manifest)
    def let_a_blocked_reader_go():
        try:  # succeeds only while someone has the FIFO open for reading
            os.close(os.open(manifest, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    rescue = threading.Timer(30, let_a_blocked_reader_go)
    if damage is _fifo:
        rescue.start()
    started = time.monotonic()
    try:
        assert run_chapter(book, parity_weights) == 0
    finally:
        rescue.cancel()
    assert time.monotonic() - started < 30, "blocked on the manifest"
    err = capsys.readouterr().err
    assert f"warning: {manifest} is damaged" in err
    assert manifest.is_file() and not manifest.is_symlink()
    assert sorted(json.loads(manifest.read_text())["pages"]) == ["p1.png", "p10.png", "p2.png"]
