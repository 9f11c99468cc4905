# Shared by the launchers: paths, GPU count, and a helper that builds a dataset once.
# Override with environment variables: GPUS, DOWNLOADS, DATASETS, RUNS, PYTHON.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GPUS=${GPUS:-1}
DOWNLOADS=${DOWNLOADS:-$REPO/downloads}
DATASETS=${DATASETS:-$REPO/datasets}
RUNS=${RUNS:-$REPO/runs}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi

# build_dataset DEST SOURCE [dataset_tool options...]: runs dataset_tool.py unless DEST exists.
build_dataset() {
    local dest=$1 source=$2
    shift 2
    if [ -e "$dest" ]; then return 0; fi
    if [ ! -e "$source" ]; then
        echo "Missing $source: download it (see docs/reproduce.md) or set DOWNLOADS." >&2
        exit 1
    fi
    mkdir -p "$(dirname "$dest")"
    "$PYTHON" "$REPO/dataset_tool.py" --source="$source" --dest="$dest" "$@"
}
