"""What every rough-colour provider is: the request it gets, the base class, the registry.

A provider receives what the artist gave (page, hint strokes, reference, a rough image)
and returns rough colours with the page's aspect ratio, at any resolution: the pipeline
resizes them to its working size. Providers that run networks get them through
`Networks`, which the engine satisfies (the providers never import the engine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from ..defaults import DEFAULT_MAX_SIZE
from ..errors import InputError, WeightsError

if TYPE_CHECKING:
    import torch


class Networks(Protocol):
    """What a provider may use of the engine that runs it (engine.pipeline.Engine is one)."""

    weights_dir: Path
    device: torch.device

    def run_generator(self, grey: np.ndarray, hints: torch.Tensor | None = None) -> torch.Tensor:
        """The shading generator on a padded grey page, with hint planes (Engine.run_generator)."""


@dataclass
class RoughRequest:
    page: np.ndarray                      #: H x W x 3 uint8 RGB
    hints: np.ndarray | None = None       #: H x W x 4 uint8 RGBA: colour where alpha > 0
    reference: np.ndarray | None = None   #: any size, RGB uint8
    rough: np.ndarray | None = None       #: a rough-colour image the user supplied, RGB uint8
    fill_all: bool = False                #: colour regions without strokes too
    transfer: bool = False                #: match the rough colours' a*/b* to the reference
    max_size: int = DEFAULT_MAX_SIZE      #: the pipeline's working size (for providers with networks)


class RoughProvider(ABC):
    #: the name users select it by (`--prior NAME`)
    name: ClassVar[str]
    #: one line for help texts and the server's `hello`
    description: ClassVar[str]
    #: True if the provider reads the reference image itself (else a global colour transfer may)
    takes_reference: ClassVar[bool] = False

    @classmethod
    def unavailable(cls, weights_dir: Path) -> str | None:
        """Why the provider cannot run with this weights folder (its own networks missing),
        or None: the server's `hello` offers only providers that can run."""
        return None

    def require(self, weights_dir: Path) -> None:
        """Stop before any slow stage when the provider cannot run."""
        reason = self.unavailable(weights_dir)
        if reason:
            raise WeightsError(f"the '{self.name}' provider is not available: {reason}")

    def validate(self, request: RoughRequest) -> None:  # noqa: B027  (a hook: most providers take any input)
        """Refuse inputs this provider cannot use (InputError), with no weights loaded: the
        command line asks before anything slow."""

    def check(self, request: RoughRequest) -> list[str]:
        """Warnings for the artist: inputs that are valid but probably not what was meant."""
        return []

    def weights_warnings(self, weights_dir: Path, device) -> list[str]:
        """What loading the provider's own networks for this folder and device found wrong
        with their weights (NaN or infinite values, `networks.nonfinite`), one line each;
        empty before they are loaded. The engine adds them to every result."""
        return []

    @abstractmethod
    def rough_colours(self, request: RoughRequest, engine: Networks) -> np.ndarray:
        """Rough colours, RGB uint8, with the page's aspect ratio."""

    def __call__(self, request: RoughRequest, engine: Networks) -> np.ndarray:
        """The provider's colours, then the global colour transfer if asked for."""
        rough = self.rough_colours(request, engine)
        if request.transfer:
            if request.reference is None:
                raise InputError("colour transfer needs a reference image (--reference REF)")
            from .transfer import transfer_colours

            rough = transfer_colours(rough, request.reference)
        return rough


PROVIDERS: dict[str, type[RoughProvider]] = {}


def empty_hints_warning(request: RoughRequest) -> list[str]:
    hints = request.hints
    if hints is not None and hints.ndim == 3 and hints.shape[2] == 4 and not (hints[..., 3] > 0).any():
        return ["The hint layer is empty: paint colour strokes on it (the rough colours are blank paper)."]
    return []


def register(cls: type[RoughProvider]) -> type[RoughProvider]:
    PROVIDERS[cls.name] = cls
    return cls


def get_provider(name: str) -> RoughProvider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise InputError(f"unknown rough-colour provider '{name}' "
                         f"(available: {', '.join(sorted(PROVIDERS))})") from None

