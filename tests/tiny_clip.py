"""A tiny open_clip model for tests: registered from a config JSON, random weights saved to a file."""

import json
import os

import open_clip
import torch

TINY_CLIP_CONFIG = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=2, width=32, head_width=16, patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
)

def register_tiny_clip(tmp_dir, name='kd-tiny-clip', image_size=32):
    """Write the config as <tmp_dir>/<name>.json, register it with open_clip, return the model name."""
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg['vision_cfg']['image_size'] = image_size
    path = os.path.join(str(tmp_dir), f'{name}.json')
    with open(path, 'w') as f:
        json.dump(cfg, f)
    open_clip.add_model_config(path)
    return name

def save_tiny_clip_weights(name, path, seed=123):
    """Save a seeded random state_dict of the registered model `name` to `path` (a 'local weights file')."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None)
    torch.save(model.state_dict(), path)
    return path
