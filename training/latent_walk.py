"""Latent walks for videos: which seed is which keyframe of which grid cell, and a looping interpolation
between keyframes. Pure numpy/scipy, no networks and no video encoding (gen_video.py does those).

The layout follows StyleGAN3's gen_video.py, so the same --seeds/--grid/--num-keyframes/--shuffle-seed
give the same seed in the same cell and keyframe: the grid_w * grid_h * num_keyframes slots are filled
with the seeds in order, repeating them when there are too few, optionally shuffled with
np.random.RandomState(shuffle_seed).shuffle, and then read as [grid_h][grid_w][num_keyframes], so
consecutive seeds are the keyframes of one cell and the cells run row by row.
"""

import re

import numpy as np
import scipy.interpolate

#----------------------------------------------------------------------------

KINDS = ('cubic', 'linear')

def parse_grid(text):
    """'4x2' or '4,2' -> (grid_w, grid_h) = (4, 2): width (columns) first, as StyleGAN3's --grid."""
    m = re.fullmatch(r'\s*(\d+)\s*[x,]\s*(\d+)\s*', str(text))
    if m is None:
        raise ValueError(f'cannot parse "{text}": expected WIDTHxHEIGHT in cells, e.g. 2x2 or 4x3')
    grid_w, grid_h = int(m.group(1)), int(m.group(2))
    if grid_w < 1 or grid_h < 1:
        raise ValueError(f'"{text}": the grid needs at least one column and one row')
    return grid_w, grid_h

#----------------------------------------------------------------------------

def keyframe_seeds(seeds, grid_w, grid_h, num_keyframes=None, shuffle_seed=None):
    """The seed of every keyframe of every cell: int64 [grid_h, grid_w, num_keyframes].

    Without num_keyframes each cell takes len(seeds) / cells consecutive seeds, so the count must divide
    evenly; with it, the seeds are used in order and repeated as often as needed.
    """
    seeds = [int(s) for s in seeds]
    cells = grid_w * grid_h
    if len(seeds) == 0:
        raise ValueError('no seeds given')
    if num_keyframes is None:
        if len(seeds) % cells != 0:
            raise ValueError(f'{len(seeds)} seeds do not fill a {grid_w}x{grid_h} grid evenly: give a multiple of {cells} '
                f'seeds (each cell walks through seeds/{cells} keyframes), or set --num-keyframes')
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1:
        raise ValueError(f'num_keyframes must be at least 1, got {num_keyframes}')
    slots = np.array([seeds[i % len(seeds)] for i in range(cells * num_keyframes)], dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(slots)
    return slots.reshape(grid_h, grid_w, num_keyframes)

#----------------------------------------------------------------------------

def frame_times(num_keyframes, w_frames):
    """Time of every frame in keyframes: frame f is at f / w_frames, so keyframe k is frame k * w_frames and
    the video has num_keyframes * w_frames frames; the next frame would be keyframe 0 again."""
    return np.arange(num_keyframes * w_frames, dtype=np.float64) / w_frames

def looping_interpolator(keyframes, kind='cubic'):
    """A function of time t (in keyframes, any real) through keyframes [num_keyframes, ...] that passes
    keyframe k at t = k and comes back to keyframe 0 at t = num_keyframes, smoothly for 'cubic'.

    'cubic' is a periodic cubic spline (continuous slope and curvature across the loop); StyleGAN3 gets
    nearly the same curve by fitting an ordinary cubic spline through five copies of the keyframes.
    'linear' goes straight from each keyframe to the next at constant speed.
    """
    if kind not in KINDS:
        raise ValueError(f'unknown interpolation kind "{kind}"; expected one of {", ".join(KINDS)}')
    keyframes = np.asarray(keyframes, dtype=np.float64)
    num = keyframes.shape[0]
    knots = np.arange(num + 1, dtype=np.float64)
    closed = np.concatenate([keyframes, keyframes[:1]], axis=0)  # Keyframe 0 again at t = num closes the loop.
    if kind == 'cubic':
        spline = scipy.interpolate.CubicSpline(knots, closed, axis=0, bc_type='periodic')
    else:
        spline = scipy.interpolate.make_interp_spline(knots, closed, k=1, axis=0)
    return lambda t: spline(np.mod(t, num))

#----------------------------------------------------------------------------
