#!/usr/bin/env bash
# Reproduces docs/RESULTS.md: the demo's preset (full by default) over three seeds, each run's report, JSON and plots
# copied to docs/results/<preset>-seed<S>/, then the generated block of docs/RESULTS.md rewritten from those files.
# Long (the full preset: about 25 minutes a seed on 2 cores). SKIP_RUNS=1 only regenerates from the committed files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${PRESET:-full}"
seeds="${SEEDS:-0 1 2}"
# the command to run: ./genrecal builds it from the checkout; GENRECAL="dotnet path/GenRecal.Cli.dll" uses a built one
genrecal="${GENRECAL:-./genrecal}"
if [ "${SKIP_RUNS:-0}" != 1 ]; then
  for seed in $seeds; do
    $genrecal demo --preset "$preset" --out "out/results-$preset-seed$seed" --seed "$seed"
    dest="docs/results/$preset-seed$seed"
    mkdir -p "$dest"
    cp "out/results-$preset-seed$seed"/{report.md,results.json,losses.png,accuracy.png,families.png} "$dest/"
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
