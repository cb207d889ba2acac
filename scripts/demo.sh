#!/usr/bin/env bash
# The main job on embedded defaults (local Spark, SQLite MLflow, files under $LOOKALIKE_HOME):
# ingest Fashion-MNIST -> (first time) short training + promotion (full index, bundle, production)
# -> (later times) incremental re-index from the change feed. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${DEMO_EPOCHS:-2}
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

say "1/3 ingest the Fashion-MNIST catalogue (70,000 products) into Delta"
lookalike ingest fashion-mnist
if lookalike bundle show | grep -q '"production": null'; then
  say "2/3 train a short encoder ($EPOCHS epochs; the full recipe is bench/quality.py)"
  lookalike train --set "epochs=$EPOCHS" --eval-limit 2000 --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-train.json" >/dev/null
  say "3/3 promote: gate, full ScaNN index, recommender bundle, alias production"
  lookalike promote --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-promote.json" >/dev/null
else
  say "2/3 a production bundle exists: incremental re-index from the change feed"
  lookalike index update --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-update.json" >/dev/null
  say "3/3 nothing else to do"
fi
lookalike bundle show
cat <<MSG

Serve it:   make serve          (http://127.0.0.1:8000/  -- the page; API docs at /docs)
Try:        curl -s 'http://127.0.0.1:8000/v1/items/fm-test-00000/similar?k=5'
MLflow UI:  .venv/bin/mlflow ui --backend-store-uri sqlite:///${LOOKALIKE_HOME:-$PWD/.lookalike}/mlflow/mlflow.db --host 127.0.0.1
MSG
