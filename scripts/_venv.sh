# Sourced by scripts/demo.sh and scripts/test.sh: the project's .venv (created with
# $PYTHON, else python3.11, else python3; $PY names the interpreter for other venvs).
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "asyncmq-cloud needs Python 3.11 or newer; $PY is $("$PY" -V 2>&1). Set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PY"
  "$PY" -m venv .venv
fi
