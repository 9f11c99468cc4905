#!/usr/bin/env bash
# 100-shot Obama / Grumpy Cat / Panda (256x256) and AnimalFace Cat (160) / Dog (389):
# StyleGAN2 low_shot + DiffAugment color,translation,cutout [+ KD-DLGAN].
#
# Usage: scripts/low_shot.sh obama|grumpy_cat|panda|animalface_cat|animalface_dog kd|nokd [train.py options...]
# Source images: $DOWNLOADS/<name>/ (a folder of images, or <name>.zip) from the DiffAugment releases.
# Metric: fid5k_full against the training images (DiffAugment's low-shot protocol) and fid50k_full.
source "$(dirname "$0")/common.sh"
name=${1:?dataset: obama, grumpy_cat, panda, animalface_cat or animalface_dog}
kd=${2:?kd or nokd}
shift 2
case $name in obama|grumpy_cat|panda|animalface_cat|animalface_dog) ;; *) echo "unknown dataset '$name'" >&2; exit 2 ;; esac
case $kd in kd) kd_opts=(--kd=agg,corr) ;; nokd) kd_opts=(--kd=none) ;; *) echo "second argument: kd or nokd" >&2; exit 2 ;; esac

declare -A published=([obama-nokd]="46.87 (DiffAugment)" [obama-kd]="31.54 (KD-DLGAN)")
echo "Published FID for $name $kd: ${published[$name-$kd]:-none: no published number for this row (docs/reproduce.md)}"
# 100-shot: the preset's 300 kimg; AnimalFace: 500 kimg (DiffAugment's low-shot schedules).
case $name in animalface_*) len_opts=(--kimg=500) ;; *) len_opts=() ;; esac

source_path=$DOWNLOADS/$name
[ -e "$source_path" ] || source_path=$DOWNLOADS/$name.zip
build_dataset "$DATASETS/$name.zip" "$source_path" --resolution=256x256 --transform=center-crop

"$PYTHON" "$REPO/train.py" --outdir="$RUNS" --gpus="$GPUS" --cfg=low_shot \
    --data="$DATASETS/$name.zip" --mirror=1 --diffaugment=color,translation,cutout \
    "${len_opts[@]}" "${kd_opts[@]}" --metrics=fid5k_full,fid50k_full --desc="$name-$kd" "$@"
