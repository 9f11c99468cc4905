"""Speed of the FID pipeline: detector images/s and the wall time of an fid10k run. Prints ONE JSON line.

    python bench/metrics_speed.py --detector-dir=DIR     # NVIDIA's inception-2015-12-05.pt in DIR
    python bench/metrics_speed.py                        # a same-shaped stand-in (299x299 input, 2048-d output)

Reference images are a synthetic zip (never cached), generated images come from a noise generator, so
the numbers measure the metric machinery and the detector, not a network.
"""

import io
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile

import click
import numpy as np
import PIL.Image
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from metrics import frechet_inception_distance, metric_utils  # noqa: E402

#----------------------------------------------------------------------------


class StandInInception(torch.nn.Module):
    """Inception's interface and tensor shapes (uint8 in, resize to 299, 2048-d out) at a fraction of its cost."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(8),
            torch.nn.Conv2d(64, 2048, 1))

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(img.to(torch.float32) / 127.5 - 1, size=[299, 299], mode='bilinear')
        features = self.convs(x).mean(dim=[2, 3])
        return features if return_features else torch.softmax(features[:, :1008], dim=1)


class NoiseGenerator(torch.nn.Module):
    def __init__(self, resolution):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 16, 0, resolution, 3

    def forward(self, z, c):
        return torch.tanh(z[:, :3, None, None] + 0.3 * torch.randn([z.shape[0], 3, self.img_resolution, self.img_resolution], device=z.device))


def write_reference_zip(path, num_images, resolution):
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(path, 'w') as zf:
        for i in range(num_images):
            buf = io.BytesIO()
            PIL.Image.fromarray(rng.randint(0, 256, [resolution, resolution, 3], dtype=np.uint8)).save(buf, format='png')
            zf.writestr(f'{i:06d}.png', buf.getvalue())


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@click.command()
@click.option('--detector-dir', help='Folder with inception-2015-12-05.pt [default: $KD_DETECTOR_DIR, else a stand-in]', metavar='DIR')
@click.option('--device', help='cpu or cuda [default: cuda when available]', type=click.Choice(['cpu', 'cuda']))
@click.option('--resolution', help='Image resolution', type=click.IntRange(min=8), default=256, show_default=True)
@click.option('--batch', help='Detector batch size', type=click.IntRange(min=1), default=64, show_default=True)
@click.option('--num-gen', help='Generated images of the FID run', type=click.IntRange(min=2), default=10000, show_default=True)
@click.option('--num-real', help='Reference images of the FID run', type=click.IntRange(min=2), default=1000, show_default=True)
def main(detector_dir, device, resolution, batch, num_gen, num_real):
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    detector_dir = detector_dir or os.environ.get(metric_utils.DETECTOR_DIR_ENV)
    file_name = metric_utils.detector_file_name(metric_utils.INCEPTION_URL)
    real_detector = bool(detector_dir) and os.path.isfile(os.path.join(detector_dir, file_name))

    with tempfile.TemporaryDirectory() as tmp:
        if not real_detector:
            detector_dir = os.path.join(tmp, 'detectors')
            os.makedirs(detector_dir)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', FutureWarning)  # torch.jit's deprecation notice.
                torch.jit.save(torch.jit.script(StandInInception().eval()), os.path.join(detector_dir, file_name))
        detector, _md5 = metric_utils.get_feature_detector(metric_utils.INCEPTION_URL, device=device, detector_dir=detector_dir)

        # Detector throughput on random uint8 images (after two warm-up batches).
        images = torch.randint(0, 256, [batch, 3, resolution, resolution], dtype=torch.uint8, device=device)
        with torch.no_grad():
            for _ in range(2):
                detector(images, return_features=True)
            sync(device)
            num_batches = max(3, 512 // batch) if device.type == 'cuda' else 3
            start = time.perf_counter()
            for _ in range(num_batches):
                detector(images, return_features=True)
            sync(device)
        images_per_s = num_batches * batch / (time.perf_counter() - start)

        data = os.path.join(tmp, 'reference.zip')
        write_reference_zip(data, num_real, resolution)
        opts = metric_utils.MetricOptions(G=NoiseGenerator(resolution), dataset_kwargs=dict(
            class_name='training.dataset.ImageFolderDataset', path=data), device=device, cache=False, detector_dir=detector_dir)
        start = time.perf_counter()
        fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=num_gen)
        sync(device)
        fid_time = time.perf_counter() - start

    print(json.dumps(dict(bench='metrics_speed', device=str(device), device_name=(torch.cuda.get_device_name(device)
        if device.type == 'cuda' else 'cpu'), detector=('inception-2015-12-05.pt' if real_detector else 'stand-in (same shapes, not Inception)'),
        resolution=resolution, batch=batch, detector_images_per_s=round(images_per_s, 1), num_gen=num_gen, num_real=num_real,
        fid_total_s=round(fid_time, 2), fid=fid)))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
