"""Speed of dataset_tool.py on a synthetic CIFAR-10-format tarball; prints one JSON line."""

import io
import json
import os
import pickle
import sys
import tarfile
import tempfile
import time

import click
import numpy as np
from click.testing import CliRunner

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dataset_tool  # noqa: E402


def make_cifar_tarball(path, num_images, seed=0):
    """A cifar-10-python.tar.gz with num_images random images spread over the five training batches."""
    rnd = np.random.RandomState(seed)
    data = rnd.randint(0, 256, size=[num_images, 3072], dtype=np.uint8)
    labels = rnd.randint(0, 10, size=num_images).tolist()
    def add(tar, name, obj):
        payload = pickle.dumps(obj, protocol=2)
        info = tarfile.TarInfo(f'cifar-10-batches-py/{name}')
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with tarfile.open(path, 'w:gz', compresslevel=1) as tar:
        for k, part in enumerate(np.array_split(np.arange(num_images), 5)):
            add(tar, f'data_batch_{k + 1}', {b'data': data[part], b'labels': [labels[i] for i in part]})
        add(tar, 'test_batch', {b'data': data[:10], b'labels': labels[:10]})
        add(tar, 'batches.meta', {b'label_names': [f'class{i}'.encode() for i in range(10)]})


@click.command()
@click.option('--images', type=click.IntRange(min=5), default=5000, show_default=True, help='Images in the tarball.')
def main(images):
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, 'cifar-10-python.tar.gz')
        make_cifar_tarball(source, images)
        start = time.perf_counter()
        result = CliRunner().invoke(dataset_tool.main, ['--source', source, '--dest', os.path.join(tmp, 'out.zip')])
        seconds = time.perf_counter() - start
        if result.exit_code != 0:
            raise click.ClickException(f'dataset_tool.py failed:\n{result.output}')
    print(json.dumps(dict(bench='dataset_tool', images=images, seconds=round(seconds, 3),
                          images_per_s=round(images / seconds, 1))))


if __name__ == '__main__':
    main()
