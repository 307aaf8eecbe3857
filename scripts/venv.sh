# Sourced by the scripts: makes .venv with Python 3.11+ and installs changegate with its dev extras.
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python=$candidate
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "changegate needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
echo "== installing changegate and its dependencies into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# A target kind packaged outside changegate (tests/kinds/extkind), installed through its entry
# point as a third party's would be: the tests prove a kind needs no change to changegate.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e tests/kinds/extkind
