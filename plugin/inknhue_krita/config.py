"""The plugin's configuration: what the installer wrote, and the artist's settings in Krita.

`plugin.json` in the inkn'hue user data dir (next to the server's connection file) is
written by `inknhue install`:

    {"version": 1,
     "backend": {"command": ["/path/to/venv/bin/inknhue", "serve"],
                 "weights": "/path/to/weights", "device": "auto"}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .paths import user_data_dir

CONFIG_NAME = "plugin.json"
SETTINGS_GROUP = "inknhue"


@dataclass
class BackendConfig:
    command: list[str] = field(default_factory=list)   #: how to start `inknhue serve`
    weights: str = ""
    device: str = "auto"

    @property
    def installed(self) -> bool:
        return bool(self.command)

    def serve_command(self) -> list[str]:
        command = list(self.command)
        if self.weights:
            command += ["--weights", self.weights]
        if self.device:
            command += ["--device", self.device]
        return command


def config_path():
    return user_data_dir() / CONFIG_NAME


def load_backend_config() -> tuple[BackendConfig, str]:
    """The installer's configuration, and a problem to report ("" when fine)."""
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return BackendConfig(), f"the backend is not installed (no {path}): run the inkn'hue installer"
    except (OSError, ValueError) as exc:
        return BackendConfig(), f"cannot read {path}: {exc}; run the inkn'hue installer again"
    backend = data.get("backend", {}) if isinstance(data, dict) else {}
    command = backend.get("command", [])
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        return BackendConfig(), f"{path} has no usable backend command; run the inkn'hue installer again"
    return BackendConfig(command, str(backend.get("weights", "")), str(backend.get("device", "auto"))), ""


# Settings kept with Krita's settings API (kritarc), with their defaults.
DEFAULTS = {
    "page_source": "visible",
    "provider": "flats",
    "max_size": 768,
    "ratio": 0.8,
    "fill_all": False,
    "reference": "",
    "output_layer": "full",
    "live": False,           #: the artist's Live switch; on again only where live colour is offered
}


def read_setting(key: str):
    """A setting through Krita's API, typed like its default."""
    from krita import Krita

    default = DEFAULTS[key]
    text = Krita.instance().readSetting(SETTINGS_GROUP, key, str(default))
    try:
        if isinstance(default, bool):
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        return default
    return text


def write_setting(key: str, value) -> None:
    from krita import Krita

    Krita.instance().writeSetting(SETTINGS_GROUP, key, str(value))
