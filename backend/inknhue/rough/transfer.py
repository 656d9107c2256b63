"""Global colour transfer from a reference image, in CIELAB.

The a*/b* statistics (mean, standard deviation) of the colours are matched to the
reference's (Reinhard et al.'s transfer without touching lightness). Near-neutral pixels
(paper, ink, grey tones) are left neutral: the transfer fades in with chroma.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..page.color import lab_to_rgb, rgb_to_lab

#: chroma (C*ab) below which a pixel is neutral, and over which the transfer is full
NEUTRAL, FULL = 4.0, 16.0


def _chromatic_stats(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ab = lab[..., 1:].reshape(-1, 2)
    chroma = np.hypot(ab[:, 0], ab[:, 1])
    coloured = ab[chroma > NEUTRAL]
    if len(coloured) < 16:
        coloured = ab
    return coloured.mean(axis=0), coloured.std(axis=0) + 1e-3


def transfer_colours(rgb: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The colours of `rgb` moved towards the reference's palette; lightness unchanged."""
    small = cv2.resize(reference, (256, max(1, round(256 * reference.shape[0] / reference.shape[1]))),
                       interpolation=cv2.INTER_AREA)
    ref_mean, ref_std = _chromatic_stats(rgb_to_lab(small))
    lab = rgb_to_lab(rgb)
    mean, std = _chromatic_stats(lab)
    moved = (lab[..., 1:] - mean) / std * ref_std + ref_mean
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    weight = np.clip((chroma - NEUTRAL) / (FULL - NEUTRAL), 0.0, 1.0)[..., None]
    lab[..., 1:] += weight * (moved - lab[..., 1:])
    return lab_to_rgb(lab)
