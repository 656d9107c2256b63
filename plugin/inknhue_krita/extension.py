"""Registration with Krita: the docker, and stopping our backend when Krita quits."""

from __future__ import annotations

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .docker import InknhueDocker, stop_backend

DOCKER_ID = "inknhue_docker"


class InknhueExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)

    def setup(self) -> None:
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.applicationClosing.connect(stop_backend)

    def createActions(self, window) -> None:
        pass


def register() -> None:
    app = Krita.instance()
    app.addExtension(InknhueExtension(app))
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockPosition.DockRight
                                               if hasattr(DockWidgetFactoryBase, "DockPosition")
                                               else DockWidgetFactoryBase.DockRight, InknhueDocker))
