"""The offline classroom's figures: how big the wheelhouse is, how long an instructor waits for
it (first build, then bringing it up to date), and how long a laptop waits to install from it
with no network, then for notebook 00.

    .venv/bin/python benchmarks/bench_wheelhouse.py [--dir DIR] [--no-servers]
                                                    [--skip-install-sh]

Builds with `workbench wheelhouse --with-labelstudio --with-phoenix` (this needs the package
index; --no-servers leaves the two servers out), installs with
`scripts/setup.sh --from` into a copy of the checkout and with the folder's `install.sh` into a
new virtualenv, each inside `unshare -n` (no network at all) where the machine allows it. Wall
time depends on what else runs on the machine, so the CPU time of each step (its processes,
user + system) is printed beside it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(label: str, cmd: list[str], **kwargs) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(f"{label:<42} {wall:7.1f} s wall  {cpu:7.1f} s CPU", flush=True)
    return wall


def disk_bytes(folder: Path) -> int:
    """Bytes on disk, each hard-linked file once."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        stat = path.stat()
        if path.is_file() and stat.st_ino not in seen:
            seen.add(stat.st_ino)
            total += stat.st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to build (default: a temporary folder)")
    parser.add_argument("--no-servers", action="store_true",
                        help="without Label Studio and Arize Phoenix")
    parser.add_argument("--skip-install-sh", action="store_true")
    args = parser.parse_args()

    from workbench.wheelhouse import read_manifest

    work = Path(tempfile.mkdtemp(prefix="bench-wheelhouse-"))
    folder = Path(args.dir) if args.dir else work / "wheelhouse"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHONPATH", "VIRTUAL_ENV"))}
    offline = ["unshare", "-n"] if shutil.which("unshare") and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True).returncode == 0 else []
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; installs "
          + ("inside `unshare -n` (no network)" if offline else "with pip's index off"))
    build = [sys.executable, "-m", "workbench.cli", "wheelhouse", str(folder)]
    if not args.no_servers:
        build += ["--with-labelstudio", "--with-phoenix"]
    build_env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        timed("build" + (" (reusing DIR)" if args.dir else ""), build, env=build_env)
        timed("bring up to date (nothing changed)", build, env=build_env)
        manifest = read_manifest(folder)
        parts = [f"workbench {manifest['count']} wheels, {manifest['bytes'] / 1e6:,.0f} MB"]
        for key in ("labelstudio", "phoenix"):
            side = manifest.get(key)
            if side:
                parts.append(f"{key} {side['count']} wheels, {side['bytes'] / 1e6:,.0f} MB")
        print(f"wheelhouse: {'; '.join(parts)}; on disk {disk_bytes(folder) / 1e6:,.0f} MB "
              "(shared wheels hard-linked)")

        checkout = work / "checkout"
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True).stdout.split(b"\0")
        for name in filter(None, names):
            source = ROOT / os.fsdecode(name)
            if source.is_file():
                (checkout / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, checkout / os.fsdecode(name))
        timed("setup.sh --from (offline)", [*offline, "bash", "scripts/setup.sh", "--from",
                                            str(folder), "--no-tour"], cwd=checkout, env=env)
        timed("notebook 00 on it", [*offline, str(checkout / ".venv/bin/workbench"), "tour",
                                    str(work / "tour"), "--only", "00"], cwd=work, env=env)
        if not args.skip_install_sh:
            timed("install.sh into a new virtualenv (offline)",
                  [*offline, "bash", str(folder / "install.sh"), str(work / "venv")],
                  cwd=work, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
