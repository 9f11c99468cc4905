"""Write a mutant: one exact replacement in one file of the working tree, as a patch named NAME.patch.

    python tests/mutants/make.py NAME FILE OLD NEW --test tests/test_x.py::test_y [--test ...] --why "the slip"

OLD must occur exactly once in FILE. The working tree is not changed; run.py NAME then checks the mutant.
Rewrite a mutant the same way when the code around it changes and it no longer applies."""

import argparse
import difflib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('name')
    parser.add_argument('file', help='path relative to the repository root')
    parser.add_argument('old')
    parser.add_argument('new')
    parser.add_argument('--test', action='append', required=True, help='pytest node id that must catch it')
    parser.add_argument('--why', required=True)
    args = parser.parse_args()
    text = open(os.path.join(REPO, args.file)).read()
    if text.count(args.old) != 1:
        parser.error(f'{args.file} holds {text.count(args.old)} copies of OLD; it must hold exactly one')
    mutated = text.replace(args.old, args.new)
    diff = difflib.unified_diff(text.splitlines(True), mutated.splitlines(True), f'a/{args.file}', f'b/{args.file}', n=3)
    path = os.path.join(HERE, f'{args.name}.patch')
    with open(path, 'w') as f:
        f.write(f'# test: {" ".join(args.test)}\n# why: {args.why}\n')
        f.writelines(diff)
    print(f'Wrote {os.path.relpath(path, REPO)}; check it with: python tests/mutants/run.py {args.name}')

if __name__ == '__main__':
    main()
