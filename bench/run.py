"""Benchmark: nfcore ``fit`` vs a straightforward pure-JAX trainer (bench/baseline.py).

Same run, same machine, same task: RealNVP with 8 affine couplings, MLP 2x64 (SiLU), batch 512
of fresh banana samples, Adam 1e-3 (no schedule, no weight decay, for both), 5000 steps, data
standardised by the training-set mean/std. Each case runs in its own subprocess (so peak RSS and
compile caches are its own); the cases are interleaved and repeated, and the table reports medians.
Speed is timed in blocks of 500 steps (fit's chunks; the baseline's loop likewise); the table's
headline is the best block of each run (the steady speed least disturbed by the rest of the
machine), with the median block and the overall rate beside it.

    make bench            # = .venv/bin/python bench/run.py  -> bench/RESULTS.md
    python bench/run.py --case nfcore_fast   # one case, prints JSON (cases: see --help)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, BATCH, LAYERS, HIDDEN, LR = 5000, 512, 8, 64, 1e-3
CHECKPOINTS = (500, 1000, 2000, 5000)
BLOCK = 500  # steps per timed block (= fit's chunk)


def _setup():
    import jax

    import nfcore as nf

    target = nf.targets.Banana()
    train_stats = target.sample(jax.random.PRNGKey(1), 100_000)
    test = target.sample(jax.random.PRNGKey(2), 100_000)
    return nf, target, train_stats.mean(0), train_stats.std(0), test


def _baseline_setup():
    """The baseline trainer, ready to run: its module, the data, Adam, initial parameters and jitted step."""
    import jax
    import optax

    sys.path.insert(0, HERE)
    import baseline

    nf, target, mean, std, test = _setup()
    opt = optax.adam(LR)
    params = baseline.init(jax.random.PRNGKey(0), LAYERS, HIDDEN)
    step = baseline.make_train_step(opt, target.sample, mean, std, BATCH)
    return baseline, nf, target, mean, std, test, opt, params, opt.init(params), step


def matmul_flops_per_step():
    """Matmul FLOPs of one training step: per coupling the conditioner does B x (1x64 + 64x64 + 64x2)
    multiply-adds forward; the backward pass does twice that (input and weight gradients)."""
    macs = BATCH * (1 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2)
    return LAYERS * 3 * 2 * macs


# nfcore configurations: (nf.unrolled?, fit sub_batches, fit ema, fit compiler_options, activation).
# "default": realnvp/fit with no options; "lean": default compiled without XLA CPU's fusion emitters;
# "*_relu": the same with ReLU conditioners (the compile strategy's pay-off depends on the activation).
LEAN = {"xla_cpu_use_fusion_emitters": False}
CONFIGS = {"default": (False, 1, None, None, "silu"), "unrolled": (True, 1, None, None, "silu"),
           "fast": (True, 2, None, None, "silu"), "fast_ema": (True, 2, 0.995, None, "silu"),
           "lean": (False, 1, None, LEAN, "silu"), "default_relu": (False, 1, None, None, "relu"),
           "fast_relu": (True, 2, None, None, "relu")}


def case_nfcore(config="fast"):
    import jax
    import optax

    unroll, sub_batches, ema, compiler_options, activation = CONFIGS[config]
    nf, target, mean, std, test = _setup()
    model = nf.realnvp(jax.random.PRNGKey(0), 2, layers=LAYERS, hidden=(HIDDEN, HIDDEN), activation=activation,
                       shift=mean, scale=std)
    if unroll:
        model = nf.unrolled(model)
    lp_test = target.log_prob(test)
    kl_at, t_first = {}, None
    t0 = time.perf_counter()
    # one fit per checkpoint segment would restart the optimiser; instead evaluate the held-out set
    # at every chunk of 500 steps, where KL = held-out NLL + mean log p(test) (same estimator as kl_divergence)
    res = nf.fit(jax.random.PRNGKey(3), model, target.sample, steps=STEPS, batch_size=BATCH,
                 optimizer=optax.adam(LR), held_out=test, chunk=BLOCK, sub_batches=sub_batches, ema=ema,
                 compiler_options=compiler_options, progress=False)
    mean_lp = float(lp_test.mean())
    for s, h in zip(res.eval_steps, res.held_out):
        if int(s) in CHECKPOINTS:
            kl_at[int(s)] = float(h) + mean_lp
    kl, se = nf.kl_divergence(res.model, target, test)
    return {
        **_rates(res.chunk_seconds), "compile_s": res.compile_seconds,
        "first_call_s": res.compile_seconds + res.chunk_seconds[0],
        "kl": kl_at, "kl_final": kl, "kl_se": se, "wall_s": time.perf_counter() - t0,
    }


def case_baseline():
    import jax
    import jax.numpy as jnp

    baseline, nf, target, mean, std, test, opt, params, opt_state, step = _baseline_setup()
    lp_test = target.log_prob(test)
    eval_lp = jax.jit(lambda p: jnp.mean(lp_test - baseline.log_prob(p, test, mean, std)))
    tc = time.perf_counter()
    step.lower(params, opt_state, jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - tc
    key = jax.random.PRNGKey(3)
    kl_at, block_s = {}, []
    t0 = time.perf_counter()
    first_call_s = None
    for start in range(0, STEPS, BLOCK):  # timed in blocks of BLOCK steps, like fit's chunks
        tr = time.perf_counter()
        for i in range(start, start + BLOCK):
            params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, i))
            if first_call_s is None:
                loss.block_until_ready()
                first_call_s = time.perf_counter() - tc
        loss.block_until_ready()
        block_s.append(time.perf_counter() - tr)
        if start + BLOCK in CHECKPOINTS:
            kl_at[start + BLOCK] = float(eval_lp(params))
    diff = lp_test - baseline.log_prob(params, test, mean, std)
    return {
        **_rates(block_s), "compile_s": compile_s, "first_call_s": first_call_s,
        "kl": kl_at, "kl_final": float(diff.mean()), "kl_se": float(diff.std() / len(diff) ** 0.5),
        "wall_s": time.perf_counter() - t0,
    }


def _rates(block_seconds):
    """Steps/s from the run times of blocks of BLOCK steps: overall, median block and best block.
    The best block is the steady speed least disturbed by anything else on the machine."""
    b = sorted(block_seconds)
    return {"steps_per_s": BLOCK * len(b) / sum(b), "steps_per_s_median": BLOCK / statistics.median(b),
            "steps_per_s_best": BLOCK / b[0]}


def case_machine():
    """Measured matmul GFLOP/s: the step's own shape (512x64 @ 64x64) and a large square one."""
    import jax
    import jax.numpy as jnp

    out = {}
    for name, (m, k, n), reps in (("small", (BATCH, HIDDEN, HIDDEN), 2000), ("large", (1024, 1024, 1024), 20)):
        a = jax.random.normal(jax.random.PRNGKey(0), (m, k))
        b = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(1), (k, n)))[0]  # orthogonal: norms stay put
        # each product feeds the next, so XLA can neither hoist nor skip any of them
        f = jax.jit(lambda a, b: jax.lax.fori_loop(0, reps, lambda i, c: c @ b, a))
        f(a, b).block_until_ready()
        best = min(_timed(lambda: f(a, b).block_until_ready()) for _ in range(3))
        out[f"gflops_{name}"] = 2 * m * k * n * reps / best / 1e9
    return out


def case_maf_cost():
    """Wall time of density evaluation vs sampling for one MAF and one IAF layer as D grows."""
    import jax
    import numpy as np

    import nfcore as nf

    out = {}
    for dim in (2, 4, 8, 16, 32, 64):
        row = {}
        for name, parallel in (("maf", "inverse"), ("iaf", "forward")):
            layer = nf.MaskedAutoregressive.init(jax.random.PRNGKey(0), dim, hidden=(128, 128), parallel=parallel)
            layer = jax.tree_util.tree_map(lambda a: a + 0.01, layer)  # non-identity
            model = nf.Transformed(nf.Normal(dim), layer)
            x = model.sample(jax.random.PRNGKey(1), 1000)
            density = jax.jit(jax.vmap(model.log_prob_one))
            sample = jax.jit(lambda k: model.sample(k, 1000))
            density(x).block_until_ready()
            sample(jax.random.PRNGKey(2)).block_until_ready()
            t_d = np.median([_timed(lambda: density(x).block_until_ready()) for _ in range(7)])
            t_s = np.median([_timed(lambda: sample(jax.random.PRNGKey(2)).block_until_ready()) for _ in range(7)])
            row[name] = {"density_ms": 1e3 * t_d, "sample_ms": 1e3 * t_s}
        out[str(dim)] = row
    return out


def case_nsf(loop: bool):
    """NSF (4 spline couplings, 8 bins, MLP 2x64) on the checkerboard: fit vs a jit step in a Python loop."""
    import jax
    import optax

    import nfcore as nf

    target = nf.targets.Checkerboard()
    x = target.sample(jax.random.PRNGKey(1), 100_000)
    model = nf.nsf(jax.random.PRNGKey(0), 2, 4, (64, 64), bins=8, bound=4.0, shift=x.mean(0), scale=x.std(0))
    opt = optax.adam(LR)
    steps = 1000
    if not loop:
        res = nf.fit(jax.random.PRNGKey(3), model, target.sample, steps=steps, optimizer=opt, chunk=500, progress=False)
        return {"steps_per_s": res.steps_per_second, "compile_s": res.compile_seconds}

    @jax.jit
    def step(m, s, key):
        batch = target.sample(key, BATCH)
        loss, g = jax.value_and_grad(lambda m: -jax.numpy.mean(jax.vmap(m.log_prob_one)(batch)))(m)
        u, s = opt.update(g, s, m)
        return optax.apply_updates(m, u), s, loss

    s = opt.init(model)
    tc = time.perf_counter()
    step.lower(model, s, jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - tc
    m, s, loss = step(model, s, jax.random.PRNGKey(0))
    loss.block_until_ready()
    t0 = time.perf_counter()
    for i in range(steps):
        m, s, loss = step(m, s, jax.random.fold_in(jax.random.PRNGKey(3), i))
    loss.block_until_ready()
    return {"steps_per_s": steps / (time.perf_counter() - t0), "compile_s": compile_s}


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_case(name):
    cases = {"baseline": case_baseline, "machine": case_machine, "maf_cost": case_maf_cost,
             "nsf_fit": lambda: case_nsf(False), "nsf_loop": lambda: case_nsf(True)}
    cases.update({f"nfcore_{c}": (lambda c=c: case_nfcore(c)) for c in CONFIGS})
    result = cases[name]()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=["baseline", *[f"nfcore_{c}" for c in CONFIGS], "machine", "maf_cost",
                                       "nsf_fit", "nsf_loop"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    names = ["baseline", *[f"nfcore_{c}" for c in CONFIGS], "nsf_loop", "nsf_fit"]
    runs = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names:
            out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}: {name} {runs[name][-1]['steps_per_s']:.0f} steps/s", flush=True)
    one = lambda case: json.loads(subprocess.run([sys.executable, __file__, "--case", case], capture_output=True,
                                                 text=True, check=True).stdout.strip().splitlines()[-1])
    machine = one("machine")
    machine["maf_cost"] = one("maf_cost")
    with open(os.path.join(HERE, "last_runs.json"), "w") as f:  # raw data, kept even if formatting fails
        json.dump({"runs": runs, "machine": machine}, f)
    write_results(args.out, runs, machine)
    print(open(args.out).read())


def _med(runs, key, sub=None):
    vals = [r[key][sub] if sub is not None else r[key] for r in runs]
    return statistics.median(vals)


def write_results(path, runs, machine):
    import jax

    cols = ["baseline", *[f"nfcore_{c}" for c in CONFIGS]]
    speed = {c: _med(runs[c], "steps_per_s_best") for c in cols}
    flops = matmul_flops_per_step()
    fmt = lambda key, spec, sub=None: [format(_med(runs[c], key, sub), spec) for c in cols]
    rows = [
        ("steady steps/s (best 500-step block)", [f"{speed[c]:.0f}" for c in cols]),
        ("ratio to the baseline", [f"**{speed[c] / speed['baseline']:.2f}x**" for c in cols]),
        ("steps/s, median block", fmt("steps_per_s_median", ".0f")),
        ("ratio to the baseline, median block", [f"{_med(runs[c], 'steps_per_s_median') / _med(runs['baseline'], 'steps_per_s_median'):.2f}x" for c in cols]),
        ("steps/s, all 5000 steps", fmt("steps_per_s", ".0f")),
        ("compile time (s)", fmt("compile_s", ".2f")),
        ("first-call time (s)", fmt("first_call_s", ".2f")),
        ("peak RSS (MB)", fmt("peak_rss_mb", ".0f")),
    ]
    for cp in CHECKPOINTS:
        rows.append((f"KL(p‖q) at {cp} steps (nats)", fmt("kl", ".4f", str(cp))))
    rows.append(("KL standard error at 5000 (nats)", fmt("kl_se", ".4f")))
    rate = {c: flops * speed[c] / 1e9 for c in cols}
    rows.append(("matmul GFLOP/s achieved", [f"{rate[c]:.1f}" for c in cols]))
    rows.append(("% of measured 1024² matmul peak", [f"{100 * rate[c] / machine['gflops_large']:.0f}%" for c in cols]))
    lines = [
        "# Benchmark results", "",
        "Made by `make bench` (`.venv/bin/python bench/run.py`). RealNVP, 8 affine couplings, MLP 2x64 (SiLU),",
        "banana, batch 512 of fresh samples per step, Adam 1e-3 (constant, no weight decay), 5000 steps, standardised",
        "data. Baseline: `bench/baseline.py` (one `jax.jit` train step in a Python loop, layers unrolled by Python).",
        "nfcore columns: `default` = `realnvp(...)` + `fit(...)` (layers in a `lax.scan`); `unrolled` =",
        "`nf.unrolled(realnvp(...))`; `fast` = `nf.unrolled(realnvp(...))` + `fit(..., sub_batches=2)` (the batch's",
        "two halves are independent in the compiled step, so XLA's CPU runtime runs them on both cores); `fast + ema`",
        "= `fast` + `fit(..., ema=0.995)` (the returned model is the running average of the parameters; same steps,",
        "same Adam). With a constant learning rate the last iterate is noisy: its KL at 5000 steps varies between",
        "seeds far more than its Monte-Carlo standard error, and averaging removes most of that noise. `lean` =",
        "`default` + `fit(..., compiler_options={\"xla_cpu_use_fusion_emitters\": False})`: XLA's CPU fusion emitters",
        "make faster kernels but compiling them takes ~200 MB more memory (JAX itself takes ~200 MB).", "",
        f"Every number is the median of {len(runs['baseline'])} runs of 5000 steps, each case in its own process and the",
        "cases interleaved. Speed is timed in blocks of 500 steps (fit's chunks; the baseline's loop the same way). The",
        "headline is each run's best block: this shared 2-core machine has slow spells of several seconds that",
        "hit whichever case is running, and the best block is the steady speed least disturbed by them.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}, "
        f"jax {jax.__version__}, backend {jax.default_backend()}. No GPU was lent to the session that made this table.", "",
        "| measure | baseline | nfcore default | nfcore unrolled | nfcore fast | nfcore fast + ema | nfcore lean |",
        "|---|---|---|---|---|---|---|",
        *[f"| {name} | " + " | ".join(vals) + " |" for name, vals in rows], "",
        f"Matmul work: {flops / 1e6:.1f} MFLOP per step; measured peak {machine['gflops_large']:.0f} GFLOP/s "
        f"(1024² matmul), {machine['gflops_small']:.0f} GFLOP/s for the step's own 512x64 @ 64x64.", "",
        *_nsf_and_maf_tables(runs, machine),
        "Raw runs (JSON):", "", "```", json.dumps({c: runs[c] for c in cols} | {"machine": machine},
                                                   indent=1), "```", "",
    ]
    kept = ""  # reference sections written by hand (e.g. chapter 10's bits/dim) survive a rerun
    if os.path.exists(path) and KEEP in open(path).read():
        old = open(path).read()
        kept = "\n" + old[old.index(KEEP):]
    with open(path, "w") as f:
        f.write("\n".join(lines) + kept)


KEEP = "<!-- kept by make bench -->"


def _nsf_and_maf_tables(runs, machine):
    nl, nf_ = runs["nsf_loop"], runs["nsf_fit"]
    lines = [
        "## NSF on the checkerboard", "",
        "4 rational-quadratic spline couplings (8 bins, B = 4), MLP 2x64, batch 512, Adam 1e-3, 1000 steps. Baseline: "
        "the same nfcore model trained by one `jax.jit` step in a Python loop (so the ratio isolates the training loop).", "",
        "| measure | jit step in a Python loop | nfcore `fit` | ratio |", "|---|---|---|---|",
        f"| steps/s | {_med(nl, 'steps_per_s'):.0f} | {_med(nf_, 'steps_per_s'):.0f} | "
        f"**{_med(nf_, 'steps_per_s') / _med(nl, 'steps_per_s'):.2f}x** |",
        f"| compile time (s) | {_med(nl, 'compile_s'):.2f} | {_med(nf_, 'compile_s'):.2f} | |", "",
        "## MAF vs IAF: density vs sampling as D grows", "",
        "One `MaskedAutoregressive` layer (MADE 2x128), batch 1000, jit-compiled, median of 7. "
        "The sequential direction needs D passes.", "",
        "| D | MAF density (ms) | MAF sampling (ms) | MAF sampling / density | IAF density (ms) | IAF sampling (ms) | IAF density / sampling |",
        "|---|---|---|---|---|---|---|",
    ]
    for d, row in machine["maf_cost"].items():
        if not d.isdigit():  # e.g. peak_rss_mb
            continue
        m, i = row["maf"], row["iaf"]
        lines.append(f"| {d} | {m['density_ms']:.2f} | {m['sample_ms']:.2f} | {m['sample_ms'] / m['density_ms']:.1f}x | "
                     f"{i['density_ms']:.2f} | {i['sample_ms']:.2f} | {i['density_ms'] / i['sample_ms']:.1f}x |")
    return lines + [""]


if __name__ == "__main__":
    main()
