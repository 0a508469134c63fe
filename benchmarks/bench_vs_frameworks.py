"""The same 1,000-item evaluation in the workbench, inspect_ai and promptfoo, as whole processes.

Each item is one call to a mock model that waits 50 ms and echoes its input, at concurrency 32,
scored by exact match against the expected answer (the input, so every tool should score 100%).
The ideal is items × latency / concurrency = 1.56 s. Each tool runs as a fresh process timed from
outside (``time.perf_counter`` around ``subprocess.run``: interpreter / Node start-up, imports,
dataset building, the run, scoring and writing results all included), a few rounds, median
reported, alongside the tool's own reported eval time where it gives one.

1. **workbench** — a small script in a fresh ``.venv`` interpreter: temp project, dataset of
   1,000 items, prompt ``{{ input }}``, ``start_run(model="fake/echo:latency=50ms",
   concurrency=32, cache=False, progress=False, scorers=[exact_match()])``.
2. **inspect_ai** — in its own venv (never this project's): a ``Task`` of 1,000 ``Sample``s,
   ``generate()`` and the ``exact()`` scorer, on the built-in mock model (``mockllm/model``) given
   an async ``custom_outputs`` function that echoes after ``asyncio.sleep(0.05)`` (by itself it
   answers instantly with a fixed text); ``max_connections=32``, ``max_samples=32``. The mock counts tokens with tiktoken,
   which downloads its file: litellm ships the same cache files, so they are copied to a temp
   folder and ``TIKTOKEN_CACHE_DIR`` points there.
3. **promptfoo** — the npm package in its own folder: a generated config with a custom
   JavaScript provider that waits 50 ms (``setTimeout``) and echoes the prompt, 1,000 tests with
   an ``equals`` assertion, ``maxConcurrency: 32``, ``--no-cache``, telemetry and update checks off.

A framework whose venv / npm folder is missing is skipped with the install commands. Nothing
reaches the network: every child runs with telemetry off and, where ``unshare`` allows it, in a
network namespace of its own with only loopback up (``--no-netns`` turns that off).

    .venv/bin/python benchmarks/bench_vs_frameworks.py [--rounds 3] \
        [--inspect-venv /tmp/bench-venvs/inspect] [--promptfoo-dir /tmp/bench-venvs/promptfoo]

(or ``BENCH_INSPECT_VENV`` / ``BENCH_PROMPTFOO_DIR``). Install the two frameworks with:

    python3 -m venv /tmp/bench-venvs/inspect && /tmp/bench-venvs/inspect/bin/pip install inspect-ai
    mkdir -p /tmp/bench-venvs/promptfoo && cd /tmp/bench-venvs/promptfoo && npm install promptfoo

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ITEMS = 1000
LATENCY_S = 0.05
CONCURRENCY = 32
IDEAL_S = ITEMS * LATENCY_S / CONCURRENCY
ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"inspect_ai": 0.25, "promptfoo": 0.8}  # ours ÷ theirs, from the issue

INSTALL = {
    "inspect_ai": "python3 -m venv {path} && {path}/bin/pip install inspect-ai",
    "promptfoo": "mkdir -p {path} && cd {path} && npm install promptfoo",
}

# -- the three children ----------------------------------------------------------------------------

WORKBENCH_SCRIPT = r'''
import json, sys, time
import pandas as pd
import workbench
from workbench.data.versioning import save_version
from workbench.evaluate import exact_match
from workbench.prompts import PromptVersion, save_prompt
from workbench.runs import start_run

folder, items, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
project = workbench.init_project(folder)
rows = [{"id": f"b{i:04d}", "input": f"message number {i}", "expected": f"message number {i}",
         "split": "validation"} for i in range(items)]
save_version(project, "bench", pd.DataFrame(rows), transform="import")
save_prompt(project, "echo", PromptVersion(template="{{ input }}", description="benchmark"))
run = start_run(project, "echo", dataset="bench", model="fake/echo:latency=50ms",
                concurrency=concurrency, cache=False, progress=False, scorers=[exact_match()])
print(json.dumps({"own_s": run.totals["wall_s"], "done": run.totals["done"],
                  "score": run.totals["scores"].get("exact_match")}))
'''

INSPECT_SCRIPT = r'''
import asyncio, json, sys
from datetime import datetime
from inspect_ai import Task, eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig, ModelOutput, get_model
from inspect_ai.scorer import exact
from inspect_ai.solver import generate

log_dir, items, concurrency, latency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


async def slow_echo(input, tools, tool_choice, config):
    """Custom outputs for the built-in mock: wait like a real model, echo the last message."""
    await asyncio.sleep(latency)
    return ModelOutput.from_content(model="mockllm", content=input[-1].text)


model = get_model("mockllm/model", custom_outputs=slow_echo,
                  config=GenerateConfig(max_connections=concurrency))
samples = [Sample(input=f"message number {i}", target=f"message number {i}") for i in range(items)]
task = Task(dataset=samples, solver=generate(), scorer=exact())
log = inspect_eval(task, model=model, max_connections=concurrency, max_samples=concurrency,
                   log_dir=log_dir, display="none")[0]
stats = log.stats
own = (datetime.fromisoformat(stats.completed_at)
       - datetime.fromisoformat(stats.started_at)).total_seconds()
metrics = log.results.scores[0].metrics if log.results and log.results.scores else {}
score = next(iter(metrics.values())).value if metrics else None
print(json.dumps({"own_s": own, "done": log.results.completed_samples if log.results else 0,
                  "score": score, "status": log.status}))
'''

PROMPTFOO_PROVIDER = r'''
// Waits like a real model, then echoes the prompt.
class SlowEcho {
  constructor(options) { this.providerId = (options && options.id) || 'slow-echo'; }
  id() { return this.providerId; }
  async callApi(prompt) {
    await new Promise((resolve) => setTimeout(resolve, LATENCY_MS));
    return { output: prompt };
  }
}
module.exports = SlowEcho;
'''


# -- helpers ----------------------------------------------------------------------------------------

def netns_prefix(enabled: bool) -> list[str]:
    """Run a child in a network namespace of its own (loopback only) when the kernel allows it."""
    if not enabled or not shutil.which("unshare") or not shutil.which("ip"):
        return []
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"],
                           capture_output=True)
    if probe.returncode:
        return []
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "netns"]


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "INSPECT_DISABLE_UPDATE_CHECK": "1", "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None
          ) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, proc


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the child's output")


def tiktoken_cache(into: Path) -> Path | None:
    """Copy the tiktoken cache files litellm ships (named by the SHA-1 of their URL) into a folder."""
    found = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; "
         "print(u.find_spec('litellm').submodule_search_locations[0])"],
        capture_output=True, text=True)
    if found.returncode:
        return None
    tokenizers = Path(found.stdout.strip()) / "litellm_core_utils" / "tokenizers"
    into.mkdir(parents=True, exist_ok=True)
    copied = 0
    for file in tokenizers.glob("*"):
        if re.fullmatch(r"[0-9a-f]{40}", file.name):
            shutil.copy(file, into / file.name)
            copied += 1
    return into if copied else None


# -- one round of each tool -------------------------------------------------------------------------

def run_workbench(base: Path, prefix: list[str], n: int) -> dict:
    script = base / "workbench_child.py"
    script.write_text(WORKBENCH_SCRIPT)
    python = ROOT / ".venv" / "bin" / "python"
    python = python if python.exists() else Path(sys.executable)
    wall, proc = timed([*prefix, str(python), str(script), str(base / f"project-{n}"),
                        str(ITEMS), str(CONCURRENCY)], offline_env(), cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return {"wall_s": wall, **last_json(proc.stdout)}


def run_inspect(base: Path, prefix: list[str], n: int, venv: Path, tiktoken_dir: Path | None
                ) -> dict:
    script = base / "inspect_child.py"
    script.write_text(INSPECT_SCRIPT)
    extra = {"INSPECT_LOG_DIR": str(base / f"inspect-logs-{n}")}
    if tiktoken_dir:
        extra["TIKTOKEN_CACHE_DIR"] = str(tiktoken_dir)
    wall, proc = timed([*prefix, str(venv / "bin" / "python"), str(script),
                        str(base / f"inspect-logs-{n}"), str(ITEMS), str(CONCURRENCY),
                        str(LATENCY_S)], offline_env(extra), cwd=base)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return {"wall_s": wall, **last_json(proc.stdout)}


def write_promptfoo_config(base: Path) -> Path:
    provider = base / "slow_echo_provider.js"
    provider.write_text(PROMPTFOO_PROVIDER.replace("LATENCY_MS", str(int(LATENCY_S * 1000))))
    lines = ["description: workbench bench_vs_frameworks",
             "prompts:", "  - '{{input}}'",
             "providers:", f"  - id: 'file://{provider}'",
             "evaluateOptions:", f"  maxConcurrency: {CONCURRENCY}", "  cache: false",
             "tests:"]
    for i in range(ITEMS):
        text = f"message number {i}"
        lines += ["  - vars:", f"      input: '{text}'",
                  "    assert:", "      - type: equals", f"        value: '{text}'"]
    config = base / "promptfooconfig.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def run_promptfoo(base: Path, prefix: list[str], n: int, folder: Path, config: Path) -> dict:
    out = base / f"promptfoo-out-{n}.json"
    extra = {"PROMPTFOO_CONFIG_DIR": str(base / "promptfoo-home"),
             "PROMPTFOO_CACHE_ENABLED": "false"}
    cmd = [str(folder / "node_modules" / ".bin" / "promptfoo"), "eval", "-c", str(config),
           "--no-cache", "--max-concurrency", str(CONCURRENCY), "--no-table", "--no-progress-bar",
           "-o", str(out)]
    wall, proc = timed([*prefix, *cmd], offline_env(extra), cwd=base)
    if not out.exists():
        raise RuntimeError((proc.stdout + proc.stderr)[-3000:])
    result = {"wall_s": wall, "own_s": None, "done": None, "score": None}
    data = json.loads(out.read_text())
    results = data.get("results", {})
    stats = results.get("stats", {})
    rows = results.get("results", [])
    result["done"] = len(rows)
    if rows:
        result["score"] = sum(1 for r in rows if r.get("success")) / len(rows)
    duration = stats.get("durationMs")
    if duration is None:
        match = re.search(r"Duration:\s*([\d.]+)s", proc.stdout + proc.stderr)
        duration = float(match.group(1)) * 1000 if match else None
    result["own_s"] = duration / 1000 if duration is not None else None
    return result


# -- main -------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inspect-venv", type=Path, default=Path(
        os.environ.get("BENCH_INSPECT_VENV", "/tmp/bench-venvs/inspect")))
    parser.add_argument("--promptfoo-dir", type=Path, default=Path(
        os.environ.get("BENCH_PROMPTFOO_DIR", "/tmp/bench-venvs/promptfoo")))
    parser.add_argument("--no-netns", action="store_true",
                        help="don't run children in a network namespace of their own")
    args = parser.parse_args()

    load = os.getloadavg()
    prefix = netns_prefix(not args.no_netns)
    print(f"{ITEMS} items, 50 ms mock model, concurrency {CONCURRENCY}, exact match; "
          f"ideal = {ITEMS} x {LATENCY_S} / {CONCURRENCY} = {IDEAL_S:.2f} s")
    print(f"whole processes timed from outside, median of {args.rounds}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; network: "
          f"{'own namespace, loopback only' if prefix else 'not isolated (telemetry off)'}")

    tools: dict[str, callable] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp:
        base = Path(tmp)
        tools["workbench"] = lambda n: run_workbench(base, prefix, n)
        if (args.inspect_venv / "bin" / "python").exists():
            tik = tiktoken_cache(base / "tiktoken")
            tools["inspect_ai"] = lambda n: run_inspect(base, prefix, n, args.inspect_venv, tik)
        else:
            print(f"  skip inspect_ai: no venv at {args.inspect_venv}; install with: "
                  + INSTALL["inspect_ai"].format(path=args.inspect_venv))
        if (args.promptfoo_dir / "node_modules" / ".bin" / "promptfoo").exists():
            config = write_promptfoo_config(base)
            tools["promptfoo"] = lambda n: run_promptfoo(base, prefix, n, args.promptfoo_dir,
                                                         config)
        else:
            print(f"  skip promptfoo: no node_modules/.bin/promptfoo under {args.promptfoo_dir}; "
                  "install with: " + INSTALL["promptfoo"].format(path=args.promptfoo_dir))

        results: dict[str, list[dict]] = {name: [] for name in tools}
        for n in range(args.rounds):  # interleaved, so drifting load hits every tool alike
            for name, fn in tools.items():
                try:
                    results[name].append(fn(n))
                except Exception as exc:  # noqa: BLE001 - report and go on with the others
                    print(f"  {name} round {n + 1} failed: {str(exc)[-1500:]}")

    medians: dict[str, float] = {}
    for name, runs in results.items():
        if not runs:
            continue
        walls = [r["wall_s"] for r in runs]
        med = statistics.median(walls)
        medians[name] = med
        owns = [r["own_s"] for r in runs if r.get("own_s") is not None]
        own = (f"; own timer {statistics.median(owns):.2f} s = "
               f"{statistics.median(owns) / IDEAL_S:.2f} x"
               + (" (its log stamps whole seconds)" if name == "inspect_ai" else "")) if owns else ""
        last = runs[-1]
        score = f"{last['score']:.0%}" if isinstance(last.get("score"), (int, float)) else "?"
        print(f"  {name:<10} whole process {med:.2f} s = {med / IDEAL_S:.2f} x ideal "
              f"(all: {', '.join(f'{w:.2f}' for w in walls)}){own}; "
              f"{last.get('done')} items, exact match {score}")
    if "workbench" in medians:
        for other, target in TARGETS.items():
            if other in medians:
                ratio = medians["workbench"] / medians[other]
                print(f"  ours / {other}: {ratio:.2f} (target <= {target}: "
                      f"{'met' if ratio <= target else 'not met'})")
    end = os.getloadavg()
    print(f"load average at the end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")


if __name__ == "__main__":
    main()
