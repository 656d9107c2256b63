"""Draws the sample page and its rough colours (run once; the PNGs are committed).

resources/samples/hints.png (hint strokes for the page) was painted separately.

A synthetic page, so the repository carries no one's artwork: two panels, a face with
hair, a speech bubble and a screentone sky; the rough colours are deliberately sloppy
flats that bleed over the lines, as Style2Paints' are.
"""

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent
W, H = 1000, 1414  # A-series proportions


def draw():
    ink = np.full((H, W), 255, np.uint8)
    rough = np.full((H, W, 3), 245, np.uint8)
    # panels
    cv2.rectangle(ink, (40, 40), (960, 640), 0, 6)
    cv2.rectangle(ink, (40, 680), (960, 1374), 0, 6)
    # screentone sky in the top panel
    yy, xx = np.mgrid[0:H, 0:W]
    dots = ((yy % 9) - 4) ** 2 + ((xx % 9) - 4) ** 2 <= 5
    sky = (yy > 43) & (yy < 330) & (xx > 43) & (xx < 957)
    ink[sky & dots] = 90
    cv2.rectangle(rough, (60, 50), (950, 340), (120, 170, 235), -1)
    # ground line and a house
    cv2.line(ink, (43, 420), (957, 420), 0, 4)
    cv2.rectangle(ink, (600, 250), (820, 420), 0, 4)
    cv2.fillPoly(rough, [np.array([[590, 240], [830, 240], [830, 430], [590, 430]])], (200, 90, 70))
    cv2.rectangle(rough, (40, 430), (960, 640), (110, 170, 90), -1)
    # face in the bottom panel
    cv2.ellipse(ink, (500, 1050), (220, 260), 0, 0, 360, 0, 5)
    cv2.ellipse(rough, (505, 1060), (240, 270), 0, 0, 360, (250, 215, 190), -1)
    for x in (420, 580):
        cv2.ellipse(ink, (x, 1020), (35, 45), 0, 0, 360, 0, 4)
        cv2.circle(ink, (x, 1030), 18, 0, -1)
        cv2.circle(rough, (x + 6, 1025), 40, (80, 140, 60), -1)
    cv2.ellipse(ink, (500, 1180), (60, 25), 0, 10, 170, 0, 4)
    # hair: strokes over the top of the head
    for i in range(14):
        x0 = 290 + i * 32
        cv2.line(ink, (x0, 800), (x0 + 40, 960 + (i % 3) * 20), 0, 3)
    cv2.ellipse(ink, (500, 900), (240, 140), 0, 180, 360, 0, 5)
    cv2.ellipse(rough, (495, 895), (260, 160), 0, 180, 360, (70, 50, 40), -1)
    # speech bubble
    cv2.ellipse(ink, (810, 780), (120, 70), 0, 0, 360, 0, 4)
    cv2.line(ink, (740, 835), (690, 900), 0, 4)
    rough = cv2.GaussianBlur(rough, (0, 0), 6)
    return ink, rough


if __name__ == "__main__":
    ink, rough = draw()
    cv2.imwrite(str(HERE / "page.png"), ink)
    cv2.imwrite(str(HERE / "rough.png"), cv2.cvtColor(rough, cv2.COLOR_RGB2BGR))
