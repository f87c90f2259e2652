#!/usr/bin/env bash
# The project's test command: installs everything, prepares the real services,
# runs lint, type checks and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
echo "== installing asyncmq-cloud[dev]"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

echo "== tools: checkov (its own venv: its pins differ from aiobotocore's)"
CHECKOV_VERSION=3.3.30
if ! .cache/tools/checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  "$PY" -m venv .cache/tools/checkov
  .cache/tools/checkov/bin/python -m pip install --quiet --upgrade pip
  .cache/tools/checkov/bin/python -m pip install --quiet "checkov==$CHECKOV_VERSION"
fi

echo "== tools: Kubernetes/KEDA schema validator (npm ci, pinned by deploy/kubernetes/validate/package-lock.json)"
K8S_TOOLS=.cache/tools/k8s-validate
if command -v npm >/dev/null 2>&1; then
  if [ ! -d "$K8S_TOOLS/node_modules" ] || ! cmp -s deploy/kubernetes/validate/package-lock.json "$K8S_TOOLS/package-lock.json"; then
    rm -rf "$K8S_TOOLS" && mkdir -p "$K8S_TOOLS"
    cp deploy/kubernetes/validate/package.json deploy/kubernetes/validate/package-lock.json "$K8S_TOOLS/"
    (cd "$K8S_TOOLS" && npm ci --silent --no-audit --no-fund)
  fi
else
  echo "   npm not found: tests/test_kubernetes.py will say so"
fi

echo "== tools: headless Chromium + playwright-core (npm ci, pinned by tests/browser/package-lock.json)"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p .cache
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >.cache/chromium-install.log 2>&1 || echo "   chromium install failed (log: .cache/chromium-install.log)"
  else
    echo "   /usr/bin/chromium missing and not root: apt-get install chromium chromium-driver; tests/test_dashboard.py will say so"
  fi
fi
BROWSER_TOOLS=.cache/tools/browser
if command -v npm >/dev/null 2>&1; then
  if [ ! -d "$BROWSER_TOOLS/node_modules/playwright-core" ] || ! cmp -s tests/browser/package-lock.json "$BROWSER_TOOLS/package-lock.json"; then
    rm -rf "$BROWSER_TOOLS" && mkdir -p "$BROWSER_TOOLS"
    cp tests/browser/package.json tests/browser/package-lock.json "$BROWSER_TOOLS/"
    (cd "$BROWSER_TOOLS" && npm ci --silent --no-audit --no-fund) \
      || echo "   npm ci of tests/browser failed: tests/test_dashboard.py will say so"
  fi
else
  echo "   npm not found: tests/test_dashboard.py will say so"
fi

echo "== preparing real services (redis, moto, localstack, elasticmq, kafka)"
.venv/bin/python scripts/services.py prepare all

echo "== ruff"
.venv/bin/ruff check asyncmq_cloud tests scripts
.venv/bin/ruff format --check asyncmq_cloud tests scripts
echo "== mypy (strict)"
.venv/bin/mypy

echo "== pytest"
exec .venv/bin/python -m pytest "$@"
