"""Project a target image into the W space of a StyleGAN2 generator.

    python projector.py --network=runs/.../network-snapshot-000300.pkl --target=face.png --outdir=out
    python generate.py --network=... --projected-w=out/projected_w.npz --outdir=out

Minimises the LPIPS distance (NVIDIA's VGG16 detector, `vgg16.pt`) between G(w) and the target,
with noise regularisation, on StyleGAN2-ADA's projector schedule: w starts at the mean of 10,000
mapped latents, Adam (lr 0.1, betas 0.9/0.999) with a 5 % ramp-up and a cosine ramp-down over the
last 25 %, Gaussian noise on w of 0.05 x the std of W fading out over the first 75 % of the steps,
noise regularisation weight 1e5 over every octave of the noise maps. Writes target.png, proj.png,
projected_w.npz (w of the last step, [1, num_ws, w_dim]) and, with --save-video, proj.mp4.
"""

import copy
import os

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from generate import save_png, to_pil, to_uint8
from metrics import metric_utils
from training.snapshot import load_network_pkl

#----------------------------------------------------------------------------

def _features(vgg16, images):
    """LPIPS embedding of images in [0, 255], at most 256x256 (area downsampling), as the projector compares them."""
    if images.shape[2] > 256:
        images = F.interpolate(images, size=(256, 256), mode='area')
    return vgg16(images, resize_images=False, return_lpips=True)

def noise_regularisation(noise_bufs):
    """Sum over noise maps and octaves of the squared mean autocorrelation at a one-pixel shift in x and y:
    pushes the noise inputs to stay white, so that they cannot carry the image."""
    reg = 0.0
    for noise in noise_bufs.values():
        noise = noise[None, None]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg

def learning_rate(t, initial=0.1, rampdown=0.25, rampup=0.05):
    """The step's learning rate at progress t in [0, 1): linear ramp-up, cosine ramp-down."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return initial * ramp * min(1.0, t / rampup)

def project(G, target, vgg16, num_steps=1000, w_avg_samples=10000, initial_learning_rate=0.1, initial_noise_factor=0.05,
        noise_ramp_length=0.75, regularize_noise_weight=1e5, seed=0, device='cpu', log=print):
    """target: [C, H, W] uint8 tensor at G's resolution. Returns w of every step, [num_steps, w_dim]."""
    if tuple(target.shape) != (G.img_channels, G.img_resolution, G.img_resolution):
        raise ValueError(f'target is {tuple(target.shape)}, but G makes {G.img_channels}x{G.img_resolution}x{G.img_resolution} images')
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)

    # Mean and spread of W, from mapped random latents.
    z = torch.from_numpy(np.random.RandomState(seed).randn(w_avg_samples, G.z_dim)).to(device, torch.float32)
    w = G.mapping(z, torch.zeros([w_avg_samples, G.c_dim], device=device))[:, :1]
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = ((w - w_avg).square().sum() / w_avg_samples) ** 0.5

    noise_bufs = {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith('noise_const')}
    target_images = target[None].to(device, torch.float32)
    if target_images.shape[1] == 1:
        target_images = target_images.repeat(1, 3, 1, 1)
    target_features = _features(vgg16, target_images)

    w_opt = w_avg.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt] + list(noise_bufs.values()), betas=(0.9, 0.999), lr=initial_learning_rate)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for buf in noise_bufs.values():
            buf[:] = torch.randn(buf.shape, generator=gen, device=device)
            buf.requires_grad_(True)

    history = torch.zeros([num_steps, G.w_dim], device=device)
    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(t, initial_learning_rate)
        ws = (w_opt + torch.randn(w_opt.shape, generator=gen, device=device) * w_noise_scale).repeat([1, G.num_ws, 1])
        images = (G.synthesis(ws, noise_mode='const') + 1) * (255 / 2)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        dist = (target_features - _features(vgg16, images)).square().sum()
        loss = dist + noise_regularisation(noise_bufs) * regularize_noise_weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log is not None and (step % 100 == 0 or step == num_steps - 1):
            log(f'step {step + 1:>4d}/{num_steps}: dist {dist.item():<8.4f} loss {loss.item():<8.4f}')
        history[step] = w_opt.detach()[0, 0]
        with torch.no_grad():  # Keep the noise maps at zero mean and unit variance.
            for buf in noise_bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
    return history

#----------------------------------------------------------------------------

def _load_target(path, G):
    try:
        image = PIL.Image.open(path).convert('L' if G.img_channels == 1 else 'RGB')
    except OSError as err:
        raise click.ClickException(f'--target: cannot read {path}: {err}')
    w, h = image.size
    s = min(w, h)  # Centre crop to a square, then resize to G's resolution.
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    image = image.resize((G.img_resolution, G.img_resolution), PIL.Image.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.transpose(2, 0, 1).copy())

@click.command()
@click.option('--network', 'network_pkl', help='Network pickle or weights file', required=True)
@click.option('--target', 'target_fname', help='Target image file to project to', required=True, metavar='FILE')
@click.option('--num-steps', help='Optimisation steps', type=click.IntRange(min=1), default=1000, show_default=True)
@click.option('--seed', help='Random seed', type=int, default=303, show_default=True)
@click.option('--save-video', help='Save proj.mp4 of the optimisation progress (needs imageio-ffmpeg)', type=bool, default=False, show_default=True, metavar='BOOL')
@click.option('--detector-dir', help='Folder holding vgg16.pt (offline use)', metavar='DIR')
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--outdir', help='Where to save the output images', required=True, metavar='DIR')
def main(network_pkl, target_fname, num_steps, seed, save_video, detector_dir, device, outdir):
    """Project an image into W of a StyleGAN2 generator (LPIPS distance, noise regularisation)."""
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device)
    try:
        G = load_network_pkl(network_pkl)['G_ema']
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))
    if not (hasattr(G, 'mapping') and hasattr(G, 'synthesis')) or G.c_dim != 0:
        raise click.ClickException('projection needs an unconditional StyleGAN2 generator (mapping and synthesis networks)')
    if save_video:
        try:
            import imageio  # Checked before the long optimisation; used for the video below.
        except ImportError:
            raise click.ClickException('--save-video needs the imageio and imageio-ffmpeg packages: pip install imageio imageio-ffmpeg')
    try:
        vgg16, _md5 = metric_utils.get_feature_detector(metric_utils.VGG16_URL, device=device, detector_dir=detector_dir)
    except metric_utils.DetectorUnavailableError as err:
        raise click.ClickException(str(err))
    target = _load_target(target_fname, G)
    steps = project(G, target, vgg16, num_steps=num_steps, seed=seed, device=device)

    os.makedirs(outdir, exist_ok=True)
    save_png(to_pil(target.permute(1, 2, 0).numpy()), os.path.join(outdir, 'target.png'))
    G = G.to(device)
    with torch.no_grad():
        ws = steps[-1][None, None].repeat(1, G.num_ws, 1)
        save_png(to_pil(to_uint8(G.synthesis(ws, noise_mode='const'))[0]), os.path.join(outdir, 'proj.png'))
        if save_video:
            target_rgb = np.asarray(to_pil(target.permute(1, 2, 0).numpy()).convert('RGB'))  # Left half of every frame.
            with imageio.get_writer(os.path.join(outdir, 'proj.mp4'), mode='I', fps=10, codec='libx264', bitrate='16M') as video:
                for w in steps[::max(num_steps // 100, 1)]:
                    frame = np.asarray(to_pil(to_uint8(G.synthesis(w[None, None].repeat(1, G.num_ws, 1), noise_mode='const'))[0]).convert('RGB'))
                    video.append_data(np.concatenate([target_rgb, frame], axis=1))
    np.savez(os.path.join(outdir, 'projected_w.npz'), w=ws.cpu().numpy())
    print(f'Wrote {outdir}/proj.png and {outdir}/projected_w.npz')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
