#!/usr/bin/env bash
# The first command: installs asyncmq-cloud with the embedded AWS endpoint (moto) into .venv
# and runs `asyncmq-cloud demo`. No AWS account, Docker or running service needed.
# Extra arguments go to the demo (`bash scripts/demo.sh --backend dynamodb`).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
echo "== installing asyncmq-cloud[demo] into .venv"
venv_install .venv/bin/python -e '.[demo]'
echo "== asyncmq-cloud demo $*"
exec .venv/bin/asyncmq-cloud demo "$@"
