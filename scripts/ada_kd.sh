#!/usr/bin/env bash
# KD-DLGAN combined with ADA: StyleGAN2 paper256 + ADA [+ KD-DLGAN] on any prepared dataset zip.
#
# Usage: scripts/ada_kd.sh DATASET_ZIP kd|nokd [train.py options...]
# Metric: fid50k_full against the training images.
source "$(dirname "$0")/common.sh"
data=${1:?path to a dataset zip made by dataset_tool.py}
kd=${2:?kd or nokd}
shift 2
case $kd in kd) kd_opts=(--kd=agg,corr) ;; nokd) kd_opts=(--kd=none) ;; *) echo "second argument: kd or nokd" >&2; exit 2 ;; esac
[ -e "$data" ] || { echo "missing dataset $data" >&2; exit 1; }
echo "Reports fid50k_full; compare the kd and nokd runs on the same data."

"$PYTHON" "$REPO/train.py" --outdir="$RUNS" --gpus="$GPUS" --cfg=paper256 --aug=ada \
    --data="$data" --mirror=1 "${kd_opts[@]}" --metrics=fid50k_full \
    --desc="ada-$(basename "$data" .zip)-$kd" "$@"
