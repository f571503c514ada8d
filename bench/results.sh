#!/usr/bin/env bash
# Reproduces docs/RESULTS.md: the demo's preset (full by default) over six seeds, each run's report, JSON and plots
# copied to docs/results/<preset>-seed<S>/, then the generated block of docs/RESULTS.md rewritten from those files.
# VARIANTS (GenRecal variant names, default "joint-recal-stage2 no-kd") run in each seed's OUT after the demo.
# Long (the full preset: about 35 minutes a seed, three seeds in parallel at --threads 1 on 2 cores).
# SKIP_RUNS=1 only regenerates from the committed files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${PRESET:-full}"
seeds="${SEEDS:-0 1 2 3 4 5}"
variants="${VARIANTS:-joint-recal-stage2 no-kd}"
# the command to run: ./genrecal builds it from the checkout; GENRECAL="dotnet path/GenRecal.Cli.dll" uses a built one
genrecal="${GENRECAL:-./genrecal}"
if [ "${SKIP_RUNS:-0}" != 1 ]; then
  for seed in $seeds; do
    out="out/results-$preset-seed$seed"
    $genrecal demo --preset "$preset" --out "$out" --seed "$seed"
    for variant in $variants; do $genrecal demo --preset "$preset" --out "$out" --seed "$seed" --variant "$variant"; done
    dest="docs/results/$preset-seed$seed"
    mkdir -p "$dest"
    cp "$out"/{report.md,results.json,losses.png,accuracy.png,families.png} "$dest/"
    for variant in $variants; do cp "$out/report-$variant.md" "$out/results-$variant.json" "$dest/"; done
  done
fi
dirs=()
for seed in $seeds; do dirs+=("docs/results/$preset-seed$seed"); done
summary="$($genrecal summarize "${dirs[@]}")"
begin="<!-- results:$preset begin (bench/results.sh writes this block) -->"
end="<!-- results:$preset end -->"
SUMMARY="$summary" BEGIN="$begin" END="$end" python3 - docs/RESULTS.md <<'PY'
import os, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
begin, end, block = os.environ["BEGIN"], os.environ["END"], os.environ["SUMMARY"].rstrip("\n")
if begin not in text or end not in text:
    sys.exit(f"{path}: markers '{begin}' / '{end}' not found")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w", encoding="utf-8").write(f"{head}{begin}\n{block}\n{end}{tail}")
PY
echo "docs/RESULTS.md: $preset block regenerated from ${dirs[*]}"
