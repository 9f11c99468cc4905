"""The --cfg presets: plain dicts of the settings a paper or repository used. Add new ones here; the
builders in training/options.py read them and nothing else does."""

#----------------------------------------------------------------------------
# 'auto' is derived from the resolution and the number of GPUs (-1 marks the derived entries).

CONFIG_PRESETS = {
    'auto':      dict(ref_gpus=-1, kimg=25000,  mb=-1, mbstd=-1, fmaps=-1,  lrate=-1,     gamma=-1,   ema=-1,  ramp=0.05, map=2),
    'stylegan2': dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=10,   ema=10,  ramp=None, map=8),
    'paper256':  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=0.5, lrate=0.0025, gamma=1,    ema=20,  ramp=None, map=8),
    'paper512':  dict(ref_gpus=8,  kimg=25000,  mb=64, mbstd=8,  fmaps=1,   lrate=0.0025, gamma=0.5,  ema=20,  ramp=None, map=8),
    'paper1024': dict(ref_gpus=8,  kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=2,    ema=10,  ramp=None, map=8),
    'cifar':     dict(ref_gpus=2,  kimg=100000, mb=64, mbstd=32, fmaps=1,   lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2),
    # 100-shot / AnimalFace: DiffAugment-stylegan2-pytorch's low_shot preset (train.py, cfg_specs['low_shot']),
    # snapshots every 10 ticks; no ADA, DiffAugment color,translation,cutout instead. ref_gpus -1: all processes.
    'low_shot':  dict(ref_gpus=-1, kimg=300,    mb=8,  mbstd=4,  fmaps=1,   lrate=0.002,  gamma=10,   ema=10,  ramp=None, map=2,
                      snap=10, aug='noaug', diffaugment='color,translation,cutout'),
    # The 32x32 BigGAN of DiffAugment's CIFAR experiments: hinge loss, Adam(2e-4, betas 0/0.999), batch 50,
    # 4 D steps per G step, G_ema decay 0.9999 per G step (= a half-life of 346.6 kimg of G images) from
    # G iteration 1000 (= 200 kimg of reals), DiffAugment translation,cutout, mirrored data. kimg counts reals.
    'biggan-cifar': dict(backbone='biggan', ref_gpus=1, kimg=50000, mb=50, ch=64, lrate=2e-4, betas=[0.0, 0.999],
                      d_steps=4, ema=346.6, ramp=None, ema_start=200, aug='noaug', diffaugment='translation,cutout', mirror=True,
                      snap=200),  # 200 ticks of 4 kimg = 800 kimg of reals = every 4000 G iterations, as the reference evaluates.
}

DEFAULT_SNAP = 50  # Ticks between snapshots when the preset names none (StyleGAN2-ADA's --snap default).

def resolve_preset(cfg, res, gpus):
    """The preset `cfg` as a new dict, with the 'auto' entries derived from the resolution and process count."""
    spec = dict(CONFIG_PRESETS[cfg])
    if cfg == 'auto':
        spec['ref_gpus'] = gpus
        spec['mb'] = max(min(gpus * min(4096 // res, 32), 64), gpus)  # Keep the GPU memory use in check.
        spec['mbstd'] = min(spec['mb'] // gpus, 4)  # Other values hurt quality at equal batch size.
        spec['fmaps'] = 1 if res >= 512 else 0.5
        spec['lrate'] = 0.002 if res >= 1024 else 0.0025
        spec['gamma'] = 0.0002 * (res ** 2) / spec['mb']  # Heuristic from StyleGAN2-ADA.
        spec['ema'] = spec['mb'] * 10 / 32
    if spec['ref_gpus'] < 0:
        spec['ref_gpus'] = gpus
    return spec

def backbone(cfg):
    return CONFIG_PRESETS[cfg].get('backbone', 'stylegan2')
