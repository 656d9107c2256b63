"""The Qt binding Krita itself loaded: PyQt6 in Krita 6, PyQt5 in Krita 5.

Importing the other binding would load a second Qt into Krita (Krita 6 refuses plugins
that import PyQt5), so the choice is made from what `krita` has already imported.
"""

import sys

try:  # inside Krita (or with the tests' fake krita), this loads Krita's own binding first
    import krita  # noqa: F401
except ImportError:
    pass

if "PyQt6.QtCore" in sys.modules:
    from PyQt6 import QtCore, QtGui, QtWidgets
    from PyQt6.QtCore import pyqtSignal as Signal
    QT_MAJOR = 6
elif "PyQt5.QtCore" in sys.modules:
    from PyQt5 import QtCore, QtGui, QtWidgets
    from PyQt5.QtCore import pyqtSignal as Signal
    QT_MAJOR = 5
else:  # outside Krita with nothing loaded yet (a standalone tool): prefer Qt 6
    try:
        from PyQt6 import QtCore, QtGui, QtWidgets
        from PyQt6.QtCore import pyqtSignal as Signal
        QT_MAJOR = 6
    except ImportError:
        from PyQt5 import QtCore, QtGui, QtWidgets
        from PyQt5.QtCore import pyqtSignal as Signal
        QT_MAJOR = 5

Qt = QtCore.Qt

__all__ = ["QT_MAJOR", "QtCore", "QtGui", "QtWidgets", "Qt", "Signal"]
