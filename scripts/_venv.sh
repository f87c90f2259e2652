# Sourced by scripts/demo.sh and scripts/test.sh: the project's .venv (created with
# $PYTHON, else python3.11, else python3; $PY names the interpreter for other venvs).
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PY"
  "$PY" -m venv .venv
fi
