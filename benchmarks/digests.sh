#!/usr/bin/env bash
# The weights digests that a refactor must keep: the quick start and nine 300-step runs, one per bottleneck
# and remedy (the CHANGELOG and the closing notes quote them). Usage: bash benchmarks/digests.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
run() {
  local name=$1; shift
  local digest
  digest=$(python train.py --quiet --out "$out/$name" "$@" 2>&1 | sed -n 's/^final weights sha256: //p')
  printf '%-12s %s\n' "$name" "${digest:-FAILED}"
}
run quickstart
run vq --steps 300 --bottleneck vq
run vq_ema --steps 300 --bottleneck vq --ema-decay 0.99 --dead-code-steps 5
run rotation --steps 300 --bottleneck vq --gradient-estimator rotation
run soft_vq_all --steps 300 --bottleneck soft_vq --noise-std 0.1 --dead-code-steps 5 --kmeans-init --likelihood gaussian
run vae --steps 300 --bottleneck vae
run info_dropout --steps 300 --bottleneck info_dropout
run ae --steps 300 --bottleneck ae
run fsq --steps 300 --bottleneck fsq
run sqvae --steps 300 --bottleneck sqvae
