"""Convert NVIDIA's StyleGAN2 TensorFlow pickles and DiffAugment's released TF models, without TensorFlow,
into this codebase's snapshot format. The reading and converting lives in training/legacy_tf.py; every
tool also reads TF pickles directly (training.snapshot.load_network_pkl), this converts one once.

    python legacy.py --source=stylegan2-ffhq-config-f.pkl --dest=ffhq.pkl
"""

import click

from training import snapshot

# StyleGAN2-ADA's scripts call legacy.load_network_pkl(f); here it is the snapshot loader, which
# recognises TF pickles and converts them.
load_network_pkl = snapshot.load_network_pkl

#----------------------------------------------------------------------------

@click.command()
@click.option('--source', help='TF pickle: path or URL', required=True, metavar='PATH')
@click.option('--dest', help='Output pickle in this codebase\'s format', required=True, metavar='PATH')
def main(source, dest):
    """Convert a StyleGAN2 (or DiffAugment) TensorFlow pickle into this codebase's snapshot format."""
    try:
        data = load_network_pkl(source)  # Recognises TF pickles and converts them.
        snapshot.save_snapshot(dest, {key: data[key] for key in ('G', 'D', 'G_ema') if data[key] is not None})
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))
    print(f'Wrote {dest}')

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
