"""The regions a flatter would fill: the page cut along its walls (lineart.py), gaps closed.

A gap in a line is a narrow passage between two walls, so it is found by how far it is from
the ink (the distance transform D of the non-wall pixels), as a ball that cannot pass
through it (trapped-ball filling):

0. Straight walls (panel frames, window bars) are continued across gaps first: a gutter can
   be no wider than a gap in the frame beside it, and then no ball tells them apart.
1. Cores: where D exceeds half the largest gap closed (GAP_SHARE of the page's short side,
   1%), the connected parts of the page are regions that no gap joins. Narrower regions
   (a sleeve's cuff, an eye) have no core at that size: they are found at smaller radii, as
   parts of {D > r} that hold no core yet, down to a couple of pixels. Parts smaller than
   MIN_REGION (letter counters, specks between strands and lines) are no regions.
2. Growing: the cores are grown back level by level of D (a priority flood), so each one
   fills its own region up to the walls before it meets another in a gap, and a region
   split by no wall (hair strands, shading, tone) stays one. Where several cores reach one
   part of a level, each pixel takes the core nearest along that part (grow_within), not
   the nearest in a straight line: a narrow gutter beside a panel whose frame a dense tone
   broke up would take the panel's core across the frame's whole side (1.5% of a corpus
   page coloured so), where along the gutter it is the margin's.
3. Walls take the nearest region, so colour runs under the lines; solid dark areas
   (lineart.LineArt.solid) are regions of their own, parted where the grey steps (STEP):
   black hair on a dense tone, which a web scan averages to a grey as dark as ink.

`claims` then says which regions each stroke colours: a stroke colours the region that
holds most of it, and any other region it lies over in large part; a region claimed by
several strokes is shared between them by nearness. Unclaimed regions stay paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..page.lineart import LineArt

#: the largest gap closed, as a share of the page's short side (at any size): 1%, and a
#: margin for the gaps of 2-12 px that pages 1200 px tall have (12.7 px at 848 x 1200)
GAP_SHARE = 0.015
#: regions no wider than this (px at the analysis size, the deepest point's distance to a
#: wall) that come MIN_TEXTURE or more together, each touching the next, are the cells of
#: hatching or a coarse tone: one region
THIN = 4.5
SMALL = 0.00025  #: ... or smaller than this share of the page
MIN_TEXTURE = 4
#: cores are first found at this many times the gap radius: two large regions are told apart
#: even where damaged walls (faint lines, lines through tone) leave a wider opening
START = 2.0
#: a stroke's colour runs on from its region into an unhinted neighbour through a passage
#: wider than a gap and at least this share of the neighbour's depth (the background on the
#: far side of a figure); never into a region at the page's edge (margins, gutters)
PASS_ON = 0.3
#: walls straight over this many gaps' lengths are continued across gaps (bridge_straight)
STRAIGHT = 3.0
#: the flood's levels, px of wall distance apart (each a labelling pass)
FLOOD_STEP = 2
#: grey levels a pixel: where the grey steps this steeply inside a solid area (black hair on a
#: dark tone) it parts into solid areas of their own
STEP = 6
#: the smallest region, as a share of the page's area at the analysis size
MIN_REGION = 0.00002
#: a stroke colours a region holding this share of its pixels, besides its main one
SIDE_SHARE = 0.35
#: ... if it also covers this share of that region
SIDE_COVER = 0.25


def _components(mask: np.ndarray, connectivity: int = 4):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    return count, labels, stats


def nearest(labels: np.ndarray, targets: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
    """For each pixel in `targets`, the label of the nearest pixel of `seeds` (default: all
    labelled pixels), by straight-line distance."""
    seeds = labels > 0 if seeds is None else seeds & (labels > 0)
    if not seeds.any():
        return labels
    _, nearest_pixel = cv2.distanceTransformWithLabels((~seeds).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    lookup = np.zeros(nearest_pixel.max() + 1, labels.dtype)
    lookup[nearest_pixel[seeds]] = labels[seeds]
    out = labels.copy()
    out[targets] = lookup[nearest_pixel[targets]]
    return out


def flood_level(labels: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """One level of the flood: every component of `allowed` takes the labels inside it
    (nearest if several)."""
    count, components, _ = _components(allowed, 4)
    inside = (labels > 0) & allowed
    comp_in, label_in = components[inside], labels[inside]
    single = np.zeros(count, labels.dtype)
    single[comp_in] = label_in
    contested_component = np.zeros(count, bool)
    contested_component[comp_in[label_in != single[comp_in]]] = True
    single[contested_component] = 0
    single[0] = 0
    open_pixels = allowed & (labels == 0)
    fill = single[components]
    labels = np.where(open_pixels & (fill > 0), fill, labels)
    contested = open_pixels & contested_component[components]
    if contested.any():  # only the labels of the contested components compete, each reaching along the open pixels
        labels = grow_within(labels, contested, contested_component[components])
    return labels


def grow_within(labels: np.ndarray, targets: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Each pixel of `targets` takes the label of the `seeds` pixel nearest along the targets
    (a breadth-first flood that never crosses a pixel outside them: not across a wall, as the
    straight-line nearest would). OpenCV's watershed does the flood: on an image flat over
    seeds and targets, its queue is breadth-first; targets where two floods meet take a
    neighbour's label."""
    ys, xs = np.nonzero(targets)
    if not len(ys):
        return labels
    y0, y1 = max(0, ys.min() - 1), min(labels.shape[0], ys.max() + 2)
    x0, x1 = max(0, xs.min() - 1), min(labels.shape[1], xs.max() + 2)
    window = labels[y0:y1, x0:x1]
    inside = targets[y0:y1, x0:x1]
    seed = seeds[y0:y1, x0:x1] & (window > 0) & ~inside
    # a 1 px frame: the watershed makes its image's border a boundary
    markers = np.pad(np.where(seed, window, 0).astype(np.int32), 1)
    flat = np.pad(np.where(inside | seed, 0, 255).astype(np.uint8), 1, constant_values=255)
    cv2.watershed(cv2.merge([flat, flat, flat]), markers)
    grown = markers[1:-1, 1:-1]
    meet = inside & (grown <= 0)
    grown = np.where(inside & (grown > 0), grown, np.where(inside, 0, window)).astype(labels.dtype)
    for _ in range(3):  # the lines where floods met, a pixel wide: a neighbour's label
        if not meet.any():
            break
        near = cv2.dilate(np.where(inside | seed, grown, 0).astype(np.float32), np.ones((3, 3), np.uint8))
        grown = np.where(meet, near, grown).astype(labels.dtype)
        meet &= grown == 0
    if meet.any():
        grown = nearest(grown, meet, seeds=inside & ~meet)
    out = labels.copy()
    out[y0:y1, x0:x1] = np.where(inside, grown, window)
    return out


def bridge_straight(walls: np.ndarray, gap: float) -> np.ndarray:
    """Long straight walls (panel frames, window bars) continued across gaps up to `gap` px:
    a frame broken by a gap, beside a gutter no wider than that gap, is still a wall."""
    size = max(3, int(round(gap)))
    length = max(size + 2, int(round(STRAIGHT * gap)))
    out = walls.copy()
    u8 = walls.astype(np.uint8)
    for shape in ((1, length), (length, 1)):
        run = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones(shape, np.uint8))
        across = (1, size) if shape[0] == 1 else (size, 1)
        out |= cv2.morphologyEx(run, cv2.MORPH_CLOSE, np.ones(across, np.uint8)).astype(bool)
    return out


def segment(art: LineArt) -> Regions:
    """The page's regions at the analysis size; every pixel has one."""
    width, height = art.size
    walls = bridge_straight(art.walls, GAP_SHARE * min(width, height))
    # the page's edge is a wall too: a frame that stops short of it leaves a gap like any other
    open_area = np.pad(~walls, 1, constant_values=False).astype(np.uint8)
    distance = cv2.distanceTransform(open_area, cv2.DIST_L2, 5)[1:-1, 1:-1]
    radius = max(1.0, GAP_SHARE * min(width, height) / 2)
    min_area = max(6, MIN_REGION * width * height)
    labels = np.zeros((height, width), np.int32)
    next_id = 1
    r = radius * START
    while True:
        count, parts, stats = _components(distance > r, 4)
        if count > 1:
            held = np.zeros(count, bool)
            held[parts[labels > 0]] = True
            fresh = ~held & (stats[:, cv2.CC_STAT_AREA] >= min_area)
            fresh[0] = False
            ids = np.flatnonzero(fresh)
            if len(ids):
                new_id = np.zeros(count, np.int32)
                new_id[ids] = next_id + np.arange(len(ids), dtype=np.int32)
                next_id += len(ids)
                grow = (labels == 0) & fresh[parts]
                labels[grow] = new_id[parts[grow]]
        if r <= 1.0:
            break
        r = max(1.0, r * 0.7)
    # solid areas: their cores are regions of their own
    if art.solid.any():
        count, parts, stats = _components(art.solid & ~_steps(art.grey), 8)
        big = stats[:, cv2.CC_STAT_AREA] >= min_area
        big[0] = False
        ids = np.flatnonzero(big)
        new_id = np.zeros(count, np.int32)
        new_id[ids] = next_id + np.arange(len(ids), dtype=np.int32)
        next_id += len(ids)
        labels = np.where(big[parts], new_id[parts], labels)
    # grow every core back, level by level of D, up to the walls
    level = np.floor(distance).astype(np.int32)
    for current in range(int(np.ceil(radius)), -1, -FLOOD_STEP):
        labels = flood_level(labels, (level >= current) & ~walls)
    remaining = labels == 0
    if remaining.any():
        labels = nearest(labels, remaining)  # walls (and any pocket) take the nearest region
    return describe(merge_texture(labels, distance, art.solid), distance, radius)


def _steps(grey: np.ndarray) -> np.ndarray:
    """Where the grey steps (ink beside a dark tone): solid areas of different darkness part there."""
    g = grey.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    return gx * gx + gy * gy > STEP ** 2


def _groups(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected groups of a graph on 0..count-1 given by its edges: each node's smallest member."""
    group = np.arange(count)
    if not len(pairs):
        return group
    while True:
        low = np.minimum(group[pairs[:, 0]], group[pairs[:, 1]])
        before = group.copy()
        np.minimum.at(group, pairs[:, 0], low)
        np.minimum.at(group, pairs[:, 1], low)
        group = group[group]
        if np.array_equal(group, before):
            return group


def merge_texture(labels: np.ndarray, distance: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Cells of hatching or coarse tone (small or thin regions, MIN_TEXTURE or more side by
    side) are one region."""
    count = int(labels.max()) + 1
    depth = _depths(labels, distance, count)
    area = np.bincount(labels.ravel(), minlength=count)
    is_solid = np.zeros(count, bool)
    is_solid[labels[solid]] = True
    small = ((depth <= THIN) | (area <= SMALL * labels.size)) & ~is_solid
    small[0] = False
    border = adjacency(labels)
    groups = _groups(count, border[small[border[:, 0]] & small[border[:, 1]], :2])
    members = np.bincount(groups, minlength=count)
    texture = (members[groups] >= MIN_TEXTURE) & small
    groups = np.where(texture, groups, np.arange(count))
    return groups[labels].astype(np.int32)


def _depths(labels: np.ndarray, distance: np.ndarray, count: int) -> np.ndarray:
    depth = np.zeros(count, np.float32)
    np.maximum.at(depth, labels.ravel(), distance.ravel())
    return depth


@dataclass
class Regions:
    """The page's regions at the analysis size, and how they meet."""

    labels: np.ndarray      #: int32 H x W, 1...
    depth: np.ndarray       #: per region: its deepest point's distance to a wall (px)
    pairs: np.ndarray       #: k x 2: regions that touch
    opening: np.ndarray     #: per pair: half the width of the widest passage between them off the walls (0: walls only)
    on_edge: np.ndarray     #: per region: touches the page's edge
    radius: float           #: half the largest gap closed (px)


def describe(labels: np.ndarray, distance: np.ndarray, radius: float) -> Regions:
    count = int(labels.max()) + 1
    border = adjacency(labels)
    a, b = border[:, 0], border[:, 1]
    opening = np.zeros(len(border), np.float32)
    keys = a.astype(np.int64) << 32 | b.astype(np.int64)  # sorted (np.unique)
    for x, y, dx, dy in ((labels[:, 1:], labels[:, :-1], distance[:, 1:], distance[:, :-1]),
                         (labels[1:, :], labels[:-1, :], distance[1:, :], distance[:-1, :])):
        meet = (x != y) & (dx > 0) & (dy > 0)
        lo, hi = np.minimum(x[meet], y[meet]), np.maximum(x[meet], y[meet])
        where = np.searchsorted(keys, lo.astype(np.int64) << 32 | hi.astype(np.int64))
        np.maximum.at(opening, where, np.minimum(dx[meet], dy[meet]))
    on_edge = np.zeros(count, bool)
    on_edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    return Regions(labels, _depths(labels, distance, count), border[:, :2], opening, on_edge, radius)


def pass_on(found: Regions, owner: np.ndarray) -> np.ndarray:
    """owner per region (0 none, -1 shared): unowned regions take the owner of a neighbour
    they open on to widely (PASS_ON), round by round."""
    owner = owner.copy()
    a, b = found.pairs[:, 0], found.pairs[:, 1]
    wide = found.opening > found.radius
    for _ in range(8):
        changed = False
        for x, y in ((a, b), (b, a)):  # x takes from y
            take = wide & (owner[x] == 0) & (owner[y] > 0) & ~found.on_edge[x] \
                & (found.opening >= PASS_ON * found.depth[x])
            if take.any():
                owner[x[take]] = owner[y[take]]
                changed = True
        if not changed:
            break
    return owner


def claims(labels: np.ndarray, strokes: np.ndarray, count: int, ignore: np.ndarray | None = None) -> np.ndarray:
    """claimed[stroke, region]: which regions each stroke (label image at the analysis size,
    0 none, 1..count-1) colours. `ignore`: pixels that say nothing (thin lines under a stroke)."""
    regions = int(labels.max()) + 1
    claimed = np.zeros((count, regions), bool)
    painted = strokes > 0
    if ignore is not None:
        painted &= ~ignore
    if not painted.any():
        return claimed
    pairs = strokes[painted].astype(np.int64) * regions + labels[painted]
    table = np.bincount(pairs, minlength=count * regions).reshape(count, regions)
    total = table.sum(axis=1, keepdims=True)
    area = np.bincount(labels.ravel(), minlength=regions)
    main = table.argmax(axis=1)
    claimed[np.arange(count), main] = table[np.arange(count), main] > 0
    side = (table >= SIDE_SHARE * np.maximum(total, 1)) & (table >= SIDE_COVER * np.maximum(area[None, :], 1))
    claimed |= side & (table > 0)
    claimed[0] = False
    return claimed


def adjacency(labels: np.ndarray) -> np.ndarray:
    """Pairs of regions that touch, with the length of their shared border (k x 3: a, b, length)."""
    pairs = []
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:, :], labels[:-1, :])):
        differ = a != b
        lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        pairs.append(lo.astype(np.int64) << 32 | hi.astype(np.int64))
    if not pairs or not sum(len(p) for p in pairs):
        return np.zeros((0, 3), np.int64)
    keys, counts = np.unique(np.concatenate(pairs), return_counts=True)
    return np.stack([keys >> 32, keys & 0xFFFFFFFF, counts], axis=1)
