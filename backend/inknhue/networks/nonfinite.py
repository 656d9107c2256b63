"""Weights that hold NaN or infinite values: found at load, said in one line.

A network whose weights hold NaN gives NaN (black or garbage pixels) for every page; a file
damaged that way still loads strictly, since its names and shapes are right. What loads
them looks at every floating-point tensor once, as read (a fraction of a second for the
released weights), and warns, naming the file and the first tensors affected: the engine
for the released networks (`Engine.weights_warnings`, said at load by `inknhue colorize`,
by chapters once a run, and with every result of the engine and the server), and
`networks.keras.load` for converted ones (`model.warnings`: said by `inspect`, and by the
Style2Paints provider's `weights_warnings` with every result).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

_NAMED = 3  # tensors named in the warning


def nonfinite_tensors(tensors: Mapping[str, torch.Tensor] | nn.Module) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity, in order."""
    items: Iterable = tensors.state_dict().items() if isinstance(tensors, nn.Module) else tensors.items()
    return [name for name, tensor in items
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.device.type != "meta"
            and tensor.numel() and not bool(torch.isfinite(tensor).all())]


def nonfinite_warning(what: str, names: list[str], total: int, remedy: str) -> str:
    """One line: in `what` (the file), these tensors hold NaN or infinite values; results will be wrong."""
    shown = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")
    return (f"{what}: {len(names)} of its {total} tensors hold NaN or infinite values ({shown}): the results "
            f"will be wrong; {remedy}")
