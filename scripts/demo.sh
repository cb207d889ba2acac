#!/usr/bin/env bash
# The main job on embedded defaults (local Spark, SQLite MLflow, files under $LOOKALIKE_HOME):
# ingest Fashion-MNIST -> (first time) short training + promotion (full index, bundle, production)
# -> (later times) incremental re-index from the change feed. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${DEMO_EPOCHS:-2}
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

say "1/4 ingest the Fashion-MNIST catalogue (70,000 products) into Delta"
lookalike ingest fashion-mnist
if lookalike bundle show | grep -q '"production": null'; then
  say "2/4 train a short encoder ($EPOCHS epochs; the full recipe is bench/quality.py)"
  lookalike train --set "epochs=$EPOCHS" --eval-limit 2000 --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-train.json" >/dev/null
  say "3/4 promote: gate, full ScaNN index, recommender bundle, alias production"
  lookalike promote --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-promote.json" >/dev/null
else
  say "2/4 a production bundle exists: incremental re-index from the change feed"
  lookalike index update --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-update.json" >/dev/null
  say "3/4 nothing else to do"
fi
lookalike bundle show
if lookalike shopper show | grep -q '"production": null'; then
  if lookalike shopper show | grep -q '"interactions_version": null'; then
    say "4/4 shoppers: simulate 5,000 shoppers (500,000 events) over the catalogue, train MF, promote"
    lookalike shopper simulate --ingest >/dev/null
  else
    say "4/4 shoppers: train MF on the interactions table, promote"
  fi
  lookalike shopper train --no-baselines --eval-users 1000 --summary-file "${LOOKALIKE_HOME:-.lookalike}/demo-shopper.json" >/dev/null
  lookalike shopper promote >/dev/null
else
  say "4/4 a production shopper model exists (the nightly DAG lookalike_shopper_model retrains it)"
fi
lookalike shopper show
cat <<MSG

Serve it:   make serve          (http://127.0.0.1:8000/  -- the page; API docs at /docs)
Try:        curl -s 'http://127.0.0.1:8000/v1/items/fm-test-00000/similar?k=5'
            curl -s 'http://127.0.0.1:8000/v1/users/u0042/recommendations?k=5'
MLflow UI:  .venv/bin/mlflow ui --backend-store-uri sqlite:///${LOOKALIKE_HOME:-$PWD/.lookalike}/mlflow/mlflow.db --host 127.0.0.1
MSG
