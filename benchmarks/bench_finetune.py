"""Phase 5 on this machine: the workbench's LoRA training loop against a plain PEFT +
transformers loop written here (same data, batches in the same order, same options, same
precision), then the notebook's default fine-tune end to end with accuracy before and after on
the sample task's test split.

    .venv/bin/python benchmarks/bench_finetune.py [--steps N] [--skip-default]

Figures: seconds per step and per epoch, examples/s, peak memory, the time-per-step ratio
(ours ÷ plain; the target is ≤ 1.05), the default fine-tune's wall time (target < 3 minutes) and
accuracy before → after with the paired test.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import workbench
from workbench import sample
from workbench.finetune import FineTune, before_after, build_training_data, make_options
from workbench.finetune.trainer import _reset_peak_memory, compute_dtype, peak_memory_mb


def plain_loop(job: FineTune, steps: int) -> tuple[list[float], float | None]:
    """The loop a PEFT tutorial writes: labels with the prompt masked, model(...).loss,
    backward, clip, AdamW, a linear schedule. Same batches as ``job`` in the same order."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

    from workbench.llm import local

    o = job.options
    torch.manual_seed(o.seed)
    base = AutoModelForCausalLM.from_pretrained(local.build_cache(), dtype=torch.float32)
    base.config.use_cache = False
    model = get_peft_model(base, LoraConfig(r=o.rank, lora_alpha=o.alpha,
                                            lora_dropout=o.dropout,
                                            target_modules=list(o.target_modules),
                                            task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=o.learning_rate, weight_decay=o.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, o.warmup_steps, job.total_steps)
    pad = local.load_tokenizer().pad_token_id
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if job.compute_dtype == "bfloat16"
                else contextlib.nullcontext())
    model.train()
    _reset_peak_memory()
    times = []
    for step in range(steps):
        started = time.perf_counter()
        for batch in job._batches_of_step(step):
            width = max(e.length for e in batch)
            ids = torch.full((len(batch), width), pad)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100)
            for i, e in enumerate(batch):
                seq = [*e.prompt_ids, *e.completion_ids]
                ids[i, :len(seq)] = torch.tensor(seq)
                mask[i, :len(seq)] = 1
                labels[i, len(e.prompt_ids):len(seq)] = torch.tensor(e.completion_ids)
            with autocast:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                       o.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times, peak_memory_mb()


def ours(project, data, options, steps: int) -> tuple[list[float], float | None]:
    """Our loop with validation only at the end (the per-step time includes checkpoints)."""
    job = FineTune(project, data, "bench-loop", options=options, overwrite=True)
    result = job.run(progress=False)
    stamps = [0.0, *[e["time_s"] for e in result.record.losses]]
    return [b - a for a, b in zip(stamps, stamps[1:])][:steps], result.record.peak_memory_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--skip-default", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    project = workbench.init_project(folder / "p", sample=True, activate=False)
    sample.fill_prerequisites(project, 5)

    steps = args.steps
    options = make_options(eval_every=10_000, validation_examples=8, patience=0)
    data = build_training_data(project, "triage", limit=steps * options.batch_size,
                               options=options)
    job = FineTune(project, data, "bench-plain", options=options)
    print(f"Same {len(data.train)} examples, batch {options.batch_size}, {steps} steps, rank "
          f"{options.rank} on {', '.join(options.target_modules)}, "
          f"{compute_dtype(options)} compute\n")
    plain_times, plain_peak = plain_loop(job, steps)
    our_times, our_peak = ours(project, data, options, steps)
    skip = 2  # warm-up steps
    plain = statistics.mean(plain_times[skip:])
    mine = statistics.mean(our_times[skip:])
    print(f"{'loop':<28}{'s/step':>9}{'examples/s':>12}{'peak MB':>10}")
    for name, value, peak in (("plain PEFT + transformers", plain, plain_peak),
                              ("workbench FineTune", mine, our_peak)):
        print(f"{name:<28}{value:>9.3f}{options.batch_size / value:>12.2f}"
              f"{(peak or float('nan')):>10,.0f}")
    print(f"\ntime per step, ours ÷ plain: {mine / plain:.3f}  (target ≤ 1.05)")
    print(f"one epoch of the whole train split ({data.train_available} rows): about "
          f"{mine * data.train_available / options.batch_size:.0f} s\n")

    if args.skip_default:
        return
    defaults = make_options()
    default_data = build_training_data(project, "triage", limit=128, options=defaults)
    started = time.perf_counter()
    default_job = FineTune(project, default_data, "triage-lora", options=defaults)
    result = default_job.run(progress=False)
    wall = time.perf_counter() - started
    r = result.record
    print(f"The notebook's default fine-tune (128 examples, 1 epoch, {r.steps} steps, "
          f"validation every {default_job.eval_every}): {wall:.0f} s end to end "
          f"(target < 180 s), {r.examples_per_s:.2f} examples/s, peak {r.peak_memory_mb:,.0f} MB,"
          f" best validation loss {r.best_validation_loss:.3f} at step {r.best_step}")
    compared = before_after(project, "triage", "triage-lora")
    print(f"Test split, before → after: {compared.sentence}")
    print(compared.table.to_string(index=False))


if __name__ == "__main__":
    main()
