"""The bundled model through the gateway against raw `transformers.generate`, same weights,
same dtype, same prompts, greedy; tokens are counted up to the end-of-sequence token on both
sides. Also the cached reload time of the model in a fresh process.

    .venv/bin/python benchmarks/bench_local_model.py [rounds]
"""

import statistics
import subprocess
import sys
import tempfile
import time

import torch

import workbench
from workbench import llm
from workbench.llm import local

TOPICS = ["a lighthouse", "a lost key", "a robot chef", "the moon", "a rainy market",
          "an old map", "a paper boat", "a quiet library", "a mountain train", "a clockmaker",
          "a winter garden", "a jazz club", "a desert well", "a kite festival", "a night bus",
          "a bakery at dawn"]
PROMPTS = [f"Write a short story about {t}." for t in TOPICS]
MAX_NEW = 64


def raw_generate(engine, prompts):
    tok = engine.tokenizer
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                     tokenize=False) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    t = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False,
                                    temperature=None, top_p=None, top_k=None,
                                    pad_token_id=tok.pad_token_id)
    elapsed = time.perf_counter() - t
    tokens = 0
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        tokens += row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
    return tokens, elapsed


def raw_one_at_a_time(engine, prompts):
    tokens = elapsed = 0.0
    for p in prompts:
        n, s = raw_generate(engine, [p])
        tokens, elapsed = tokens + n, elapsed + s
    return tokens / elapsed


def gateway_one_at_a_time(project, prompts):
    t = time.perf_counter()
    replies = [llm.complete(p, max_tokens=MAX_NEW, cache=False, project=project) for p in prompts]
    return sum(r.usage.completion_tokens for r in replies) / (time.perf_counter() - t)


def gateway_batched(project, prompts):
    t = time.perf_counter()
    replies = llm.complete_many(prompts, max_tokens=MAX_NEW, cache=False, project=project,
                                concurrency=len(prompts), progress=False)
    return sum(r.usage.completion_tokens for r in replies) / (time.perf_counter() - t)


def reload_seconds():
    probe = ("import time; t = time.perf_counter(); from workbench.llm.local import LocalModel; "
             "m = LocalModel(); print(time.perf_counter() - t, m.load_seconds)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(rounds: int = 2) -> None:
    project = workbench.init_project(tempfile.mkdtemp() + "/bench")
    engine = local.get_model()
    print(f"bundled model: {local.MODEL_ID}, dtype {engine.dtype_name}, "
          f"{torch.get_num_threads()} threads, {MAX_NEW} new tokens max")
    llm.complete("warm up", max_tokens=8, cache=False, project=project)
    raw_generate(engine, PROMPTS[:2])
    singles = PROMPTS[:4]
    r1, g1, r16, g16 = [], [], [], []
    for _ in range(rounds):
        r1.append(raw_one_at_a_time(engine, singles))
        g1.append(gateway_one_at_a_time(project, singles))
        n, s = raw_generate(engine, PROMPTS)
        r16.append(n / s)
        g16.append(gateway_batched(project, PROMPTS))
    med = statistics.median
    print(f"one at a time   raw generate {med(r1):6.1f} tok/s   gateway {med(g1):6.1f} tok/s   "
          f"gateway/raw {med(g1) / med(r1):.2f}   (target >= 0.95)")
    print(f"batch of 16     raw generate {med(r16):6.1f} tok/s   gateway {med(g16):6.1f} tok/s   "
          f"gateway/raw {med(g16) / med(r16):.2f}   (target >= 0.95)")
    print(f"gateway batched / gateway one at a time: {med(g16) / med(g1):.1f}x   (target >= 8x)")
    total, weights = reload_seconds()
    print(f"cached reload in a fresh process: {weights:.2f} s to load weights and tokenizer, "
          f"{total:.2f} s including importing torch and transformers   (target <= 3 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
