"""The compile strategy on more than one setting: scanned (default) vs ``nf.unrolled`` + ``sub_batches=2``.

RealNVP, 8 couplings, MLP 2x64, banana, batch 512 of fresh samples, Adam 1e-3, for SiLU and ReLU
conditioners. Each configuration runs in its own subprocess, interleaved, ``--repeats`` times;
speed = best of the 500-step chunks after the first (steady state), plus compile seconds.

    .venv/bin/python bench/compile_strategy.py            # prints a markdown table
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONFIGS = [(act, strategy) for act in ("silu", "relu") for strategy in ("scan", "unrolled+sub_batches")]


def run_one(activation: str, strategy: str, steps: int) -> dict:
    import jax
    import optax

    import nfcore as nf

    t = nf.targets.Banana()
    x = t.sample(jax.random.PRNGKey(1), 100_000)
    m = nf.realnvp(jax.random.PRNGKey(0), 2, layers=8, hidden=(64, 64), activation=activation,
                   shift=x.mean(0), scale=x.std(0))
    sub = 1
    if strategy != "scan":
        m, sub = nf.unrolled(m), 2
    r = nf.fit(jax.random.PRNGKey(3), m, t.sample, steps=steps, batch_size=512, optimizer=optax.adam(1e-3),
               chunk=500, sub_batches=sub, progress=False)
    rates = [500 / s for s in r.chunk_seconds[1:]] or [steps / r.run_seconds]
    return {"best_steps_per_s": max(rates), "median_steps_per_s": statistics.median(rates),
            "compile_s": r.compile_seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=2, metavar=("ACTIVATION", "STRATEGY"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(*a.one, a.steps)))
        return
    runs = {c: [] for c in CONFIGS}
    for _ in range(a.repeats):
        for act, strat in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--one", act, strat, "--steps", str(a.steps)],
                                 capture_output=True, text=True, check=True).stdout
            runs[(act, strat)].append(json.loads(out.strip().splitlines()[-1]))
    print("| conditioner | strategy | steps/s (best chunk) | steps/s (median chunk) | compile (s) |")
    print("|---|---|---|---|---|")
    for (act, strat), rs in runs.items():
        med = lambda k: statistics.median(r[k] for r in rs)
        print(f"| {act} | {strat} | {med('best_steps_per_s'):.0f} | {med('median_steps_per_s'):.0f} | "
              f"{med('compile_s'):.1f} |")


if __name__ == "__main__":
    main()
