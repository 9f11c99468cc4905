"""Text prompts whose CLIP embeddings (the K x d matrix T) CGKD correlates images against."""

import os

#----------------------------------------------------------------------------
# Official class names, in label order (the `batches.meta` / `meta` files of the python tarballs).

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')

CIFAR100_CLASSES = (
    'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
    'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
    'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
    'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
    'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
    'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
    'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
    'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
    'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
    'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
)

# For datasets without class names (100-shot faces, animals, ...): broad visual concepts.
GENERIC_PROMPTS = (
    'a photo of a person', 'a photo of a face', 'a photo of an animal', 'a photo of a cat', 'a photo of a dog',
    'a photo of a bird', 'a photo of a vehicle', 'a photo of a building', 'a photo of a landscape',
    'a photo of a plant', 'a photo of food', 'a photo of an object',
)

PROMPT_TEMPLATE = 'a photo of a {name}'

#----------------------------------------------------------------------------

def class_prompts(class_names):
    """'a photo of a {name}' per class; underscores in names (CIFAR-100's 'maple_tree') become spaces."""
    return [PROMPT_TEMPLATE.format(name=str(name).replace('_', ' ').strip()) for name in class_names]

NAMED_SETS = {
    'cifar10-authors': tuple(f'a {name}' for name in CIFAR10_CLASSES),  # What the authors' code uses for CIFAR-10 and -100.
    'cifar10': tuple(class_prompts(CIFAR10_CLASSES)),
    'cifar100': tuple(class_prompts(CIFAR100_CLASSES)),
    'generic': GENERIC_PROMPTS,
}

#----------------------------------------------------------------------------

def _read_prompt_file(path):
    with open(path, 'r', encoding='utf-8') as f:
        prompts = [line.strip() for line in f]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise ValueError(f'Prompt file {path} holds no prompts (expected one prompt per line)')
    return prompts

def _cifar_set_for(dataset_name, label_dim):
    """'cifar10' / 'cifar100' when the dataset name says CIFAR, else None. label_dim breaks ties."""
    if not dataset_name:
        return None
    key = str(dataset_name).lower().replace('-', '').replace('_', '')
    if 'cifar' not in key:
        return None
    if label_dim in (10, 100):
        return f'cifar{label_dim}'
    return 'cifar100' if 'cifar100' in key else 'cifar10'

def resolve_prompts(spec=None, class_names=None, dataset_name=None, label_dim=None):
    """Return the list of prompts, by precedence: `spec` (a file with one prompt per line, or a named
    set), the dataset's class names, CIFAR-10/100 names when the dataset is CIFAR, a generic list."""
    if spec is not None and str(spec) != '':
        spec = str(spec)
        if os.path.isfile(spec):
            return _read_prompt_file(spec)
        if spec in NAMED_SETS:
            return list(NAMED_SETS[spec])
        raise ValueError(f'--kd-prompts={spec!r} is neither an existing file nor a named prompt set; '
                         f'named sets: {", ".join(sorted(NAMED_SETS))}')
    if class_names:
        return class_prompts(class_names)
    cifar = _cifar_set_for(dataset_name, label_dim)
    if cifar is not None:
        return list(NAMED_SETS[cifar])
    return list(GENERIC_PROMPTS)

#----------------------------------------------------------------------------
