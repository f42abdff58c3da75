#!/usr/bin/env bash
# The main job, end to end through the real service on one machine (< 10 min on 2 CPU cores):
#   1. start the service (embedded: SQLite job store + a local Ray, token auth on, all under $OUT/service),
#   2. create a synthetic biography dataset over REST,
#   3. build a tiny BERT base model (trained on both labels, so it carries gender features) and upload it,
#   4. submit `censor_then_audit` with the `quick` preset: MLAC-censor the base, then audit the censored
#      model against the random and base baselines (few-shot curves, CIs, verdict),
#   5. follow its progress, print the curve table and where the report and figures are, shut down.
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-demo-out}
SEED=${SEED:-0}
N_BIOS=${N_BIOS:-3000}
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PORT=${PORT:-$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
URL="http://127.0.0.1:$PORT"
MLAC_ADMIN_KEY=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))')
export MLAC_ADMIN_KEY MLAC_URL="$URL" MLAC_API_KEY="$MLAC_ADMIN_KEY"
AUTH="Authorization: Bearer $MLAC_ADMIN_KEY"
started=$(date +%s)

json_field() {  # json_field FIELD < json  ->  the field's value
  "$BIN/python" -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

echo "== 1/5 service on $URL (log: $OUT/service.log)"
"$BIN/mlac-audit" serve --data-dir "$OUT/service" --port "$PORT" --num-cpus 2 > "$OUT/service.log" 2>&1 &
SERVER=$!
stop_server() {
  if kill -0 "$SERVER" 2> /dev/null; then
    kill -INT "$SERVER"  # uvicorn shuts down cleanly on SIGINT; the service stops its local Ray
    for _ in $(seq 60); do kill -0 "$SERVER" 2> /dev/null || break; sleep 0.5; done
    kill -9 "$SERVER" 2> /dev/null || true
  fi
}
trap stop_server EXIT
for _ in $(seq 120); do
  curl -sf "$URL/v1/health" > /dev/null && break
  kill -0 "$SERVER" 2> /dev/null || { echo "the service did not start:"; tail -20 "$OUT/service.log"; exit 1; }
  sleep 0.5
done
curl -sf "$URL/v1/health" > /dev/null || { echo "the service did not answer in 60 s"; exit 1; }

echo "== 2/5 synthetic dataset ($N_BIOS bios) over REST"
DATASET=$(curl -sf -H "$AUTH" -H 'content-type: application/json' -X POST "$URL/v1/datasets/synthetic" \
  -d "{\"name\": \"demo\", \"n_bios\": $N_BIOS, \"seed\": $SEED}" | json_field id)
echo "dataset $DATASET"

echo "== 3/5 tiny BERT base model, uploaded as a checkpoint"
"$BIN/mlac-audit" data synth --n "$N_BIOS" --seed "$SEED" --out "$OUT/bios.parquet" > /dev/null
"$BIN/mlac-audit" base --data "$OUT/bios.parquet" --out "$OUT/base" --steps 300 --max-length 64 --seed "$SEED" > /dev/null
files=()
for f in "$OUT"/base/*; do files+=(-F "files=@$f"); done
CHECKPOINT=$(curl -sf -H "$AUTH" -X POST "$URL/v1/checkpoints" "${files[@]}" | json_field id)
echo "checkpoint $CHECKPOINT (sha256 over all its files)"

echo "== 4/5 censor_then_audit, preset quick"
JOB=$(curl -sf -H "$AUTH" -H 'content-type: application/json' -H "Idempotency-Key: demo-$CHECKPOINT" \
  -X POST "$URL/v1/jobs" -d "{\"kind\": \"censor_then_audit\", \"dataset_id\": \"$DATASET\",
      \"checkpoint_id\": \"$CHECKPOINT\", \"preset\": \"quick\", \"audit\": {\"baselines\": [\"random\", \"base\"]}}" \
  | json_field id)
echo "job $JOB (Ray dashboard: see $OUT/service.log)"
"$BIN/mlac-audit" watch "$JOB"

echo "== 5/5 result"
"$BIN/mlac-audit" result "$JOB" --out "$OUT/result"
echo
echo "report:  $OUT/result/report.html   ($URL/v1/jobs/$JOB/report while the service runs)"
echo "figures: $OUT/result/curves.png $OUT/result/attack_budget.png"
echo "result:  $OUT/result/result.json"
echo "done in $(( $(date +%s) - started )) s"
