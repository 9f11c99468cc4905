"""Tiny TorchScript stand-ins for NVIDIA's feature detectors, with the real call interfaces and file names.

Tests save them into a folder and point --detector-dir / detector_dir at it, so nothing is downloaded.
"""

import os
import warnings

import torch

INCEPTION_FILE = 'inception-2015-12-05.pt'
VGG16_FILE = 'vgg16.pt'

#----------------------------------------------------------------------------


class TinyInception(torch.nn.Module):
    """forward(img uint8 [N,3,H,W], return_features, no_output_bias): features [N, F] or softmax [N, K]."""

    def __init__(self, num_features=8, num_classes=5, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer('proj', torch.randn([3 * 4 * 4, num_features], generator=gen) / 4)
        self.register_buffer('head_weight', torch.randn([num_features, num_classes], generator=gen) * 2)
        self.register_buffer('head_bias', torch.randn([num_classes], generator=gen))
        self.register_buffer('num_images', torch.zeros([], dtype=torch.int64))  # Images seen, to detect cache hits.

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8, 'the Inception detector takes uint8 images'
        assert img.ndim == 4 and img.shape[1] == 3, 'the Inception detector takes [N, 3, H, W] images'
        self.num_images.add_(img.shape[0])
        x = torch.nn.functional.adaptive_avg_pool2d(img.to(torch.float32) / 127.5 - 1, [4, 4]).flatten(1)
        features = torch.tanh(x @ self.proj)
        if return_features:
            return features
        logits = features @ self.head_weight
        if not no_output_bias:
            logits = logits + self.head_bias
        return torch.softmax(logits, dim=1)


class TinyVGG16(torch.nn.Module):
    """forward(img [N,3,H,W] in [0, 255], resize_images, return_lpips, return_features).

    The LPIPS embedding is linear in the image, so a test can predict path lengths exactly.
    """

    def __init__(self, num_features=6, seed=1):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer('feature_proj', torch.randn([3 * 4 * 4, num_features], generator=gen) / 4)
        self.register_buffer('lpips_proj', torch.randn([3 * 4 * 4, num_features], generator=gen) / 4)

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False,
            return_features: bool = False) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1] == 3, 'the VGG16 detector takes [N, 3, H, W] images'
        x = torch.nn.functional.adaptive_avg_pool2d(img.to(torch.float32) / 255, [4, 4]).flatten(1)
        if return_lpips:
            return x @ self.lpips_proj
        return torch.tanh(x @ self.feature_proj * 4)


def save_tiny_detectors(folder):
    """Script and save both stand-ins under the real detectors' file names; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit's deprecation notice.
        torch.jit.save(torch.jit.script(TinyInception()), os.path.join(folder, INCEPTION_FILE))
        torch.jit.save(torch.jit.script(TinyVGG16()), os.path.join(folder, VGG16_FILE))
    return folder


def load_detector(folder, file_name):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        return torch.jit.load(os.path.join(folder, file_name))

#----------------------------------------------------------------------------
