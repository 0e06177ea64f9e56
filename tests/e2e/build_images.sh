#!/usr/bin/env bash
# The `vm_images` CTest fixture: guest images for the VM end-to-end tests,
# built once into the build tree (kept between runs; rebuilt when missing).
set -euo pipefail
exed=$1
dir=$2
shift 2
mkdir -p "$dir"
chmod 755 "$dir"
for image in "$@"; do
  EXED_STATE_DIR=$dir EXED_IMAGES_DIR=$dir "$exed" image build "$image" --if-missing
done
