#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine for lookalike:
#   apt packages -> .venv from requirements.lock -> Horovod wheel (built once, cached) -> lookalike (editable).
# A stamp over the lock and this script skips the pip work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${LOOKALIKE_PYTHON:-python3.11}
VENV=$PWD/.venv
LOCK=requirements.lock
HOROVOD_VERSION=0.28.1
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/lookalike/wheels
STAMP=$VENV/.lookalike-setup

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- apt: only what is missing -------------------------------------------------------------
need=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v "$PY" >/dev/null 2>&1 || need+=(python3 python3-venv python3-dev)
# the web page's browser test drives Debian's chromium (Playwright downloads nothing)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
# a compose client (no engine needed) so the tests validate docker-compose.yaml: Debian's
# docker-compose unless `docker compose` or docker-compose is already there
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  need+=(docker-compose)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- venv from the lock --------------------------------------------------------------------
want=$(cat "$LOCK" pyproject.toml "$0" | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/lookalike" ]; then
  say "environment up to date ($VENV)"
  exit 0
fi
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
"$VENV/bin/pip" install -q --upgrade pip wheel setuptools
say "installing $LOCK (first time: a few minutes)"
"$VENV/bin/pip" install -q -r "$LOCK"

# --- Horovod: built from the sdist against the installed TensorFlow, cached as a wheel -------
whl=$(ls "$WHEELS"/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$whl" ]; then
  say "building Horovod $HOROVOD_VERSION (once per machine, ~5 min; cached in $WHEELS)"
  src=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$src"
  tar -xzf "$src/horovod-$HOROVOD_VERSION.tar.gz" -C "$src"
  ops="$src/horovod-$HOROVOD_VERSION/horovod/tensorflow/xla_mpi_ops.cc"
  # Everything in this file is GPU-only; unguarded it fails on a missing highwayhash header (STACK.md).
  sed -i 's/^#if TENSORFLOW_VERSION >= 2006000000$/#if TENSORFLOW_VERSION >= 2006000000 \&\& HAVE_GPU/' "$ops"
  grep -q 'TENSORFLOW_VERSION >= 2006000000 && HAVE_GPU' "$ops" || { echo "Horovod patch did not apply" >&2; exit 1; }
  mkdir -p "$WHEELS"
  (cd "$src/horovod-$HOROVOD_VERSION" &&
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 MAKEFLAGS=-j2 \
    PATH="$VENV/bin:$PATH" \
    "$VENV/bin/pip" wheel -q --no-deps --no-build-isolation -w "$WHEELS" . >"$src/build.log" 2>&1) ||
    { tail -n 40 "$src/build.log" >&2; exit 1; }
  rm -rf "$src"
  whl=$(ls "$WHEELS"/horovod-"$HOROVOD_VERSION"-*.whl | head -n1)
fi
"$VENV/bin/pip" install -q --no-deps "$whl"

# --- the package itself --------------------------------------------------------------------
"$VENV/bin/pip" install -q --no-deps -e .
# pyspark and pyspark-client share site-packages/pyspark; only the full wheel ships spark-submit + JARs.
[ -x "$VENV/bin/spark-submit" ] && ls "$VENV"/lib/python3.11/site-packages/pyspark/jars/spark-core_* >/dev/null \
  || { echo "pyspark install is missing spark-submit or its JARs" >&2; exit 1; }
"$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check >&2; exit 1; }
echo "$want" >"$STAMP"
say "done: $VENV ($(du -sh "$VENV" | cut -f1))"
