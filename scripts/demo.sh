#!/usr/bin/env bash
# The main job, end to end on one machine (< 10 min on 2 CPU cores):
#   1. synthesize pronoun-scrubbed biographies,
#   2. make a tiny BERT base model that carries gender features, censor it with MLAC,
#   3. audit the censored model against the random and base baselines (few-shot curves, CIs, verdict).
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== 1/3 synthetic data"
"$BIN/mlac-audit" data synth --n 4000 --seed 0 --out "$OUT/bios.parquet"

echo "== 2/3 base model + MLAC censoring"
"$BIN/mlac-audit" censor --base tiny --data "$OUT/bios.parquet" --out "$OUT/censored" \
  --steps ${MLAC_STEPS:-150} --inner-steps 2 --outer-lr 1e-4 --val-every 50 --max-length 96

echo "== 3/3 audit: censored vs random and base (preset quick)"
"$BIN/mlac-audit" audit --model "$OUT/censored" --base "$OUT/censored/base" --baselines random,base \
  --data "$OUT/bios.parquet" --preset quick --out "$OUT/audit"

echo
echo "report:  $OUT/audit/report.html"
echo "figures: $OUT/audit/curves.png $OUT/audit/attack_budget.png"
echo "result:  $OUT/audit/result.json"
