"""Registration with Krita: the docker, and stopping our backend when Krita quits."""

from __future__ import annotations

import logging
import logging.handlers

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .docker import InknhueDocker, stop_backend
from .paths import user_data_dir

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


def start_logging() -> None:
    """The plugin's log: plugin.log in the inkn'hue user data dir (rotated)."""
    logger = logging.getLogger("inknhue_krita")
    logger.setLevel(logging.INFO)
    try:
        folder = user_data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / "plugin.log", maxBytes=1_000_000, backupCount=2)
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
