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

# venv_install PYTHON ARGS...: `uv pip install ARGS` into PYTHON's environment (uv: an order of
# magnitude faster than pip on a fresh clone, decision 61), pip itself where uv is unavailable
# or fails. ASYNCMQ_CLOUD_NO_UV=1 always uses pip.
venv_install() {
  local python=$1
  shift
  if [ -z "${ASYNCMQ_CLOUD_NO_UV:-}" ]; then
    if [ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"; then
      # Bytecode compiled at install for the project's venv only: its modules are imported by
      # hundreds of test processes; a tool venv (checkov) runs once and compiles what it imports.
      local compile=()
      [ "$python" = .venv/bin/python ] && compile=(--compile-bytecode)
      .venv/bin/uv pip install --quiet ${compile[@]+"${compile[@]}"} --python "$python" "$@" && return 0
      echo "   uv pip install failed; installing with pip" >&2
    fi
  fi
  "$python" -m pip install --quiet --disable-pip-version-check "$@"
}
