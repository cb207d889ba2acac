#!/usr/bin/env bash
# The main job on embedded defaults, through Airflow (local Spark, SQLite for Airflow and MLflow,
# files under $LOOKALIKE_HOME):
#   1. the bootstrap DAG (`airflow dags test`): ingest Fashion-MNIST -> short training -> promote
#      (first time only; later: an incremental re-index from the change feed)
#   2. the shopper DAG: simulated shoppers -> MF training on Spark -> gate -> production
#   3. Airflow (api-server, scheduler, dag-processor, triggerer), the MLflow UI and the
#      recommendation service, all on 127.0.0.1, in the background; `make stop` stops them.
# Safe to rerun. DEMO_EPOCHS (2) and DEMO_LIMIT (70000 images per split) make it smaller.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
EPOCHS=${DEMO_EPOCHS:-2}
LIMIT=${DEMO_LIMIT:-70000}
SIM_USERS=${DEMO_SHOPPERS:-5000}
SIM_EVENTS=${DEMO_EVENTS:-500000}
# The shopper DAG's default (auto) searches 12 Hyperopt trials the first time it trains on a
# data set (about 40 minutes at 5,000 shoppers on 2 cores); the demo trains the defaults instead.
SHOPPER_TUNE=${DEMO_SHOPPER_TUNE:-0}
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

# run_step LABEL LOG CMD...: the command's output goes to LOG; a spinner shows elapsed time.
run_step() {
  local label=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$! t0=$SECONDS frames='|/-\' i=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ -t 1 ]; then
      printf '\r  %s %s  %dm%02ds ' "${frames:i++%4:1}" "$label" $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
    fi
    sleep 1
  done
  if wait "$pid"; then
    printf '\r  done  %s  %dm%02ds\n' "$label" $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
  else
    printf '\r  FAILED %s (log: %s)\n' "$label" "$log"
    tail -n 40 "$log"
    exit 1
  fi
}

# start NAME CMD...: a background process in its own session, PID in $RUN_DIR/NAME.pid
start() {
  local name=$1; shift
  if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    echo "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return
  fi
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  echo "  started $name (pid $!, log $LOG_DIR/$name.log)"
}

# The DAGs that run on a schedule or on landed photos (the bootstrap stays a manual trigger).
SCHEDULED_DAGS="lookalike_catalog_refresh lookalike_catalog_fresh lookalike_shopper_model lookalike_train_and_promote"

unpause_scheduled() {  # once the dag-processor has parsed them; no past run is started
  local deadline=$((SECONDS + 240)) dag
  for dag in $SCHEDULED_DAGS; do
    until airflow dags unpause "$dag" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { echo "  $dag is not parsed yet: unpause it in the UI"; return 1; }
      sleep 3
    done
    echo "  $dag unpaused"
  done
}

wait_http() {  # wait_http URL SECONDS
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "  $1 did not answer in $2 s"; return 1; }
    sleep 1
  done
}

say "Airflow metadata database ($AIRFLOW_HOME)"
run_step "airflow db migrate" "$LOG_DIR/airflow-migrate.log" airflow db migrate

if lookalike bundle show 2>/dev/null | grep -q '"production": null'; then
  say "1/3 bootstrap DAG: ingest Fashion-MNIST ($LIMIT per split), train $EPOCHS epochs, promote"
  run_step "airflow dags test lookalike_bootstrap" "$LOG_DIR/dag-bootstrap.log" \
    airflow dags test lookalike_bootstrap -c "{\"limit\": $LIMIT, \"epochs\": $EPOCHS}"
else
  say "1/3 a production bundle exists: ingest again and re-index incrementally"
  run_step "lookalike ingest fashion-mnist" "$LOG_DIR/ingest.log" lookalike ingest fashion-mnist --limit "$LIMIT"
  run_step "lookalike index update" "$LOG_DIR/index-update.log" lookalike index update
fi

say "2/3 shopper DAG: simulated shoppers ($SIM_USERS users, $SIM_EVENTS events) -> MF on Spark (tune: $SHOPPER_TUNE) -> gate"
run_step "airflow dags test lookalike_shopper_model" "$LOG_DIR/dag-shopper.log" \
  airflow dags test lookalike_shopper_model \
  -c "{\"sim_users\": $SIM_USERS, \"sim_events\": $SIM_EVENTS, \"tune\": \"$SHOPPER_TUNE\"}"

say "3/3 services on 127.0.0.1"
start airflow-api-server airflow api-server -H 127.0.0.1 -p "$AIRFLOW_PORT"
start airflow-scheduler airflow scheduler --skip-serve-logs
start airflow-dag-processor airflow dag-processor
start airflow-triggerer airflow triggerer --skip-serve-logs
start mlflow-ui mlflow ui --backend-store-uri "sqlite:///$LOOKALIKE_HOME/mlflow/mlflow.db" \
  --default-artifact-root "$LOOKALIKE_HOME/mlflow/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT"
start service lookalike serve --host 127.0.0.1 --port "$LOOKALIKE_SERVE_PORT"
run_step "waiting for the service to load its bundles" "$LOG_DIR/wait-service.log" \
  wait_http "$LOOKALIKE_SERVE_URL/readyz" 180
run_step "waiting for the Airflow API server" "$LOG_DIR/wait-airflow.log" \
  wait_http "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 180
run_step "waiting for the MLflow UI" "$LOG_DIR/wait-mlflow.log" wait_http "http://127.0.0.1:$MLFLOW_PORT/" 120
run_step "unpausing the scheduled DAGs" "$LOG_DIR/unpause.log" unpause_scheduled

mapfile -t CRON < <(python -c "from lookalike.config import get_settings as g; s = g()
print(s.refresh_schedule, s.shopper_schedule, s.train_schedule, sep='\n')")
password=$(python -c "import json,sys; print(json.load(open(sys.argv[1])).get('admin', '?'))" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" 2>/dev/null || echo '?')
user=$(python -c "import sys; n = int(sys.argv[1]); print(f'u{42 % n:0{len(str(n))}d}')" "$SIM_USERS")
cat <<MSG

  Recommendation service  $LOOKALIKE_SERVE_URL/            (API docs: $LOOKALIKE_SERVE_URL/docs)
  Airflow                 http://127.0.0.1:$AIRFLOW_PORT/     login: admin / $password
  MLflow                  http://127.0.0.1:$MLFLOW_PORT/

  Try:  curl -s '$LOOKALIKE_SERVE_URL/v1/items/fm-test-00000/similar?k=5'
        curl -s '$LOOKALIKE_SERVE_URL/v1/users/$user/recommendations?k=5'

  Schedules are live (cron, UTC), each first runs at its next time, not now:
    lookalike_catalog_refresh '${CRON[0]}'   lookalike_shopper_model '${CRON[1]}'
    lookalike_train_and_promote '${CRON[2]}'   (the bootstrap is manual)
  Photos landing in ${LOOKALIKE_STORE_URI:-$LOOKALIKE_HOME}/landing/<category>/ are served within
  about a minute: lookalike_catalog_fresh runs on each (docs/freshness.md).
  Pause one:  airflow dags pause lookalike_train_and_promote   (or its toggle in the UI)

  Logs in $LOG_DIR.  Stop everything this started:  make stop
MSG
