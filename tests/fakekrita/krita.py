"""A fake `krita` module: the part of Krita's Python API the plugin uses, for tests.

Pixels live in numpy arrays in Krita's layout (B, G, R, A in the document's depth);
the projection composites visible paint layers with "normal" or "multiply" blending. As in
Krita 5.1.5: adding a layer makes it the active one; `addChildNode`, `remove` and
`setBlendingMode` each add a step to the undo history of the document that holds the layer
(`Document.undo_steps`); `setChildNodes` adds none, and takes only the bottom layer out
before adding the given ones on top (a quirk of its loop). `Document.clone` copies the layers
with their ids (Krita's shallow clone), listed in `Krita.clones`. The Qt binding is
PyQt5 (Krita 5) or PyQt6 (Krita 6), chosen by $FAKE_KRITA_QT, and imported first, as the
real module does.
"""

from __future__ import annotations

import os

import numpy as np

if os.environ.get("FAKE_KRITA_QT", "PyQt5") == "PyQt6":
    from PyQt6.QtCore import QByteArray, QObject, QRect, QUuid, pyqtSignal
    from PyQt6.QtWidgets import QApplication, QDockWidget
else:
    from PyQt5.QtCore import QByteArray, QObject, QRect, QUuid, pyqtSignal
    from PyQt5.QtWidgets import QApplication, QDockWidget

IS_FAKE = True
DTYPES = {"U8": np.uint8, "U16": np.uint16, "F16": np.float16, "F32": np.float32}
OPAQUE = {"U8": 255, "U16": 65535, "F16": 1.0, "F32": 1.0}


class Notifier(QObject):
    applicationClosing = pyqtSignal()
    windowCreated = pyqtSignal()

    def setActive(self, active):
        pass


class Selection:
    def __init__(self, width, height):
        self.mask = np.zeros((height, width), np.uint8)

    def select(self, x, y, w, h, value):
        self.mask[y:y + h, x:x + w] = value

    def _bounds(self):
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return 0, 0, 0, 0
        return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)

    def x(self):
        return self._bounds()[0]

    def y(self):
        return self._bounds()[1]

    def width(self):
        return self._bounds()[2]

    def height(self):
        return self._bounds()[3]

    def pixelData(self, x, y, w, h):
        return QByteArray(self.mask[y:y + h, x:x + w].tobytes())


class Node:
    def __init__(self, document, name, kind="paintlayer"):
        self.document, self._name, self._type = document, name, kind
        self._uuid = QUuid.createUuid()
        self._parent = None
        self._children: list[Node] = []
        self._visible = True
        self._blending = "normal"
        self.pixels = np.zeros((document.height(), document.width(), 4), DTYPES[document.colorDepth()])
        self.writes = 0
        self.reads = 0

    def name(self):
        return self._name

    def setName(self, name):
        self._name = name

    def type(self):
        return self._type

    def uniqueId(self):
        return self._uuid

    def visible(self):
        return self._visible

    def setVisible(self, visible):
        self._visible = visible

    def blendingMode(self):
        return self._blending

    def setBlendingMode(self, mode):
        self._blending = mode
        self._holder().undo_steps.append("Composition Mode Change")
        return True

    def _holder(self):
        """The document whose stack holds this layer (its maker's while it is in none)."""
        node = self
        while node._parent is not None:
            node = node._parent
        return node.document if node._type == "grouplayer" and node._name == "root" else self.document

    def parentNode(self):
        return self._parent

    def childNodes(self):
        return list(self._children)

    def addChildNode(self, child, above):
        child._parent = self
        index = self._children.index(above) + 1 if above in self._children else len(self._children)
        self._children.insert(index, child)
        self._holder().undo_steps.append("Add Layer")
        self._holder()._active = child
        return True

    def setChildNodes(self, nodes):
        if self._children:
            self._children.pop(0)._parent = None
        for node in nodes:
            if node._parent is None:
                node._parent = self
                self._children.append(node)
                self._holder()._active = node

    def remove(self):
        if self._parent is not None:
            holder = self._holder()
            self._parent._children.remove(self)
            self._parent = None
            holder.undo_steps.append("Remove Layer")
            if holder._active is self:
                holder._active = None
        return True

    def pixelData(self, x, y, w, h):
        self.reads += 1
        return QByteArray(np.ascontiguousarray(self.pixels[y:y + h, x:x + w]).tobytes())

    def bounds(self):
        """Krita's exactBounds: the smallest rectangle holding every non-transparent pixel."""
        ys, xs = np.nonzero(self.pixels.any(axis=-1))
        if len(xs) == 0:
            return QRect()
        return QRect(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))

    def projectionPixelData(self, x, y, w, h):
        return self.pixelData(x, y, w, h)

    def setPixelData(self, data, x, y, w, h):
        region = np.frombuffer(bytes(data), self.pixels.dtype).reshape(h, w, 4)
        self.pixels[y:y + h, x:x + w] = region
        self.writes += 1
        return True


class Document:
    def __init__(self, width, height, name="page", model="RGBA", depth="U8", profile="sRGB-elle-V2-srgbtrc.icc"):
        self._width, self._height, self._name = width, height, name
        self._model, self._depth, self._profile = model, depth, profile
        self._root = Node(self, "root", "grouplayer")
        self._active = None
        self._selection = None
        self.modified = False
        self.undo_steps: list[str] = []  #: the undo history's entries, oldest first
        self.closed = False
        self.stroke_in_progress = False  #: a test's pen on the canvas: the image is not idle

    def width(self):
        return self._width

    def height(self):
        return self._height

    def name(self):
        return self._name

    def colorModel(self):
        return self._model

    def colorDepth(self):
        return self._depth

    def colorProfile(self):
        return self._profile

    def setColorSpace(self, model, depth, profile):
        self._model, self._depth = model, depth
        return True

    def rootNode(self):
        return self._root

    def topLevelNodes(self):
        return self._root.childNodes()

    def createNode(self, name, kind):
        return Node(self, name, kind)

    def activeNode(self):
        return self._active

    def setActiveNode(self, node):
        self._active = node

    def selection(self):
        return self._selection

    def setSelection(self, selection):
        self._selection = selection

    def refreshProjection(self):
        pass

    def tryBarrierLock(self):
        return not self.stroke_in_progress

    def unlock(self):
        pass

    def waitForDone(self):
        # Krita's waits for every open stroke: with the pen on the canvas, for ever
        assert not self.stroke_in_progress, "waitForDone() during a stroke would freeze Krita"

    def setModified(self, modified):
        self.modified = modified

    def close(self):
        if self in Krita.instance().documents():
            Krita.instance().close(self)
        self.closed = True
        return True

    def clone(self):
        """Krita's shallow copy: the same layers (ids, pixels, visibility, blending), a document
        of its own that no view shows and `Krita.documents()` does not list."""
        copy = Document(self._width, self._height, self._name, self._model, self._depth, self._profile)
        copy._selection = self._selection

        def copied(node, parent):
            twin = Node(copy, node._name, node._type)
            twin._uuid, twin._visible, twin._blending = node._uuid, node._visible, node._blending
            twin.pixels = node.pixels.copy()
            twin._parent = parent
            twin._children = [copied(child, twin) for child in node._children]
            return twin

        copy._root._children = [copied(child, copy._root) for child in self._root._children]
        Krita.instance().clones.append(copy)
        return copy

    def pixelData(self, x, y, w, h):
        """The visible layers composited, bottom to top (normal or multiply blending)."""
        scale = float(OPAQUE[self._depth])
        out = np.zeros((h, w, 4), np.float64)
        for node in self._root.childNodes():
            if not node.visible():
                continue
            layer = node.pixels[y:y + h, x:x + w].astype(np.float64) / scale
            alpha = layer[..., 3:4]
            colour = layer[..., :3] * out[..., :3] if node.blendingMode() == "multiply" else layer[..., :3]
            out[..., :3] = colour * alpha + out[..., :3] * (1 - alpha)
            out[..., 3:4] = alpha + out[..., 3:4] * (1 - alpha)
        values = out * scale
        if np.issubdtype(DTYPES[self._depth], np.integer):
            values = np.rint(values)
        return QByteArray(values.astype(DTYPES[self._depth]).tobytes())


class DockWidget(QDockWidget):
    def canvasChanged(self, canvas):
        pass


class DockWidgetFactoryBase:
    DockRight = 1

    class DockPosition:
        DockRight = 1


class DockWidgetFactory:
    def __init__(self, name, position, cls):
        self.name, self.position, self.cls = name, position, cls


class Extension(QObject):
    def __init__(self, parent=None):
        super().__init__()


class Krita:
    _instance = None

    def __init__(self):
        self.settings: dict[tuple[str, str], str] = {}
        self._documents: list[Document] = []
        self.active: Document | None = None
        self._notifier = Notifier()
        self.factories = []
        self.extensions = []
        self.clones: list[Document] = []  #: every Document.clone() made (a test sees each closed)

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def reset(cls):
        cls._instance = None

    def readSetting(self, group, key, default):
        return self.settings.get((group, key), default)

    def writeSetting(self, group, key, value):
        self.settings[(group, key)] = value

    def notifier(self):
        return self._notifier

    def activeDocument(self):
        return self.active

    def documents(self):
        return list(self._documents)

    def close(self, doc):
        """The artist closes a document (a test helper: Krita's is Document.close())."""
        self._documents.remove(doc)
        if self.active is doc:
            before = getattr(doc, "active_before", None)
            self.active = before if before in self._documents else self._documents[-1] if self._documents else None

    def createDocument(self, width, height, name, model, depth, profile, resolution):
        doc = Document(width, height, name, model, depth, profile)
        background = doc.createNode("Background", "paintlayer")
        background.pixels[...] = OPAQUE[depth]
        doc.rootNode().addChildNode(background, None)
        doc.setActiveNode(background)
        doc.undo_steps.clear()  # a new document's history is empty
        doc.active_before = self.active
        self._documents.append(doc)
        self.active = doc
        return doc

    def addDockWidgetFactory(self, factory):
        self.factories.append(factory)

    def addExtension(self, extension):
        self.extensions.append(extension)

    def version(self):
        return "5.2.0-fake"


_app = None


def application():
    """The QApplication, created once and kept (Qt aborts if it is collected)."""
    global _app
    _app = QApplication.instance() or _app or QApplication([])
    return _app
