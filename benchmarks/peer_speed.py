"""This project's text sampler against Fast-dLLM's LLaDA code on the same random ~50M checkpoint.

Fast-dLLM is NOT part of this project: pass a local checkout of NVlabs/Fast-dLLM (its ``llada/``
folder is imported from there). Both implementations load the same safetensors weights (strict key
check, equal logits asserted); the threshold rows use a sharpened LM head (``--head-scale``; both
get the identical weights). Runs alternate between the two implementations (and which goes first),
``--reps`` times; the table shows median s/sample, ours/theirs and whether the tokens are equal.

    python benchmarks/peer_speed.py --fastdllm-dir ../Fast-dLLM --json docs/benchmarks/peer_speed_cpu.json
    python benchmarks/peer_speed.py --fastdllm-dir ../Fast-dLLM --quick      # smoke setting

At batch 1 Fast-dLLM's own ``generate*`` functions run unmodified; they accept one row only, so at
batch > 1 :func:`_theirs_batched` drives their model with the same algorithm (checked against their
functions at batch 1 in ``--quick``). The dual-cache step is also timed alone against its FLOP floor
(``MMaDAModelLM.matmul_flops`` / the measured large-matmul rate).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's mmada_ref
from mmada_bench.profiling.measure import matmul_rates  # noqa: E402
from mmada_ref import KVCache, MMaDAModelLM  # noqa: E402
from mmada_ref.config import MMaDAConfig  # noqa: E402
from mmada_ref.sampling import TextSamplerSettings  # noqa: E402
from mmada_ref.sampling.text import generate_text  # noqa: E402

#: the ~50M MMaDA-layout transformer of benchmarks/sampler_speed.py (same dimensions)
CONFIG = dict(d_model=512, n_layers=10, n_heads=8, n_kv_heads=8, mlp_hidden_size=1408, rope_theta=10000.0,
              vocab_size=16384, embedding_size=16384, new_vocab_size=16384, llm_vocab_size=16000,
              codebook_size=256, num_vq_tokens=256, mask_token_id=15000, bos_token_id=14900,
              eos_token_id=14901, pad_token_id=14901, max_sequence_length=4096)
MASK = CONFIG["mask_token_id"]


#: mode -> (our cache setting, Fast-dLLM function, threshold used)
MODES = {"vanilla": ("none", "generate"), "prefix": ("prefix", "generate_with_prefix_cache"),
         "dual": ("dual", "generate_with_dual_cache")}


def load_fastdllm(root: Path):
    """Import Fast-dLLM's ``llada/generate.py`` and model classes from a user checkout."""
    llada = root / "llada"
    if not (llada / "generate.py").exists():
        raise SystemExit(f"{llada}/generate.py not found: --fastdllm-dir must be a checkout of NVlabs/Fast-dLLM")
    sys.path.insert(0, str(llada))
    import generate as fd_generate  # noqa: E402  (Fast-dLLM's module)
    from model.configuration_llada import LLaDAConfig, ModelConfig  # noqa: E402
    from model.modeling_llada import LLaDAModelLM  # noqa: E402
    return fd_generate, LLaDAConfig, ModelConfig, LLaDAModelLM


def build_pair(fd, folder: Path, head_scale: float = 1.0, seed: int = 0, native: bool = False):
    """Save a random checkpoint (LM head scaled by ``head_scale``), load it into both implementations; with
    ``native`` also into ours with the native cached-window step (``cpu_gemm=native``), else that slot is None."""
    from safetensors.torch import load_file

    _, LLaDAConfig, ModelConfig, LLaDAModelLM = fd
    torch.manual_seed(seed)
    model = MMaDAModelLM(MMaDAConfig(**CONFIG))
    model.transformer.ff_out.weight.data *= head_scale
    model.save_pretrained(folder)
    ours = MMaDAModelLM.from_pretrained(folder).eval()
    ours_default = MMaDAModelLM.from_pretrained(folder).eval()  # torch's default GEMM (MKL on x86)
    ours.pack_cpu_weights()  # the harness default on a float32 CPU
    ours_native = None
    if native:
        ours_native = MMaDAModelLM.from_pretrained(folder).eval()
        ours_native.pack_cpu_weights()
        if not ours_native.prepare_native_step():
            from mmada_ref.cpu_native import unavailable_reason
            raise SystemExit(f"--native: {unavailable_reason()}")
    fields = {k: getattr(ours.config, k) for k in vars(ModelConfig()) if hasattr(ours.config, k)}
    fields.update(init_device="cpu", precision="fp32", flash_attention=False)
    theirs = LLaDAModelLM(LLaDAConfig(**fields), init_params=False).eval()
    theirs.config.use_cache = False  # newer transformers drop it from the config; their forward reads it
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(f))
    missing = set(theirs.state_dict()) ^ set(state)
    if missing:
        raise SystemExit(f"checkpoint keys differ from Fast-dLLM's model: {sorted(missing)[:5]}")
    theirs.load_state_dict(state, strict=True)
    ids = torch.randint(0, 14000, (2, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours_default(ids).logits, theirs(ids).logits
        packed_err = (ours(ids).logits - a).abs().max().item()
    err = (a - b).abs().max().item()
    assert err < 1e-3 * max(1.0, a.abs().max().item()), f"logits differ by {err}"
    assert packed_err < 1e-3 * max(1.0, a.abs().max().item()), f"oneDNN logits differ by {packed_err}"
    return ours, theirs, err, ours_default, ours_native


def run_ours(model, prompt, mode, threshold, gen, block, compile_step=False):
    s = TextSamplerSettings(gen_length=gen, steps=gen, block_length=block, cache=MODES[mode][0], threshold=threshold)
    out = generate_text(model, prompt, s, MASK, compile_step=compile_step)
    return out.sequences, out.stats.nfe


def run_theirs(fd, model, prompt, mode, threshold, gen, block):
    """Fast-dLLM's own function at batch 1, :func:`_theirs_batched` otherwise."""
    if prompt.shape[0] == 1:
        fn = getattr(fd[0], MODES[mode][1])
        return fn(model, prompt, steps=gen, gen_length=gen, block_length=block, temperature=0.0,
                  remasking="low_confidence", mask_id=MASK, threshold=threshold)
    return _theirs_batched(fd[0], model, prompt, mode, threshold, gen, block)


@torch.no_grad()
def _theirs_batched(fdg, model, prompt, mode, threshold, gen, block):
    """Fast-dLLM's algorithm (refresh at each block start, then cached steps) for several rows, using
    their model forward and their ``get_transfer_index`` / ``get_num_transfer_tokens``."""
    batch, plen = prompt.shape
    x = torch.full((batch, plen + gen), MASK, dtype=torch.long)
    x[:, :plen] = prompt
    steps, nfe = gen // (gen // block), 0
    for b in range(gen // block):
        lo, hi = plen + b * block, plen + (b + 1) * block
        schedule = fdg.get_num_transfer_tokens(x[:, lo:hi] == MASK, steps)
        i = 0
        past = replace = None
        while True:
            refresh = i == 0 or mode == "vanilla"
            if refresh:
                out = model(x, use_cache=mode != "vanilla")
                mask_index = x == MASK
                mask_index[:, hi:] = False
                view, logits = x, out.logits
                if mode == "prefix":
                    past = [tuple(t[:, :, :lo] for t in layer) for layer in out.past_key_values]
                elif mode == "dual":
                    past = out.past_key_values
                    replace = torch.zeros((1, x.shape[1]), dtype=torch.bool)  # one row: their indexing
                    replace[:, lo:hi] = True
            else:
                view = x[:, lo:] if mode == "prefix" else x[:, lo:hi]
                kw = {"replace_position": replace} if mode == "dual" else {}
                logits = model(view, past_key_values=past, use_cache=True, **kw).logits
                mask_index = view == MASK
                mask_index[:, block:] = False
            nfe += 1
            k = None if threshold is not None else schedule[:, i]
            x0, transfer = fdg.get_transfer_index(logits, 0.0, "low_confidence", mask_index, view, k, threshold)
            view[transfer] = x0[transfer]
            i += 1
            # as Fast-dLLM: a cached mode always runs one cached step after the refresh
            if not (x[:, lo:hi] == MASK).any() and (mode == "vanilla" or i > 1):
                break
    return x, nfe


def dual_step_time(impl, model, batch, plen, gen, block, reps=15):
    """Median seconds of one dual-cache block step (after a refresh), ours or theirs."""
    ids = torch.randint(0, 14000, (batch, plen + gen), generator=torch.Generator().manual_seed(2))
    lo, hi = plen, plen + block
    with torch.no_grad():
        if impl == "ours":
            cache = KVCache()
            model(ids, kv_cache=cache, cache_write=True)
            step = lambda: model(ids[:, lo:hi], kv_cache=cache, cache_start=lo, logits_slice=slice(0, block))  # noqa: E731
        else:
            past = model(ids, use_cache=True).past_key_values
            replace = torch.zeros((1, ids.shape[1]), dtype=torch.bool)
            replace[:, lo:hi] = True
            step = lambda: model(ids[:, lo:hi], past_key_values=past, use_cache=True, replace_position=replace)  # noqa: E731
        return median_seconds(step, reps)


def median_seconds(fn, reps: int) -> float:
    """Median wall seconds of ``reps`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_ab_arguments(description: str, reps: int) -> argparse.ArgumentParser:
    """The options of the one-process step A/B scripts (``fused_gemm_ab.py``, ``native_step.py``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--alternations", type=int, default=8)
    p.add_argument("--reps", type=int, default=reps, help="steps per alternation (their median is kept)")
    p.add_argument("--prompt-length", type=int, default=512)
    p.add_argument("--gen-length", type=int, default=256)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    return p


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fastdllm-dir", type=Path, required=True)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--modes", nargs="+", default=["vanilla", "prefix", "dual", "dual-t"],
                   help="vanilla prefix dual (1 token/step) and vanilla-t prefix-t dual-t (threshold, sharp head)")
    p.add_argument("--prompt-length", type=int, default=512)
    p.add_argument("--gen-length", type=int, default=256)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--head-scale", type=float, default=30.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time our dual-cache rows with compile_step=True")
    p.add_argument("--default-gemm", action="store_true",
                   help="also time ours on torch's default GEMM (unpacked weights; MKL on x86)")
    p.add_argument("--native", action="store_true",
                   help="also time ours with the native AVX-512 cached-window step (model option cpu_gemm=native)")
    p.add_argument("--quick", action="store_true", help="small smoke setting (prompt 64, gen 64, batch 1 and 2, 1 rep)")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    if args.quick:
        args.prompt_length, args.gen_length, args.batch_sizes, args.reps = 64, 64, [1, 2], 1
    torch.set_num_threads(args.threads)
    fd = load_fastdllm(args.fastdllm_dir)
    with tempfile.TemporaryDirectory() as tmp:
        plain = build_pair(fd, Path(tmp) / "plain", native=args.native)
        sharp = build_pair(fd, Path(tmp) / "sharp", head_scale=args.head_scale, native=args.native)
    rates = matmul_rates(torch.device("cpu"))  # 2048 x 2048 float32, per GEMM (native too where loaded)
    peak = max(rates.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul GFLOP/s "
          + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in rates.items()), flush=True)
    print(f"weights loaded into both (strict keys); max |logit diff| {plain[2]:.2e} / sharp {sharp[2]:.2e}", flush=True)
    g, blk = args.gen_length, args.block_length
    if args.quick:  # our batched driver reproduces Fast-dLLM's own functions at batch 1
        pr = torch.randint(0, 14000, (1, args.prompt_length), generator=torch.Generator().manual_seed(0))
        for mode in MODES:
            a = run_theirs(fd, sharp[1], pr, mode, args.threshold, g, blk)
            b = _theirs_batched(fd[0], sharp[1], pr, mode, args.threshold, g, blk)
            assert torch.equal(a[0], b[0]) and a[1] == b[1], f"batched driver differs from Fast-dLLM in {mode}"
        print("batched driver == Fast-dLLM's functions at batch 1 (threshold rows)", flush=True)
    rows = []
    for batch in args.batch_sizes:
        prompt = torch.randint(0, 14000, (batch, args.prompt_length), generator=torch.Generator().manual_seed(0))
        for name in args.modes:
            mode, thr = name.removesuffix("-t"), (args.threshold if name.endswith("-t") else None)
            ours, theirs, _, ours_default, ours_native = sharp if thr is not None else plain
            impls = {"ours": lambda: run_ours(ours, prompt, mode, thr, g, blk),
                     "theirs": lambda: run_theirs(fd, theirs, prompt, mode, thr, g, blk)}
            if ours_native is not None:
                impls["ours_native"] = lambda: run_ours(ours_native, prompt, mode, thr, g, blk)
            if args.default_gemm:
                impls["ours_default_gemm"] = lambda: run_ours(ours_default, prompt, mode, thr, g, blk)
            if args.compile and mode == "dual":
                impls["ours_compiled"] = lambda: run_ours(ours, prompt, mode, thr, g, blk, compile_step=True)
                impls["ours_compiled"]()  # compile outside the timed runs
            times, outs = {k: [] for k in impls}, {}
            for rep in range(args.reps):
                order = list(impls) if rep % 2 == 0 else list(impls)[::-1]
                for k in order:
                    t = time.perf_counter()
                    outs[k] = impls[k]()
                    times[k].append(time.perf_counter() - t)
            row = _row(batch, name, thr, times, outs, args)
            rows.append(row)
            print(_line(row), flush=True)
    for batch in args.batch_sizes:
        rows.append(_step_row(plain, batch, args, peak))
        print(_line(rows[-1]), flush=True)
    rows.append({"kind": "matmul_rate_end", "gflops": {k: v / 1e9 for k, v in matmul_rates(torch.device("cpu")).items()},
                 "gflops_start": {k: v / 1e9 for k, v in rates.items()}})
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


def _row(batch, name, thr, times, outs, args) -> dict:
    med = {k: statistics.median(v) / batch for k, v in times.items()}
    ours_seq, theirs_seq = outs["ours"][0], outs["theirs"][0]
    row = {"kind": "generation", "batch": batch, "mode": name, "threshold": thr, "prompt": args.prompt_length,
           "gen": args.gen_length, "block": args.block_length, "reps": args.reps, "threads": args.threads,
           "nfe_ours": outs["ours"][1], "nfe_theirs": int(outs["theirs"][1]),
           "tokens_equal": bool(torch.equal(ours_seq, theirs_seq)),
           "token_match_fraction": float((ours_seq == theirs_seq)[:, args.prompt_length:].float().mean()),
           "s_per_sample": med, "times_s": times, "ratio_ours_theirs": med["ours"] / med["theirs"]}
    for other in ("ours_compiled", "ours_default_gemm", "ours_native"):
        if other in med:
            row[f"ratio_{other}_theirs"] = med[other] / med["theirs"]
            row[f"{other}_tokens_equal"] = bool(torch.equal(outs[other][0], ours_seq))
    return row


def _step_row(pair, batch, args, peak) -> dict:
    """The dual step alone, ours (oneDNN), ours on the default GEMM, ours native (with ``--native``) and theirs,
    alternating; the floor is the step's FLOP count at the best measured matmul rate."""
    ours, theirs, _, ours_default, ours_native = pair
    plen, g, blk = args.prompt_length, args.gen_length, args.block_length
    models = {"ours": ("ours", ours), "ours_default_gemm": ("ours", ours_default), "theirs": ("theirs", theirs)}
    if ours_native is not None:
        models["ours_native"] = ("ours", ours_native)
    times = {k: [] for k in models}
    for _ in range(3):  # alternate
        for k, (impl, model) in models.items():
            times[k].append(dual_step_time(impl, model, batch, plen, g, blk))
    flops = ours.matmul_flops(batch, blk, plen + g, blk)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    floor_ms = 1e3 * flops / peak
    row = {"kind": "dual_step", "batch": batch, "step_ms_ours": ms["ours"], "step_ms_theirs": ms["theirs"],
           "step_ms_ours_default_gemm": ms["ours_default_gemm"], "gflop": flops / 1e9, "floor_ms": floor_ms,
           "ratio_to_floor": ms["ours"] / floor_ms, "matmul_gflops": peak / 1e9, "times_s": times}
    if "ours_native" in ms:
        row.update(step_ms_ours_native=ms["ours_native"], ratio_native_to_floor=ms["ours_native"] / floor_ms)
    return row


def _line(r: dict) -> str:
    if r["kind"] == "dual_step":
        native = (f", native {r['step_ms_ours_native']:.1f} ms (native/floor {r['ratio_native_to_floor']:.2f})"
                  if "step_ms_ours_native" in r else "")
        return (f"batch {r['batch']} dual step: ours {r['step_ms_ours']:.1f} ms (default GEMM "
                f"{r['step_ms_ours_default_gemm']:.1f}), theirs {r['step_ms_theirs']:.1f} ms, "
                f"{r['gflop']:.2f} GFLOP, floor {r['floor_ms']:.1f} ms, ours/floor {r['ratio_to_floor']:.2f}{native}")
    s = r["s_per_sample"]
    others = ("ours_compiled", "ours_default_gemm", "ours_native")
    extra = "".join(f" {k.removeprefix('ours_')} {s[k]:.2f}" for k in others if k in s)
    return (f"batch {r['batch']} {r['mode']:8s} NFE {r['nfe_ours']}/{r['nfe_theirs']} s/sample ours {s['ours']:.2f} "
            f"theirs {s['theirs']:.2f}{extra} ratio {r['ratio_ours_theirs']:.2f} tokens equal {r['tokens_equal']}")


def table(rows: list[dict]) -> str:
    """Markdown tables: generation rows, then dual-step rows."""
    out = ["| batch | mode | unmasking | NFE ours / theirs | tokens/step | s/sample ours | s/sample theirs | ours/theirs | "
           "tokens equal | s/sample native | native/theirs | native tokens equal |", "|---" * 12 + "|"]
    for r in (r for r in rows if r["kind"] == "generation"):
        s, unmask = r["s_per_sample"], "1/step" if r["threshold"] is None else f"threshold {r['threshold']}"
        tps = r["gen"] / r["nfe_ours"]
        equal = "yes" if r["tokens_equal"] else f"no ({r['token_match_fraction']:.1%} equal)"
        out.append(f"| {r['batch']} | {r['mode'].removesuffix('-t')} | {unmask} | {r['nfe_ours']} / {r['nfe_theirs']} | "
                   f"{tps:.2f} | {s['ours']:.2f} | {s['theirs']:.2f} | **{r['ratio_ours_theirs']:.2f}** | "
                   f"{equal} | {_native_cells(r)}")
    out += ["", "| batch | dual step ours ms | ours, default GEMM ms | theirs ms | GFLOP | FLOP floor ms | ours / floor "
            "| native ms | native / floor |", "|---" * 9 + "|"]
    for r in (r for r in rows if r["kind"] == "dual_step"):
        native = "- | - |"
        if "step_ms_ours_native" in r:
            native = f"{r['step_ms_ours_native']:.1f} | **{r['ratio_native_to_floor']:.2f}** |"
        out.append(f"| {r['batch']} | {r['step_ms_ours']:.1f} | {r['step_ms_ours_default_gemm']:.1f} | "
                   f"{r['step_ms_theirs']:.1f} | {r['gflop']:.2f} | {r['floor_ms']:.1f} | {r['ratio_to_floor']:.2f} | "
                   f"{native}")
    return "\n".join(out)


def _native_cells(r: dict) -> str:
    if "ours_native" not in r["s_per_sample"]:
        return "- | - | - |"
    equal = "yes" if r["ours_native_tokens_equal"] else "no"
    return f"{r['s_per_sample']['ours_native']:.2f} | **{r['ratio_ours_native_theirs']:.2f}** | {equal} |"


if __name__ == "__main__":
    main()
