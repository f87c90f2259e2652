#!/usr/bin/env bash
# The project's test command, fastest failure first:
#   1. install (.venv, asyncmq-cloud[dev]);
#   2. ruff, mypy (strict) and the tests that need no service (tests/unit and the pure checks);
#   3. every service started once, in the background (scripts/services.py up); the services'
#      downloads and the tools (checkov, the Kubernetes validator, Chromium + playwright-core)
#      install in the background from step 2 on;
#   4. the suite on pytest-xdist workers that share those services through the variables the
#      test plugin honours.
# Extra arguments go to the last pytest run. PYTEST_WORKERS sets the worker count (default 5:
# the tests mostly wait on services and timers, so more workers than cores pays off here).
set -euo pipefail
cd "$(dirname "$0")/.."

START=$(date +%s)
PHASE_START=$START
PHASES=()
phase_done() {
  local now
  now=$(date +%s)
  PHASES+=("$1: $((now - PHASE_START)) s")
  PHASE_START=$now
}
report_phases() {
  echo "== phase times (total $(($(date +%s) - START)) s)"
  local line
  for line in "${PHASES[@]}"; do echo "   $line"; done
}

. scripts/_venv.sh
echo "== installing asyncmq-cloud[dev]"
venv_install .venv/bin/python -e '.[dev]'
phase_done install

# The tools the infrastructure and browser tests use install in the background from here on,
# while lint, types and the first tests run; the suite waits for them.
install_tools() {
  echo "== tools: checkov (its own venv: its pins differ from aiobotocore's)"
  CHECKOV_VERSION=3.3.30
  if ! .cache/tools/checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    "$PY" -m venv .cache/tools/checkov
    venv_install .cache/tools/checkov/bin/python "checkov==$CHECKOV_VERSION"
  fi

  npm_tree() {  # npm_tree DIR LOCKDIR PROBE: npm ci of LOCKDIR's lock into DIR unless already there
    local dir=$1 lockdir=$2 probe=$3
    if [ ! -e "$dir/$probe" ] || ! cmp -s "$lockdir/package-lock.json" "$dir/package-lock.json"; then
      rm -rf "$dir" && mkdir -p "$dir"
      cp "$lockdir/package.json" "$lockdir/package-lock.json" "$dir/"
      (cd "$dir" && npm ci --silent --no-audit --no-fund) || echo "   npm ci of $lockdir failed: its tests will say so"
    fi
  }
  echo "== tools: Kubernetes/KEDA schema validator and playwright-core (npm ci, pinned lock files)"
  if command -v npm >/dev/null 2>&1; then
    npm_tree .cache/tools/k8s-validate deploy/kubernetes/validate node_modules
    npm_tree .cache/tools/browser tests/browser node_modules/playwright-core
  else
    echo "   npm not found: tests/test_kubernetes.py and tests/test_dashboard.py will say so"
  fi

  echo "== tools: headless Chromium"
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
        >.cache/chromium-install.log 2>&1 || echo "   chromium install failed (log: .cache/chromium-install.log)"
    else
      echo "   /usr/bin/chromium missing and not root: apt-get install chromium chromium-driver; tests/test_dashboard.py will say so"
    fi
  fi
}
mkdir -p .cache/tools .cache/services
TOOLS_LOG=.cache/tools/install.log
install_tools >"$TOOLS_LOG" 2>&1 &
TOOLS_PID=$!
# The services' downloads (LocalStack's and MiniStack's pinned venvs, Kafka and ElasticMQ from
# Maven, redis-server from apt) run in the background too (decision 61); no service starts
# before the lint and the first tests have passed.
PREPARE_LOG=.cache/services/prepare.log
.venv/bin/python scripts/services.py prepare redis localstack ministack elasticmq kafka moto >"$PREPARE_LOG" 2>&1 &
PREPARE_PID=$!
SERVICES_PID=
cleanup() {  # on any exit: no installer or service outlives the run
  kill -TERM "$TOOLS_PID" "$PREPARE_PID" 2>/dev/null || true
  if [ -n "$SERVICES_PID" ]; then
    kill -TERM "$SERVICES_PID" 2>/dev/null || true
    wait "$SERVICES_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "== ruff"
.venv/bin/ruff check asyncmq_cloud tests scripts benchmarks
.venv/bin/ruff format --check asyncmq_cloud tests scripts benchmarks
echo "== mypy (strict)"
.venv/bin/mypy
phase_done "ruff + mypy"

# Tests that need no service: they fail in seconds, before any service is prepared.
NO_SERVICE_TESTS=()
for path in tests/unit tests/test_architecture.py tests/test_drift_basebackend.py tests/test_docs.py; do
  [ -e "$path" ] && NO_SERVICE_TESTS+=("$path")
done
echo "== pytest: tests that need no service"
.venv/bin/python -m pytest -q -m "not (redis or moto or localstack or ministack or elasticmq or kafka)" "${NO_SERVICE_TESTS[@]}"
phase_done "no-service tests"

WORKERS=${PYTEST_WORKERS:-5}
MOTOS=()
for _ in $(seq "$WORKERS"); do MOTOS+=(moto); done
echo "== services: downloads (in the background since the lint)"
wait "$PREPARE_PID" || echo "   preparing failed (exit $?); starting them retries and says why"
cat "$PREPARE_LOG"
echo "== services: redis, localstack, ministack, elasticmq, kafka and $WORKERS moto servers (one per pytest worker: moto serves one request at a time), started once, in the background"
SERVICES_ENV=.cache/services/test-session.env
SERVICES_LOG=.cache/services/up.log
.venv/bin/python scripts/services.py up --env-file "$SERVICES_ENV" redis localstack ministack elasticmq kafka "${MOTOS[@]}" \
  >"$SERVICES_LOG" 2>&1 &
SERVICES_PID=$!


echo "== waiting for the services"
while [ ! -s "$SERVICES_ENV" ]; do
  if ! kill -0 "$SERVICES_PID" 2>/dev/null; then
    echo "   the services did not start:"
    cat "$SERVICES_LOG"
    exit 1
  fi
  sleep 1
done
cat "$SERVICES_LOG"
echo "== tools (installed in the background since the lint)"
tools_status=0
wait "$TOOLS_PID" || tools_status=$?
cat "$TOOLS_LOG"
if [ "$tools_status" != 0 ]; then
  echo "   installing the tools failed (exit $tools_status)"
  exit 1
fi
set -a
. "$SERVICES_ENV"
set +a
# The moto servers go to the test plugin under their own name: botocore would send every client
# that has no endpoint of its own to AWS_ENDPOINT_URL.
export ASYNCMQ_TEST_MOTO_URLS=$AWS_ENDPOINT_URL
unset AWS_ENDPOINT_URL
phase_done "services and tools (beyond the lint and first tests)"

# The suite on pytest-xdist workers; the tests marked `first` (the longest: 2,000 jobs raced by
# four worker processes through MiniStack's DynamoDB) are collected first, so one worker starts
# them at once instead of leaving them to become the tail of the run.
status=0
echo "== pytest: the suite on $WORKERS workers"
# The tests that need no service ran above: the suite leaves them out (tests/conftest.py).
RAN_WITHOUT_SERVICES=$(IFS=,; echo "${NO_SERVICE_TESTS[*]}")
ASYNCMQ_TEST_RAN_WITHOUT_SERVICES=$RAN_WITHOUT_SERVICES \
  .venv/bin/python -m pytest -n "$WORKERS" --dist worksteal --durations=15 "$@" || status=$?
phase_done "suite"
report_phases
exit "$status"
