#!/usr/bin/env bash
# CIFAR-10 / CIFAR-100 at 10%, 20% or 100% of the training set: BigGAN + DiffAugment
# (translation,cutout) [+ LeCam] [+ KD-DLGAN], as in the paper's CIFAR tables.
#
# Usage: scripts/cifar_biggan.sh cifar10|cifar100 10|20|100 kd|nokd lecam|nolecam [train.py options...]
# Metric: fid10k_full against the 10k test split (and is10k), the DiffAugment/KD-DLGAN protocol.
# Example first tick on CPU: scripts/cifar_biggan.sh cifar10 10 kd nolecam --dry-run
source "$(dirname "$0")/common.sh"
dataset=${1:?dataset: cifar10 or cifar100}
percent=${2:?percent: 10, 20 or 100}
kd=${3:?kd or nokd}
lecam=${4:?lecam or nolecam}
shift 4

case $dataset in
    cifar10)  tarball=$DOWNLOADS/cifar-10-python.tar.gz ;;
    cifar100) tarball=$DOWNLOADS/cifar-100-python.tar.gz ;;
    *) echo "unknown dataset '$dataset' (cifar10 or cifar100)" >&2; exit 2 ;;
esac
# Images shown to D: 5000 epochs of the subset at 10%, 5000 at 20% and 1000 of the full set at 100%
# (DiffAugment's BigGAN CIFAR schedules).
case $percent in
    10)  subset=(--subset=5000 --subset-seed=0);  kimg=25000 ;;
    20)  subset=(--subset=10000 --subset-seed=0); kimg=50000 ;;
    100) subset=();                               kimg=50000 ;;
    *) echo "unknown percent '$percent' (10, 20 or 100)" >&2; exit 2 ;;
esac
case $kd in kd) kd_opts=(--kd=agg,corr) ;; nokd) kd_opts=(--kd=none) ;; *) echo "third argument: kd or nokd" >&2; exit 2 ;; esac
case $lecam in lecam) lecam_opts=(--lecam=0.3) ;; nolecam) lecam_opts=() ;; *) echo "fourth argument: lecam or nolecam" >&2; exit 2 ;; esac

# Published FID (fid10k_full vs test split) to approach; KD_METHOD.md lists the sources.
declare -A published=(
    [cifar10-10-nokd]="22.40 (DiffAugment)" [cifar10-20-nokd]="14.04 (DiffAugment)" [cifar10-100-nokd]="8.70 (DiffAugment)"
    [cifar100-10-nokd]="33.70 (DiffAugment)" [cifar100-20-nokd]="22.14 (DiffAugment)" [cifar100-100-nokd]="12.00 (DiffAugment)"
    [cifar10-20-kd]="11.01 (KD-DLGAN, AGKD + CGKD ablation)"
)
echo "Target FID for $dataset $percent% $kd: ${published[$dataset-$percent-$kd]:-not listed here, see the paper}"

build_dataset "$DATASETS/$dataset-train.zip" "$tarball" --split=train
build_dataset "$DATASETS/$dataset-test.zip" "$tarball" --split=test

"$PYTHON" "$REPO/train.py" --outdir="$RUNS" --gpus="$GPUS" --cfg=biggan-cifar \
    --data="$DATASETS/$dataset-train.zip" --metric-data="$DATASETS/$dataset-test.zip" \
    --cond=1 --mirror=1 --diffaugment=translation,cutout --kimg=$kimg \
    "${subset[@]}" "${kd_opts[@]}" "${lecam_opts[@]}" \
    --metrics=fid10k_full,is10k --desc="$dataset-$percent-$kd-$lecam" "$@"
