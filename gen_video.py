"""Render a looping latent-walk video (mp4) from a network snapshot.

Examples:
    python gen_video.py --network=runs/00000-obama/network-snapshot-000300.pkl --seeds=0-31 --grid=4x2 --output=walk.mp4
    python gen_video.py --network=cifar10.pkl --seeds=0-8 --grid=3x3 --num-keyframes=6 --class=3 --trunc=0.7 --output=cat.mp4
    python gen_video.py --network=net.pkl --seeds=0-3 --w-frames=30 --kind=linear --device=cpu --output=quick.mp4

Options that follow StyleGAN3's gen_video.py (NVlabs/stylegan3), with its defaults: --network, --seeds,
--shuffle-seed (none), --grid (1x1, WIDTHxHEIGHT), --num-keyframes (none: seeds / grid cells, which must
divide evenly; given: the seeds are repeated as needed), --w-frames (120), --trunc (1), --output; and
the video: num_keyframes * w_frames frames at 60 fps, H.264 (libx264) at 12 Mbit/s, walking in W with
noise_mode='const', keyframes laid out as training/latent_walk.py describes. StyleGAN3 always
interpolates with a cubic spline; here --kind (default cubic) also offers linear. Added for this
codebase: --trunc-cutoff (truncate only the first N ws, as G's truncation_cutoff), --class (conditional
networks), --device, and Z walks for BigGAN, which has no W space. docs/video.md has the details.
"""

import os

import click
import imageio.v2 as imageio
import numpy as np
import torch
from tqdm import tqdm

from generate import load_generator, make_grid, parse_seeds, resolve_device, seed_latents, to_uint8
from training import latent_walk

#----------------------------------------------------------------------------
# The encoder: StyleGAN3's settings. yuv420p (what players expect) needs even sizes; macro_block_size=1
# stops imageio from rescaling frames to multiples of 16, and video_frame() pads odd sizes instead.

VIDEO_FPS = 60
VIDEO_CODEC = 'libx264'
VIDEO_BITRATE = '12M'
VIDEO_PIXELFORMAT = 'yuv420p'

def video_frame(grid):
    """[H, W, C] uint8 -> RGB [H', W', 3] with H', W' even: a black row/column is added to odd sizes."""
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)  # Grayscale networks: H.264 gets RGB like everything else.
    pad_h, pad_w = grid.shape[0] % 2, grid.shape[1] % 2
    if pad_h or pad_w:
        grid = np.pad(grid, [(0, pad_h), (0, pad_w), (0, 0)])
    return grid

def write_video(frames, path, num_frames):
    """Encode an iterable of [H, W, C] uint8 frames into an mp4 at `path`, with a progress bar.

    The video is written under a temporary name in the same folder and renamed only when complete, so
    an error or Ctrl-C leaves no half-written mp4 (and no temporary file) behind.
    """
    # ffmpeg creates the file by name (with the usual permissions); the pid keeps parallel runs apart.
    tmp_path = os.path.join(os.path.dirname(os.path.abspath(path)), f'.{os.path.basename(path)}.{os.getpid()}.tmp.mp4')
    try:
        writer = imageio.get_writer(tmp_path, format='FFMPEG', mode='I', fps=VIDEO_FPS, codec=VIDEO_CODEC,
            bitrate=VIDEO_BITRATE, pixelformat=VIDEO_PIXELFORMAT, macro_block_size=1, ffmpeg_log_level='error')
        try:
            for frame in tqdm(frames, total=num_frames, unit='frame', desc='Rendering'):
                writer.append_data(video_frame(frame))
        finally:
            writer.close()
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise

#----------------------------------------------------------------------------
# The walk: keyframe latents per cell, interpolated, rendered frame by frame.

def has_w_space(G):
    """StyleGAN2 (mapping + synthesis) walks in W; BigGAN, G(z, c) only, walks in Z."""
    return hasattr(G, 'mapping') and hasattr(G, 'synthesis')

def keyframe_latents(G, seeds, label, truncation_psi=1, truncation_cutoff=None):
    """Latents of the keyframes, float64 [num_keyframes, cells, ...]: ws [.., num_ws, w_dim] for StyleGAN2
    (mapped with truncation, as generate.py), z [.., z_dim] for BigGAN. seeds: [grid_h, grid_w, num_keyframes]."""
    flat = seeds.reshape(-1, seeds.shape[-1]).T  # [num_keyframes, cells], cells row by row.
    z = seed_latents(flat.reshape(-1), G.z_dim)  # As generate.py: z per seed.
    if not has_w_space(G):
        return z.reshape(*flat.shape, G.z_dim)
    device = label.device
    z = torch.from_numpy(z).to(device=device, dtype=torch.float32)
    with torch.no_grad():
        ws = G.mapping(z, label.expand(z.shape[0], -1), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    return ws.cpu().numpy().astype(np.float64).reshape(*flat.shape, *ws.shape[1:])

@torch.no_grad()
def render_cells(G, latents, label):
    """Images of all cells at one time, uint8 [cells, H, W, C], from their latents [cells, ...]."""
    latents = torch.from_numpy(latents).to(device=label.device, dtype=torch.float32)
    if has_w_space(G):
        return to_uint8(G.synthesis(latents, noise_mode='const'))  # Constant noise: no flicker between frames.
    # BigGAN's batch norm uses the batch's statistics: one cell at a time gives each cell generate.py's image.
    return np.concatenate([to_uint8(G(z[None], label, noise_mode='const')) for z in latents])

def walk_frames(G, keyframes, label, grid_w, w_frames, kind='cubic'):
    """Yield the video's frames, [grid_h * H, grid_w * W, C] uint8, num_keyframes * w_frames of them, from the
    keyframe latents [num_keyframes, cells, ...] of keyframe_latents()."""
    interpolate = latent_walk.looping_interpolator(keyframes, kind=kind)
    for t in latent_walk.frame_times(keyframes.shape[0], w_frames):
        yield make_grid(render_cells(G, interpolate(t), label), columns=grid_w)

#----------------------------------------------------------------------------
# Command-line checks: each bad input becomes one line and a non-zero exit.

def _label(G, class_idx, device):
    """One-hot [1, c_dim] for --class; conditional networks need it, unconditional ones refuse it."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise click.UsageError(f'--class={class_idx}: the network is unconditional; leave --class out')
        return torch.zeros([1, 0], device=device)
    if class_idx is None:
        raise click.UsageError(f'the network is conditional ({G.c_dim} classes): pass --class')
    if not 0 <= class_idx < G.c_dim:
        raise click.UsageError(f'--class={class_idx} is out of range: the network has {G.c_dim} classes (0-{G.c_dim - 1})')
    label = torch.zeros([1, G.c_dim], device=device)
    label[:, class_idx] = 1
    return label

def _truncation(G, truncation_psi, truncation_cutoff):
    """BigGAN ignores truncation, as in generate.py: say so instead of silently doing nothing."""
    if has_w_space(G):
        return truncation_psi, truncation_cutoff
    if truncation_psi != 1 or truncation_cutoff is not None:
        print('warn: --trunc and --trunc-cutoff have no effect on this network (no W space; BigGAN ignores truncation, '
            'as in generate.py)')
    return 1, None

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', help='Network pickle (path or URL)', required=True)
@click.option('--seeds', help='Seeds of the keyframes, e.g. 0-31; consecutive seeds are the keyframes of one cell',
    required=True)
@click.option('--shuffle-seed', help='Shuffle the seeds over cells and keyframes with this seed', type=int, default=None)
@click.option('--grid', help='Grid WIDTHxHEIGHT in cells, e.g. 4x2', default='1x1', show_default=True)
@click.option('--num-keyframes', help='Keyframes per cell [default: seeds / cells]; given, seeds repeat as needed',
    type=click.IntRange(min=1), default=None)
@click.option('--w-frames', help='Frames from one keyframe to the next', type=click.IntRange(min=1), default=120,
    show_default=True)
@click.option('--kind', help='Interpolation between keyframes, looping back to the first',
    type=click.Choice(latent_walk.KINDS), default='cubic', show_default=True)
@click.option('--trunc', 'truncation_psi', help='Truncation psi, toward the mean w (StyleGAN2; no effect on BigGAN)',
    type=float, default=1, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', help='Truncate only the first N ws [default: all] (StyleGAN2)',
    type=click.IntRange(min=0), default=None)
@click.option('--class', 'class_idx', help='Class index (conditional networks: required)', type=int, default=None)
@click.option('--output', help='Output video', type=str, required=True, metavar='FILE.mp4')
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
def main(network_pkl, seeds, shuffle_seed, grid, num_keyframes, w_frames, kind, truncation_psi, truncation_cutoff,
        class_idx, output, device):
    """Render a looping latent walk: every grid cell moves through its keyframe seeds and back to the first.

    StyleGAN2 networks walk in W (z of each seed mapped with truncation, as generate.py); BigGAN has no W
    and walks in Z. The video has num_keyframes * w_frames frames at 60 fps (H.264, 12 Mbit/s).
    """
    seeds = parse_seeds(seeds)
    try:
        grid_w, grid_h = latent_walk.parse_grid(grid)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint='--grid')
    try:
        layout = latent_walk.keyframe_seeds(seeds, grid_w, grid_h, num_keyframes=num_keyframes, shuffle_seed=shuffle_seed)
    except ValueError as err:
        raise click.UsageError(str(err))
    if not output.lower().endswith('.mp4'):
        raise click.BadParameter(f'"{output}" does not end in .mp4', param_hint='--output')
    device = resolve_device(device)

    G = load_generator(network_pkl, device)
    label = _label(G, class_idx, device)
    truncation_psi, truncation_cutoff = _truncation(G, truncation_psi, truncation_cutoff)

    try:
        keyframes = keyframe_latents(G, layout, label, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    except ValueError as err:  # E.g. truncation on a mapping network that does not track w_avg.
        raise click.ClickException(str(err))

    num_frames = keyframes.shape[0] * w_frames
    print(f'{grid_w}x{grid_h} grid, {keyframes.shape[0]} keyframes per cell, {num_frames} frames, walking in '
        f'{"W" if has_w_space(G) else "Z"}')
    if os.path.dirname(output):
        os.makedirs(os.path.dirname(output), exist_ok=True)
    write_video(walk_frames(G, keyframes, label, grid_w, w_frames, kind=kind), output, num_frames)
    print(f'Wrote {output}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
