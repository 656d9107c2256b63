"""Every call into Krita's document API lives here (the seam the fake krita module mimics).

Layers are only ever created here, never changed unless the plugin made them: the
artist's own layers are read, not written.
"""

from __future__ import annotations

from krita import Krita

from .live import fingerprint
from .logic import BYTES, HINT_LAYER, RESULT_LAYER, Rect, colour_layer_place, fully_opaque
from .qt import QtCore, QtGui


def active_document():
    return Krita.instance().activeDocument()


def size(document) -> tuple[int, int]:
    return document.width(), document.height()


def selection_rect(document) -> Rect | None:
    selection = document.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        return None
    return Rect(selection.x(), selection.y(), selection.width(), selection.height())


def selection_mask(document, rect: Rect) -> bytes | None:
    """The selection over `rect`, one byte a pixel (255 selected), or None without one."""
    selection = document.selection()
    if selection is None:
        return None
    return bytes(selection.pixelData(rect.x, rect.y, rect.width, rect.height))


def page_pixels(document, rect: Rect, source: str, node=None) -> bytes:
    """The page as the artist sees it ("visible", without the plugin's own hint and colour
    layers) or one layer with its masks ("layer")."""
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


def is_plugin_layer(node) -> bool:
    return node.name() == HINT_LAYER or node.name().startswith(RESULT_LAYER)


def layer_pixels(node, rect: Rect) -> bytes:
    return bytes(node.pixelData(rect.x, rect.y, rect.width, rect.height))


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


def add_layer_under_ink(document, name: str, rect: Rect, dtype: str, blending: str = "multiply"):
    """A new layer in `blending` mode under the artist's ink layers, where colourists put
    colour: right above the topmost opaque layer over `rect` (the paper, or a scanned page
    it can only be multiplied over), beneath the line art layers above that."""
    node = document.createNode(name, "paintlayer")
    node.setBlendingMode(blending)
    layers = [n for n in document.topLevelNodes() if n.visible() and not is_plugin_layer(n)]
    opaque = [fully_opaque(layer_pixels(n, rect), dtype) for n in layers]
    document.rootNode().addChildNode(node, layers[colour_layer_place(opaque)] if layers else None)
    return node


def top_level(document, node):
    """The top-level layer that holds `node` (itself if it is one)."""
    root = document.rootNode()
    while node is not None and node.parentNode() is not None and layer_id(node.parentNode()) != layer_id(root):
        node = node.parentNode()
    return node


def add_result_layer(document, name: str, rect: Rect, dtype: str, page_node=None):
    """A new layer where it is seen: above every layer but the hints when the page is the
    visible image; above the page's own layer when one layer is the page, unless an opaque
    layer above that would hide it (then above the topmost such)."""
    node = document.createNode(name, "paintlayer")
    layers = [n for n in document.topLevelNodes() if n.name() != HINT_LAYER]
    above = layers[-1] if layers else None
    page = top_level(document, page_node) if page_node is not None else None
    if page is not None:
        ids = [layer_id(n) for n in layers]
        index = ids.index(layer_id(page)) if layer_id(page) in ids else len(layers) - 1
        for higher in range(len(layers) - 1, index, -1):
            candidate = layers[higher]
            if candidate.visible() and fully_opaque(layer_pixels(candidate, rect), dtype):
                index = higher
                break
        above = layers[index]
    document.rootNode().addChildNode(node, above)
    return node


def show_above(document, node, hints=None) -> None:
    """Make a result layer visible, and the hint layer (ours) sit right above it. The active
    layer stays what it was, even when that is the hint layer being moved."""
    node.setVisible(True)
    if hints is None or hints.parentNode() is None:
        return
    order = [layer_id(n) for n in all_layers(document)]  # bottom to top
    if layer_id(hints.parentNode()) == layer_id(node.parentNode()) and \
            order.index(layer_id(hints)) > order.index(layer_id(node)):
        return
    active = document.activeNode()
    hints.remove()
    node.parentNode().addChildNode(hints, node)
    if active is not None and (document.activeNode() is None or
                               layer_id(document.activeNode()) != layer_id(active)):
        document.setActiveNode(active)


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
