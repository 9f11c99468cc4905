#!/usr/bin/env bash
# CIFAR-10 / CIFAR-100 at 10%, 20% or 100% of the training set: BigGAN + DiffAugment
# (translation,cutout) [+ LeCam] [+ KD-DLGAN], as in the paper's CIFAR tables.
#
# Usage: scripts/cifar_biggan.sh cifar10|cifar100 10|20|100 kd|kd-project|nokd lecam|nolecam [train.py options...]
# kd: KD-DLGAN with the authors' code setup (--kd-preset=authors); kd-project: this project's KD defaults.
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
# Images shown to D (DiffAugment's BigGAN CIFAR schedules): 5000 epochs of the subset at 10% and 20%;
# at 100%, 1000 epochs of CIFAR-10 and 2000 epochs of CIFAR-100.
case $percent in
    10)  subset=(--subset=5000 --subset-seed=0);  kimg=25000 ;;
    20)  subset=(--subset=10000 --subset-seed=0); kimg=50000 ;;
    100) subset=(); if [ "$dataset" = cifar100 ]; then kimg=100000; else kimg=50000; fi ;;
    *) echo "unknown percent '$percent' (10, 20 or 100)" >&2; exit 2 ;;
esac
case $kd in
    kd) kd_opts=(--kd=agg,corr --kd-preset=authors) ;;
    kd-project) kd_opts=(--kd=agg,corr --kd-preset=project) ;;
    nokd) kd_opts=(--kd=none) ;;
    *) echo "third argument: kd, kd-project or nokd" >&2; exit 2 ;;
esac
# LeCam is explicit either way, so --kd-preset=authors does not add it behind the fourth argument's back.
case $lecam in lecam) lecam_opts=(--lecam=0.3) ;; nolecam) lecam_opts=(--lecam=0) ;; *) echo "fourth argument: lecam or nolecam" >&2; exit 2 ;; esac

# Published FID (fid10k_full vs test split), keyed by dataset, percent, KD and LeCam; sources in docs/reproduce.md.
declare -A published=(
    [cifar10-10-nokd-nolecam]="22.40 (DiffAugment)" [cifar10-20-nokd-nolecam]="14.04 (DiffAugment)"
    [cifar10-100-nokd-nolecam]="8.70 (DiffAugment)" [cifar100-10-nokd-nolecam]="33.70 (DiffAugment)"
    [cifar100-20-nokd-nolecam]="22.14 (DiffAugment)" [cifar100-100-nokd-nolecam]="12.00 (DiffAugment)"
    [cifar10-20-kd-nolecam]="11.01 (KD-DLGAN ablation, AGKD + CGKD)"
)
key=$dataset-$percent-${kd%-project}-$lecam
echo "Published FID for $dataset $percent% $kd $lecam: ${published[$key]:-none: no published number for this row (docs/reproduce.md)}"

build_dataset "$DATASETS/$dataset-train.zip" "$tarball" --split=train
build_dataset "$DATASETS/$dataset-test.zip" "$tarball" --split=test

"$PYTHON" "$REPO/train.py" --outdir="$RUNS" --gpus="$GPUS" --cfg=biggan-cifar \
    --data="$DATASETS/$dataset-train.zip" --metric-data="$DATASETS/$dataset-test.zip" \
    --cond=1 --mirror=1 --diffaugment=translation,cutout --kimg=$kimg \
    "${subset[@]}" "${kd_opts[@]}" "${lecam_opts[@]}" \
    --metrics=fid10k_full,is10k --desc="$dataset-$percent-$kd-$lecam" "$@"
