"""Imports run one way: root tools (the *.py files at the repository root) -> training, kd, metrics
-> torch_utils, dnnlib.

Every .py file of the repository (but .venv and tests/mutants) is parsed with ast, never imported,
and its project imports (at module level and inside functions) are checked:
    a) no circle among library modules through module-level imports,
    b) no click in the library (command lines belong to the root tools),
    c) no library module imports a root tool,
    d) torch_utils and dnnlib import nothing from training, kd or metrics,
    e) a project import inside a function (heavy or optional stacks only) has a comment saying why.
Each failure names the file and line of the offending import.
"""

import ast
import dataclasses
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = ('dnnlib', 'torch_utils', 'training', 'kd', 'metrics')
BASE = ('dnnlib', 'torch_utils')            # The bottom layer.
UPPER = ('training', 'kd', 'metrics')       # What the bottom layer may not import.
SKIPPED = os.path.join('tests', 'mutants')  # Planted bugs of the mutation corpus, as patches and scripts.

#----------------------------------------------------------------------------
# Reading the repository.

def python_files(root):
    """Paths, relative to root, of every .py file but those in hidden folders (.venv, .git), caches and SKIPPED."""
    found = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d != '__pycache__'
            and os.path.normpath(os.path.join(rel_folder, d)) != SKIPPED)
        found += [os.path.normpath(os.path.join(rel_folder, f)) for f in sorted(files) if f.endswith('.py')]
    return found

def module_name(rel_path):
    """'training/launch.py' -> 'training.launch'; 'dnnlib/__init__.py' -> 'dnnlib'."""
    parts = rel_path[:-len('.py')].split(os.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

def package_of(name):
    return name.split('.')[0]

def is_library(name):
    return package_of(name) in LIBRARY

@dataclasses.dataclass
class Import:
    """One import statement's project target, where it is, and whether it runs at module load."""
    source: str
    target: str
    path: str
    line: int
    top_level: bool

    def where(self):
        return f'{self.path}:{self.line}'

def _longest_known(dotted, known):
    """The longest prefix of a dotted name that is a repository module (or click), else None."""
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        name = '.'.join(parts[:i])
        if name in known or name == 'click':
            return name
    return None

def _targets(node, source, is_package, known):
    """The repository modules (and click) one import statement loads."""
    if isinstance(node, ast.Import):
        found = [_longest_known(alias.name, known) for alias in node.names]
    else:
        base = node.module or ''
        if node.level:  # Relative: resolve against the importing module's package.
            package = source.split('.') if is_package else source.split('.')[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = '.'.join(package + ([base] if base else []))
        # `from a import b` loads the module a.b when there is one, else takes the name b from a.
        found = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in known else _longest_known(base, known)
            for alias in node.names]
    return sorted({name for name in found if name is not None})

def _walk(node, top_level=True):
    """(import node, top_level) for every import; function bodies do not run at module load."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top_level
        inside = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, top_level and not inside)

def read_imports(root):
    """{module name: path} of the repository, and every import of a project module or of click."""
    paths = {module_name(path): path for path in python_files(root)}
    imports = []
    for name, path in paths.items():
        with open(os.path.join(root, path), encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
        for node, top_level in _walk(tree):
            imports += [Import(source=name, target=target, path=path, line=node.lineno, top_level=top_level)
                for target in _targets(node, name, path.endswith('__init__.py'), paths)]
    return paths, imports

def root_tools(paths):
    return {name for name, path in paths.items() if os.sep not in path}

#----------------------------------------------------------------------------
# The rules; each returns a list of messages.

def library_circles(imports):
    """Circles among library modules through module-level imports, each as the chain of its imports."""
    edges = {}
    for imp in imports:
        if imp.top_level and is_library(imp.source) and is_library(imp.target) and imp.source != imp.target:
            edges.setdefault(imp.source, []).append(imp)
    messages, done, stack = [], set(), []
    def visit(module):
        stack.append(module)
        for imp in edges.get(module, []):
            if imp.target in stack:
                chain = stack[stack.index(imp.target):] + [imp.target]
                steps = [next(i for i in edges[a] if i.target == b) for a, b in zip(chain, chain[1:])]
                messages.append('import circle: ' + ' -> '.join(f'{i.source} ({i.where()})' for i in steps)
                    + f' -> {imp.target}')
            elif imp.target not in done:
                visit(imp.target)
        stack.pop()
        done.add(module)
    for module in sorted(edges):
        if module not in done:
            visit(module)
    return messages

def click_in_library(imports):
    return [f'{imp.where()}: library module {imp.source} imports click (command lines belong to the root tools)'
        for imp in imports if is_library(imp.source) and package_of(imp.target) == 'click']

def root_tool_in_library(imports, tools):
    return [f'{imp.where()}: library module {imp.source} imports the root tool {imp.target}.py'
        for imp in imports if is_library(imp.source) and imp.target in tools]

def base_imports_upper(imports):
    return [f'{imp.where()}: {imp.source} imports {imp.target} ({"/".join(BASE)} are the bottom layer)'
        for imp in imports if package_of(imp.source) in BASE and package_of(imp.target) in UPPER]

def unexplained_late_imports(root, paths, imports):
    """A project import inside a function of the library or a tool is for a heavy or optional stack only, and says
    so: a comment on its line or the line above."""
    messages = []
    for imp in imports:
        if imp.top_level or package_of(imp.target) == 'click' or not (is_library(imp.source) or imp.source in root_tools(paths)):
            continue
        with open(os.path.join(root, imp.path), encoding='utf-8') as f:
            lines = f.read().splitlines()
        if '#' not in lines[imp.line - 1] and not (imp.line >= 2 and lines[imp.line - 2].strip().startswith('#')):
            messages.append(f'{imp.where()}: {imp.source} imports {imp.target} inside a function without a comment saying why')
    return messages

def all_violations(root):
    paths, imports = read_imports(root)
    return dict(circles=library_circles(imports), click=click_in_library(imports),
        root_tools=root_tool_in_library(imports, root_tools(paths)), layers=base_imports_upper(imports),
        late=unexplained_late_imports(root, paths, imports))

#----------------------------------------------------------------------------
# The repository.

@pytest.fixture(scope='module')
def repo_violations():
    return all_violations(REPO)

@pytest.mark.parametrize('rule', ['circles', 'click', 'root_tools', 'layers', 'late'])
def test_repository_follows_the_import_rules(repo_violations, rule):
    assert repo_violations[rule] == [], '\n'.join(repo_violations[rule])

def test_the_graph_is_read():
    paths, imports = read_imports(REPO)
    assert {'train', 'legacy', 'training.snapshot', 'torch_utils.ops.upfirdn2d', 'dnnlib'} <= set(paths)
    assert not any(path.startswith(os.path.join('tests', 'mutants')) for path in paths.values())
    found = {(imp.source, imp.target) for imp in imports}
    assert ('training.networks_stylegan2', 'torch_utils.persistence') in found  # from torch_utils import persistence
    assert ('dnnlib', 'dnnlib.util') in found  # from .util import ...

#----------------------------------------------------------------------------
# Each rule fails on a planted violation, naming file and line.

def _plant(root, files):
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), 'w', encoding='utf-8') as f:
            f.write(text)

def test_planted_violations_are_named_with_file_and_line(tmp_path):
    _plant(str(tmp_path), {
        'tool.py': 'import click\nfrom training import a\n',
        'training/a.py': '"""A."""\nfrom training import b\n',
        'training/b.py': 'import os\n\nimport training.a\n\ndef f():\n    import tool\n    import click\n',
        'torch_utils/c.py': 'def g():\n    from metrics import m\n',
        'metrics/m.py': 'from torch_utils import c\n',
        'tests/mutants/bad.py': 'import click\n',  # Skipped: a planted bug of the mutation corpus.
    })
    found = all_violations(str(tmp_path))
    assert len(found['circles']) == 1
    assert found['circles'][0].startswith('import circle: training.a (training/a.py:2) -> training.b (training/b.py:3) -> training.a')
    assert found['click'] == ['training/b.py:7: library module training.b imports click (command lines belong to the root tools)']
    assert found['root_tools'] == ['training/b.py:6: library module training.b imports the root tool tool.py']
    assert found['layers'] == ['torch_utils/c.py:2: torch_utils.c imports metrics.m (dnnlib/torch_utils are the bottom layer)']
    assert found['late'] == ['torch_utils/c.py:2: torch_utils.c imports metrics.m inside a function without a comment saying why',
        'training/b.py:6: training.b imports tool inside a function without a comment saying why']

def test_imports_inside_functions_make_no_circle(tmp_path):
    _plant(str(tmp_path), {'kd/a.py': 'from kd import b\n', 'kd/b.py': 'def f():\n    from kd import a\n'})
    assert all_violations(str(tmp_path))['circles'] == []

#----------------------------------------------------------------------------
