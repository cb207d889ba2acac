# Shared by demo.sh and stop.sh (sourced): where state lives and how Airflow is configured.
# Everything binds to 127.0.0.1; ports can be moved with the variables below.
export LOOKALIKE_HOME=${LOOKALIKE_HOME:-$PWD/.lookalike}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$LOOKALIKE_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$PWD/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}
export AIRFLOW_CONN_SPARK_DEFAULT=${AIRFLOW_CONN_SPARK_DEFAULT:-'{"conn_type": "spark", "host": "local[2]"}'}
export AIRFLOW_PORT=${AIRFLOW_PORT:-8080}
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
export MLFLOW_PORT=${MLFLOW_PORT:-5000}
export LOOKALIKE_SERVE_PORT=${LOOKALIKE_SERVE_PORT:-8000}
export LOOKALIKE_SERVE_URL=${LOOKALIKE_SERVE_URL:-http://127.0.0.1:$LOOKALIKE_SERVE_PORT}
export SPARK_LOCAL_IP=127.0.0.1
# the project's commands (airflow, lookalike, spark-submit) first, as `make` has them
if [ -d "$PWD/.venv/bin" ]; then
  case ":$PATH:" in *":$PWD/.venv/bin:"*) ;; *) export PATH=$PWD/.venv/bin:$PATH ;; esac
fi
RUN_DIR=$LOOKALIKE_HOME/run      # one PID file per process `make demo` started
LOG_DIR=$LOOKALIKE_HOME/logs
mkdir -p "$RUN_DIR" "$LOG_DIR"
