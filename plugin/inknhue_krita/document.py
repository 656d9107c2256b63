"""Every call into Krita's document API lives here (the seam the fake krita module mimics).

Layers are only ever created here, never changed unless the plugin made them: the
artist's own layers are read, not written.
"""

from __future__ import annotations

import logging

from krita import Krita

from . import placement, slices
from .live import fingerprint
from .logic import BYTES, HINT_LAYER, OPAQUE_ALPHA, RESULT_LAYER, Rect, fully_opaque
from .qt import QtCore, QtGui

log = logging.getLogger("inknhue_krita")


def active_document():
    return Krita.instance().activeDocument()


def size(document) -> tuple[int, int]:
    return document.width(), document.height()


def selection_rect(document) -> Rect | None:
    selection = document.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        return None
    return Rect(selection.x(), selection.y(), selection.width(), selection.height())


def active_selection(document):
    """The document's selection, or None where it selects nothing (then the whole image is
    worked, as without one, not a result with no pixels)."""
    return document.selection() if selection_rect(document) is not None else None


def page_pixels(document, rect: Rect, source: str, node=None) -> bytes:
    """The page as the artist sees it ("visible", without the plugin's own hint and colour
    layers) or one layer with its masks ("layer"), in one stretch (where no snapshot can be had)."""
    if source == "layer" and node is not None:
        return bytes(node.projectionPixelData(rect.x, rect.y, rect.width, rect.height))
    ours = [n for n in all_layers(document) if is_plugin_layer(n) and n.visible()]
    for layer in ours:  # only the plugin's layers are hidden, for the time of one read
        layer.setVisible(False)
    try:
        document.refreshProjection()
        document.waitForDone()
        return bytes(document.pixelData(rect.x, rect.y, rect.width, rect.height))
    finally:
        for layer in ours:
            layer.setVisible(True)
        if ours:
            document.refreshProjection()


def snapshot(document):
    """A copy of the document as it is now (Krita's `Document.clone`: its layers' tiles shared
    until written, a few milliseconds; layer ids kept), to read a band at a time while the
    artist goes on painting in the original: the page and the hints stay those of one moment.
    Never shown, not among Krita's documents; close it with `close_snapshot`. None where this
    Krita cannot clone."""
    try:
        return document.clone() if hasattr(document, "clone") else None
    except Exception:  # noqa: BLE001  (a Krita whose clone fails: the document itself is read)
        log.exception("no snapshot of the document")
        return None


def without_ours(copy, also: str = "") -> None:
    """The snapshot's projection without the plugin's layers (the page as the artist sees it),
    nor the layer whose id is `also` (Bring to page's colouring): they are hidden in the copy
    alone (the artist's canvas never blinks) and the copy recomposited, Krita's threads
    compositing while the UI thread waits (60-90 ms for an A4 page on a loaded 2-core
    machine; taking the layers out instead cost 0.28 s there)."""
    ours = [n for n in all_layers(copy) if (is_plugin_layer(n) or (also and layer_id(n) == also)) and n.visible()]
    for node in ours:
        node.setVisible(False)
    if ours:
        copy.refreshProjection()


def close_snapshot(copy) -> None:
    if copy is not None:
        copy.setModified(False)  # closing asks nothing
        copy.close()


def reading(document, rect: Rect, pixel_bytes: int, source: str = "visible", page_node=None, hints_node=None,
            reference_node=None, selection=None, colouring=None, colouring_area: Rect | None = None):
    """The pixels a job sends, read from a snapshot a band at a time (slices.py), yielding
    between bands (the run's flow lets Qt have the UI thread then; closing the generator stops
    the read and closes the snapshot). Returns {"page", and "hints" / "reference" / "mask"
    where their layers or the document's `selection` are given: bytes}; the reference over the
    whole image. Without a snapshot, the page is read as before, in one stretch. The selection
    is the document's own (a snapshot's may not have it), read in bands too. `colouring`: Bring
    to page's layer, read as "coloured" within `colouring_area` and left out of the page."""
    copy = snapshot(document)
    try:
        visible = not (source == "layer" and page_node is not None)
        if copy is not None and visible:
            yield slices.TURN  # the clone and the recompositing on turns of their own
            without_ours(copy, layer_id(colouring) if colouring is not None else "")
            yield

        def same(node):  # a layer of the document, as the snapshot has it
            found = find_layer(copy, unique_id=layer_id(node)) if copy is not None else None
            return found if found is not None else node

        parts = {}
        whole = Rect(0, 0, *size(document))
        for name, node, area, read in (("hints", hints_node, rect, "pixelData"),
                                       ("reference", reference_node, whole, "projectionPixelData"),
                                       ("coloured", colouring, colouring_area or whole, "projectionPixelData")):
            if node is not None:
                parts[name] = []
                for band in slices.read(getattr(same(node), read), area, pixel_bytes):
                    parts[name].append(band)
                    yield
        if copy is None and visible:
            parts["page"] = [page_pixels(document, rect, source, page_node) if colouring is None
                             else page_without(document, rect, colouring)]
            yield
        else:
            read = same(page_node).projectionPixelData if not visible else copy.pixelData
            parts["page"] = []
            for band in slices.read(read, rect, pixel_bytes):
                parts["page"].append(band)
                yield
        if selection is not None:
            parts["mask"] = []
            for band in slices.read(selection.pixelData, rect, 1):
                parts["mask"].append(band)
                yield
        return {name: b"".join(bands) for name, bands in parts.items()}
    finally:
        close_snapshot(copy)


def is_plugin_layer(node) -> bool:
    return node.name() == HINT_LAYER or node.name().startswith(RESULT_LAYER)


def layer_fingerprint(document, node) -> tuple:
    """What tells this layer's pixels from any other state of them (live colour's poll):
    read only within its exact bounds (Krita caches them), in bands, never copied to bytes."""
    bounds = node.bounds()
    rect = Rect(bounds.x(), bounds.y(), bounds.width(), bounds.height()).intersected(Rect(0, 0, *size(document)))
    return fingerprint(rect, node.pixelData)


def idle(document) -> bool:
    """Whether no stroke is in progress (the pen is off the canvas) and nothing is being
    computed: then reading the page (`waitForDone`) cannot wait on the artist."""
    if not document.tryBarrierLock():
        return False
    document.unlock()
    return True


def all_layers(document) -> list:
    found, stack = [], list(document.topLevelNodes())
    while stack:
        node = stack.pop(0)
        found.append(node)
        stack[0:0] = list(node.childNodes())
    return found


def find_layer(document, name: str = "", unique_id: str = ""):
    for node in all_layers(document):
        if (unique_id and node.uniqueId().toString() == unique_id) or (not unique_id and node.name() == name):
            return node
    return None


def layer_id(node) -> str:
    return node.uniqueId().toString()


def add_layer_above(document, above, name: str):
    """A new transparent paint layer right above `above` (or on top of the image)."""
    node = document.createNode(name, "paintlayer")
    if above is not None and above.parentNode() is not None:
        above.parentNode().addChildNode(node, above)
    else:
        document.rootNode().addChildNode(node, None)
    return node


def _placement_layer(node, opaque: bool):
    name = node.name()
    ours = placement.HINTS if name == HINT_LAYER else placement.RESULT if is_plugin_layer(node) else ""
    return placement.Layer(layer_id(node), name, ours, node.visible(), opaque, node.blendingMode())


def covers(node, rect: Rect, dtype: str):
    """Whether a layer is opaque all over `rect`: every COVER_ROWS-th row of its pixels in
    slices, stopping at the first transparent pixel (a quarter of the reading; a hole thinner
    than that between the rows read goes unseen). Not its `bounds()` first: Krita's exact
    bounds scan the layer's pixels in one call (0.14 s for an A4 page's ink), where a layer
    that does not cover shows it in its first slice. A generator: it yields after each slice
    read (the run's flow lets Qt draw between)."""
    row = rect.width * 4 * BYTES[dtype]
    for band in slices.rows(rect, 4 * BYTES[dtype]):  # a call a band: Krita's cost is per call
        data = bytes(node.pixelData(band.x, band.y, band.width, band.height))
        for start in range(0, len(data), COVER_ROWS * row):
            if not fully_opaque(data[start:start + row], dtype):
                return False
        yield
    return True


COVER_ROWS = 4


def opaque_share(node, rect: Rect, dtype: str):
    """The share of `rect` where a layer is opaque (its alpha's top byte at full: enough to
    tell what hides a result), read in slices, nothing outside the layer's bounds. A
    generator, yielding after each slice."""
    bounds = node.bounds()
    area = Rect(bounds.x(), bounds.y(), bounds.width(), bounds.height()).intersected(rect)
    if area.empty or rect.empty:
        return 0.0
    size = BYTES[dtype]
    top = OPAQUE_ALPHA[dtype][-1]  # the alpha's most significant byte (little-endian): counted in C
    count = 0
    for data in slices.read(node.pixelData, area, 4 * size):
        count += data[4 * size - 1::4 * size].count(top)
        yield
    return count / (rect.width * rect.height)


def add_result_layer(document, name: str, rect: Rect, dtype: str, kind: str, blending: str = "normal",
                     page_node=None, see_through=None):
    """A new result layer where it is seen (placement.py decides), added without an undo step
    when this Krita allows it, the artist's layers in their order and the active layer kept.
    A generator (it yields between reads of layers); returns the layer and what to tell the
    artist when a layer above hides it ("" if none). `see_through`: a layer placement takes
    for not opaque (Bring to page's colouring: the colour goes under the ink, not above it)."""
    active = document.activeNode()
    layers = []
    passed_over = layer_id(top_level(document, see_through)) if see_through is not None else ""
    for node in document.topLevelNodes():
        # Bring to page's colouring counts as see-through: its result goes under the ink
        opaque = False if layer_id(node) == passed_over else (yield from covers(node, rect, dtype))
        layers.append(_placement_layer(node, opaque))  # each slice read between two turns of Qt's event loop
        yield
    if kind == "full":
        page = top_level(document, page_node) if page_node is not None else None
        ids = [layer.id for layer in layers]
        above = placement.coloured_page(layers, ids.index(layer_id(page)) if page is not None and
                                        layer_id(page) in ids else None)
    else:
        above = placement.under_ink(layers)
    node = new_layer(document, name, blending)
    new = placement.Layer(layer_id(node), name, placement.RESULT, True, False, blending)
    stack = placement.order(layers, new, above if layers else -1)
    yield slices.TURN  # Krita's re-stacking (a tenth of a second on an A4 page) on a turn of its own
    arrange(document, [layer.id for layer in stack], {new.id: node})  # in one go: no stack half moved is drawn
    keep_active(document, active)
    for layer in placement.may_hide(stack, new):
        yield
        share = yield from opaque_share(find_layer(document, unique_id=layer.id), rect, dtype)
        if share > placement.HIDES:
            return node, placement.hidden_text(layer.name, share)
    return node, ""


def new_layer(document, name: str, blending: str = "normal"):
    """A paint layer not yet in the stack. Its blending mode is set while it visits a scratch
    document, whose undo history takes that step instead of the artist's."""
    node = document.createNode(name, "paintlayer")
    if blending == "normal":
        return node
    scratch = Krita.instance().createDocument(1, 1, "inknhue scratch", document.colorModel(),
                                              document.colorDepth(), document.colorProfile(), 72.0)
    try:
        scratch.rootNode().setChildNodes([node])  # the scratch's own layer out, ours in: no undo step
        visiting = next(n for n in scratch.rootNode().childNodes() if layer_id(n) == layer_id(node))
        visiting.setBlendingMode(blending)
        scratch.rootNode().setChildNodes([])      # ours out again
    finally:
        scratch.setModified(False)
        scratch.close()
    return node


_REORDER: list[str] = []  #: how this Krita's setChildNodes behaves, found once ("bottom", "all", "undo")


def reorder_kind() -> str:
    """Krita 5's `setChildNodes` takes only the bottom layer out before adding the given ones
    on top (a quirk of its loop) and neither adds an undo step; a Krita that takes every layer
    out is used as such; anything else falls back to `addChildNode` (one undo step). Tried
    once on a scratch document."""
    if not _REORDER:
        scratch = Krita.instance().createDocument(1, 1, "inknhue scratch", "RGBA", "U8", "", 72.0)
        try:
            root = scratch.rootNode()
            for name in ("b", "c"):
                root.addChildNode(scratch.createNode(name, "paintlayer"), None)
            before = root.childNodes()
            root.setChildNodes([before[0]])
            after = [layer_id(n) for n in root.childNodes()]
            ids = [layer_id(n) for n in before]
            _REORDER.append("bottom" if after == ids[1:] + ids[:1] else "all" if after == ids[:1] else "undo")
        finally:
            scratch.setModified(False)
            scratch.close()
    return _REORDER[0]


def arrange(document, wanted: list[str], new: dict) -> None:
    """Put the top-level layers in the `wanted` order (ids, bottom to top; `new` the layers not
    yet in the stack, by id), moving no layer of the artist's relative to another."""
    root = document.rootNode()
    current = {layer_id(n): n for n in root.childNodes()}
    nodes = {**current, **new}
    kind = reorder_kind()
    calls = placement.moves(list(current), wanted) if kind == "bottom" else None
    if calls is not None:
        for call in calls:
            root.setChildNodes([nodes[i] for i in call])
    elif kind == "all":
        root.setChildNodes([nodes[i] for i in wanted])
    else:  # one undo step per layer added (a Krita whose setChildNodes we do not know)
        for index, layer in enumerate(wanted):
            if layer in new:
                below = nodes[wanted[index - 1]] if index else None
                root.addChildNode(new[layer], below)
    if [layer_id(n) for n in root.childNodes()] != wanted:
        log.warning("the layers did not land in the order asked")


def keep_active(document, active, unless_changed_from: str = "") -> None:
    """The artist's active layer again (adding a layer makes Krita activate it; a Krita may do
    so later, hence a second call then, which leaves a layer the artist chose since alone:
    it acts only while the layer `unless_changed_from` names, or none, is active)."""
    now = document.activeNode()
    if active is None or (now is not None and layer_id(now) == layer_id(active)):
        return
    if not unless_changed_from or now is None or layer_id(now) == unless_changed_from:
        document.setActiveNode(active)


def top_level(document, node):
    """The top-level layer that holds `node` (itself if it is one)."""
    root = document.rootNode()
    while node is not None and node.parentNode() is not None and layer_id(node.parentNode()) != layer_id(root):
        node = node.parentNode()
    return node


def clear_pixels(document, node, rect: Rect, dtype: str) -> None:
    write_pixels(document, node, bytes(rect.width * rect.height * 4 * BYTES[dtype]), rect)


def open_documents() -> list:
    return list(Krita.instance().documents())


def add_hint_layer(document, page_node):
    node = add_layer_above(document, page_node, HINT_LAYER)
    document.setActiveNode(node)
    return node


def topmost(document, nodes):
    """Of `nodes` (some may be None), the one highest in the layer stack."""
    order = {layer_id(n): i for i, n in enumerate(all_layers(document))}
    candidates = [n for n in nodes if n is not None]
    return max(candidates, key=lambda n: order.get(layer_id(n), -1)) if candidates else None


def write_pixels(document, node, data: bytes, rect: Rect) -> None:
    node.setPixelData(QtCore.QByteArray(data), rect.x, rect.y, rect.width, rect.height)
    document.refreshProjection()


def write_slices(document, node, data: bytes, rect: Rect, dtype: str):
    """write_pixels a band at a time (slices.py), yielding between bands; the projection is
    brought up to date once, after the last."""
    yield from slices.write(node.setPixelData, QtCore.QByteArray, data, rect, 4 * BYTES[dtype])
    yield slices.TURN  # the projection's refresh (Krita composites the whole image meanwhile) on a turn of its own
    document.refreshProjection()


def colorize_mask_hints(document, rect: Rect):
    """A Colorize Mask's key strokes as BGRA hint pixels, where this Krita exposes them."""
    for node in all_layers(document):
        if node.type() != "colorizemask" or not hasattr(node, "keyStrokesColors"):
            continue
        if not hasattr(node, "keyStrokePixelData"):
            return None
        image = QtGui.QImage(rect.width, rect.height, QtGui.QImage.Format.Format_ARGB32)
        image.fill(0)
        painter = QtGui.QPainter(image)
        for colour in node.keyStrokesColors():
            mask = bytes(node.keyStrokePixelData(colour, rect.x, rect.y, rect.width, rect.height))
            stroke = QtGui.QImage(mask, rect.width, rect.height, rect.width, QtGui.QImage.Format.Format_Alpha8)
            tinted = QtGui.QImage(rect.width, rect.height, QtGui.QImage.Format.Format_ARGB32)
            tinted.fill(colour)
            inner = QtGui.QPainter(tinted)
            inner.setCompositionMode(QtGui.QPainter.CompositionMode.CompositionMode_DestinationIn)
            inner.drawImage(0, 0, stroke)
            inner.end()
            painter.drawImage(0, 0, tinted)
        painter.end()
        return qimage_bytes(image)
    return None


def qimage_bytes(image) -> bytes:
    image = image.convertToFormat(QtGui.QImage.Format.Format_ARGB32)
    return bytes(image.constBits().asstring(image.sizeInBytes()))


def load_reference_file(path: str):
    """A reference image file as BGRA bytes, or None if Qt cannot read it."""
    image = QtGui.QImage(path)
    if image.isNull():
        return None
    return image.width(), image.height(), qimage_bytes(image)


def scale_bgra(data: bytes, width: int, height: int, to_width: int, to_height: int) -> bytes:
    """8-bit BGRA pixels resized with Qt's smooth scaling (for live previews)."""
    image = QtGui.QImage(data, width, height, width * 4, QtGui.QImage.Format.Format_ARGB32)
    scaled = image.scaled(to_width, to_height, QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
                          QtCore.Qt.TransformationMode.SmoothTransformation)
    return qimage_bytes(scaled)


# --- Bring to page (upscaling.py) ----------------------------------------------------------

def layer_bounds(document, node) -> Rect:
    """A layer's exact bounds (what it holds), within the canvas."""
    bounds = node.bounds()
    return Rect(bounds.x(), bounds.y(), bounds.width(), bounds.height()).intersected(Rect(0, 0, *size(document)))


def layer_below(node):
    """The layer right beneath `node` among its siblings, or None."""
    parent = node.parentNode()
    siblings = [layer_id(n) for n in parent.childNodes()] if parent is not None else []
    index = siblings.index(layer_id(node)) if layer_id(node) in siblings else 0
    return parent.childNodes()[index - 1] if index > 0 else None


def page_without(document, rect: Rect, colouring) -> bytes:
    """The page as seen (page_pixels' "visible") without the colouring layer either, where no
    snapshot can be had: it is hidden for the time of one read, as the plugin's own layers
    are, and shown again."""
    hide = colouring.visible()
    if hide:
        colouring.setVisible(False)
    try:
        return page_pixels(document, rect, "visible")
    finally:
        if hide:
            colouring.setVisible(True)
            document.refreshProjection()
