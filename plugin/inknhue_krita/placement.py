"""Where a new result layer goes in the layer stack, and what could hide it: decided without
Krita from what each top-level layer is (document.py reads the layers and moves them).

The artist's layers keep their order, always. A coloured page goes above everything but the
hint layer (or above the page's own layer when one layer is the page); colour under the ink
goes right above the topmost opaque layer (the paper, a scanned page, or an opaque earlier
result, which it would otherwise land beneath, unseen), so beneath any line art above it. The
hint layer (ours) moves only when the new layer would cover it, to right above it.
"""

from __future__ import annotations

from dataclasses import dataclass

HINTS, RESULT = "hints", "result"


@dataclass(frozen=True)
class Layer:
    """A top-level layer as placement sees it, bottom to top."""

    id: str
    name: str = ""
    ours: str = ""              #: "" (the artist's), HINTS or RESULT
    visible: bool = True
    opaque: bool = False        #: covers the whole work area
    blending: str = "normal"


def under_ink(layers: list[Layer]) -> int:
    """The index the colour-under-ink layer goes right above: the topmost visible opaque layer
    that is not the hints (the bottom layer when none is opaque)."""
    return max((i for i, layer in enumerate(layers) if layer.visible and layer.opaque and layer.ours != HINTS),
               default=0)


def coloured_page(layers: list[Layer], page: int | None = None) -> int:
    """The index a coloured page goes right above: the topmost layer but the hints; when the
    page is one layer (`page`, its index), above it, unless a visible opaque layer above it
    would hide the result (then above the topmost such)."""
    others = [i for i, layer in enumerate(layers) if layer.ours != HINTS]
    if not others:
        return len(layers) - 1
    if page is None:
        return others[-1]
    covering = [i for i in others if i > page and layers[i].visible and layers[i].opaque]
    return covering[-1] if covering else page


def order(layers: list[Layer], new: Layer, above: int) -> list[Layer]:
    """The stack with `new` right above index `above` (-1: at the bottom), and the hint layer
    moved right above `new` when it would be beneath it; every other layer where it was."""
    stack = layers[:above + 1] + [new] + layers[above + 1:]
    at = stack.index(new)
    hints = next((i for i, layer in enumerate(stack) if layer.ours == HINTS), None)
    if hints is not None and hints < at:
        moved = stack.pop(hints)
        stack.insert(stack.index(new) + 1, moved)
    return stack


def may_hide(stack: list[Layer], new: Layer) -> list[Layer]:
    """The visible, normally blended layers above `new` but the hints: what could hide it
    (document.py measures how much of it each one does)."""
    above = stack[stack.index(new) + 1:]
    return [layer for layer in above if layer.visible and layer.ours != HINTS and layer.blending == "normal"]


HIDES = 0.25  #: a layer opaque over more than this share of the new colours hides them


def hidden_text(name: str, share: float) -> str:
    return (f"\u201c{name}\u201d above hides {100 * share:.0f}% of the new colours: hide that layer "
            f"to see them.")


def moves(current: list[str], wanted: list[str]) -> list[list[str]] | None:
    """How Krita 5's `Node.setChildNodes` reaches `wanted` (ids, bottom to top) from `current`
    without an undo step: each call takes the bottom layer out and adds the given ones on top,
    so call i (current[i] at the bottom) re-adds a run of `wanted` that holds only layers
    already taken out, and new ones. None when `wanted` drops a layer of `current`."""
    if set(current) - set(wanted):
        return None
    index = {layer: i for i, layer in enumerate(current)}
    calls: list[list[str]] = [[] for _ in current]
    step = 0
    for layer in wanted:
        if layer in index:
            step = max(step, index[layer])
        if not calls:  # nothing to take out: one call adds all
            calls.append([])
        calls[min(step, len(calls) - 1)].append(layer)
    return calls
