#!/usr/bin/env bash
# Reproduces docs/RESULTS.md: the demo's full preset over three seeds, the default (embeddings) and the paper's form,
# then a summary table. Long (about an hour on 2 cores); results land in out/results-$PRESET-seed*/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${PRESET:-full}"
variants="${VARIANTS:-embeddings paper}"
for seed in ${SEEDS:-0 1 2}; do
  for v in $variants; do
    ./genrecal demo --preset "$preset" --out "out/results-$preset-seed$seed" --seed "$seed" --variant "$v"
  done
done
./genrecal summarize out/results-"$preset"-seed*
