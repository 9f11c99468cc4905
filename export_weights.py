"""Export a network pickle as a weights-only file: constructor arguments as JSON plus tensors, which
opens without running any code (a pickle of persistent classes runs the source stored inside it).

    python export_weights.py --network=runs/00000-.../network-snapshot-000300.pkl
    python generate.py --network=runs/00000-.../network-snapshot-000300.weights.pt --seeds=0-7 --outdir=out
"""

import click

from training import weights
from training.snapshot import load_network_pkl


@click.command()
@click.option('--network', 'network_pkl', help='Network pickle: path or URL', required=True, metavar='PKL')
@click.option('--dest', help=f'Output file [default: the pickle name with {weights.SUFFIX}]', metavar='FILE')
def main(network_pkl, dest):
    """Write the networks of a snapshot pickle (G, D, G_ema, augment_pipe) as a weights-only file."""
    try:
        data = load_network_pkl(network_pkl)
        dest = dest or weights.weights_path(network_pkl.split('?')[0].rstrip('/').split('/')[-1] if '://' in network_pkl else network_pkl)
        weights.save_weights(dest, data)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))
    print(f'Wrote {dest}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
