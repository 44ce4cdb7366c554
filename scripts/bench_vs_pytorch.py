"""orz (orz-tch, orz-candle) side by side with PyTorch + Hugging Face transformers, in one run.

The model and inputs come from `vs_pytorch prepare DIR` (a random Qwen2 written by orz in Hugging
Face format; transformers loads the same weights). Each round runs the three systems one after
the other, in a rotating order, each in a fresh process of its own: orz-tch and orz-candle as
`vs_pytorch run` (which warms up, then times each workload once and prints JSON), PyTorch as this
script's `--worker` (the same warm-up, then the same timed work). Fresh processes keep the runs
independent: a PyTorch model and optimizer left alive in the driver while orz ran measurably
slowed orz's train step on the 2-core VM (page faults of fresh memory cost more; 152 -> 123
tokens/s for orz-tch with an idle PyTorch process holding its state). Workloads: the forward logits of a batch, generation at
batch 1, 16 and 64 (temperature 1, top-p 1, KV cache, `generate` for transformers), one train
step (forward, next-token log-probs, mean, backward, clipping at 1.0, AdamW). The first round
also checks that the three systems' forward logits agree (an end-to-end parity test).

Run through scripts/bench-vs-pytorch.sh, or:
  .venv/bin/python scripts/bench_vs_pytorch.py --bin target/release/vs_pytorch --dir DIR \
      [--rounds 3] [--threads N] [--systems orz-tch,orz-candle,pytorch] [--device cuda:0] [--dtype bf16]

On a GPU (`--device cuda:N`, scripts/gpu-check.sh), orz-tch and PyTorch run there; every timed
region ends with a device synchronization; TF32 stays off (PyTorch's default for matmuls).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import Qwen2ForCausalLM

PARITY_ATOL = 1e-4  # f32 logits of a random model (|logit| up to a few units); measured: ~2e-6


def log(msg):
    print(msg, file=sys.stderr, flush=True)


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class Torch:
    """The PyTorch + transformers side of one round (a `--worker` process): the model and its AdamW."""

    def __init__(self, model_dir, inputs, device="cpu", dtype="f32"):
        self.device = device
        self.model = Qwen2ForCausalLM.from_pretrained(
            model_dir, dtype=DTYPES[dtype], attn_implementation="sdpa").to(device)
        self.inputs = inputs
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-6, betas=(0.9, 0.95), eps=1e-8,
                                     weight_decay=0.0)
        self.forward_ids = torch.tensor(inputs["forward"], device=device)
        self.train_ids = torch.tensor(inputs["train"], device=device)

    def forward(self):
        self.model.eval()
        with torch.inference_mode():
            return self.model(self.forward_ids).logits

    def generate(self, prompts, samples, new_tokens):
        self.model.eval()
        ids = torch.tensor(prompts, device=self.device)
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_p=1.0,
                top_k=0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                num_return_sequences=samples, use_cache=True, pad_token_id=0)
        return out.shape[0] * (out.shape[1] - ids.shape[1])

    def train_step(self):
        self.model.train()
        ids = self.train_ids
        logits = self.model(ids).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -logp.mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def run(self):
        """The same warm-up and timed work as `vs_pytorch run`."""
        gen = self.inputs["generation"]
        d = self.device
        logits = self.forward().float().cpu()  # before any train step: what the parity check compares
        self.generate([self.inputs["forward"][0][:gen["prompt_len"]]], 1, 4)
        self.train_step()
        sync(d)
        t = time.perf_counter()
        self.forward()
        sync(d)
        forward_s = time.perf_counter() - t
        gens = []
        for g in gen["batches"]:
            t = time.perf_counter()
            tokens = self.generate(g["prompts"], g["samples"], gen["new_tokens"])
            sync(d)
            gens.append({"batch": g["batch"], "seconds": time.perf_counter() - t, "tokens": tokens})
        t = time.perf_counter()
        self.train_step()
        sync(d)
        train_s = time.perf_counter() - t
        ntok = lambda rows: sum(len(r) for r in rows)
        return {
            "forward": {"seconds": forward_s, "tokens": ntok(self.inputs["forward"])},
            "generation": gens,
            "train": {"seconds": train_s, "tokens": ntok(self.inputs["train"])},
        }, logits


def run_pytorch(directory, threads, logits_path, device="cpu", dtype="f32"):
    """One PyTorch round in a fresh process (this script's `--worker`); returns its timings."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--bin", "-", "--dir", directory, "--device", device,
           "--dtype", dtype, "--threads", str(threads or 0)]
    if logits_path:
        cmd += ["--logits", logits_path]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench_vs_pytorch: `{' '.join(cmd)}` failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(args, inputs):
    """`--worker`: PyTorch's warm-up and timed work once, the JSON on stdout (logits to --logits)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    pt = Torch(os.path.join(args.dir, "model"), inputs, args.device, args.dtype)
    result, logits = pt.run()
    if args.logits:
        np.save(args.logits, logits.float().numpy())
    print(json.dumps(result))


def run_orz(binary, directory, backend, threads, logits_path, device="cpu", dtype="f32"):
    cmd = [binary, "run", directory, "--backend", backend, "--device", device, "--dtype", dtype]
    if threads:
        cmd += ["--threads", str(threads)]
    if logits_path:
        cmd += ["--logits", logits_path]
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench_vs_pytorch: `{' '.join(cmd)}` failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rates(result):
    """Tokens/s per workload: forward, gen@B..., train."""
    r = {"forward": result["forward"]["tokens"] / result["forward"]["seconds"]}
    for g in result["generation"]:
        r[f"gen@{g['batch']}"] = g["tokens"] / g["seconds"]
    r["train"] = result["train"]["tokens"] / result["train"]["seconds"]
    return r


def parity(directory, ref, systems, atol=PARITY_ATOL):
    scale = float(np.abs(ref).max())
    ok = True
    for name in systems:
        path = os.path.join(directory, f"logits-{name}.f32")
        if not os.path.exists(path):
            continue
        ours = np.fromfile(path, dtype="<f4").reshape(ref.shape)
        diff = float(np.abs(ours - ref).max())
        good = diff <= atol
        ok &= good
        print(f"parity {name} vs transformers: max |logit diff| {diff:.2e} (max |logit| {scale:.2f}, "
              f"tolerance {atol:g}): {'ok' if good else 'MISMATCH'}")
    return ok


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, {mem}; load average {load}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the vs_pytorch binary (built with --features tch)")
    ap.add_argument("--dir", required=True, help="the directory `vs_pytorch prepare` wrote")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of every system (0: defaults)")
    ap.add_argument("--systems", default="orz-tch,orz-candle,pytorch")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N (orz-tch and PyTorch)")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--json", help="also write the medians and ratios to this JSON file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--logits", help=argparse.SUPPRESS)
    args = ap.parse_args()
    systems = args.systems.split(",")
    with open(os.path.join(args.dir, "inputs.json")) as f:
        inputs = json.load(f)
    if args.worker:
        return worker(args, inputs)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(args.device)}, dtype {args.dtype}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads "
          f"{args.threads or 'default'} (torch: {torch.get_num_threads()})")
    print(f"model: {inputs['model']}")
    g = inputs["generation"]
    print(f"forward: {len(inputs['forward'])} x {len(inputs['forward'][0])} tokens; generation: prompt "
          f"{g['prompt_len']}, {g['new_tokens']} new tokens, batches "
          + ", ".join(f"{b['batch']} ({len(b['prompts'])} prompts x {b['samples']})" for b in g["batches"])
          + f"; train step: {len(inputs['train'])} x {len(inputs['train'][0])} tokens")
    pt = "pytorch" in systems
    torch_logits_path = os.path.join(args.dir, "logits-pytorch.npy")
    per = {s: [] for s in systems}
    start = time.time()
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for s in order:
            t = time.time()
            if s == "pytorch":
                lp = torch_logits_path if r == 0 else None
                result = run_pytorch(args.dir, args.threads, lp, args.device, args.dtype)
            else:
                lp = os.path.join(args.dir, f"logits-{s}.f32") if r == 0 else None
                result = run_orz(args.bin, args.dir, s.removeprefix("orz-"), args.threads, lp, args.device, args.dtype)
            per[s].append(rates(result))
            log(f"round {r + 1}/{args.rounds} {s}: {time.time() - t:.0f} s "
                + " ".join(f"{k} {v:.0f}" for k, v in per[s][-1].items()))
    print(f"{args.rounds} rounds in {time.time() - start:.0f} s; load average after: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    # bf16 logits of two implementations differ by a few bf16 roundings of |logit| (~1e-2 each).
    atol = PARITY_ATOL if args.dtype == "f32" else 0.1
    ok = parity(args.dir, np.load(torch_logits_path), [s for s in systems if s != "pytorch"], atol) if pt else True

    keys = list(per[systems[0]][0].keys())
    med = {s: {k: statistics.median(x[k] for x in per[s]) for k in keys} for s in systems}
    spread = {s: {k: (min(x[k] for x in per[s]), max(x[k] for x in per[s])) for k in keys} for s in systems}
    label = {"forward": "forward logits", "train": "train step"}
    print("\ntokens/s, median of the rounds (min - max); ratios: median of the per-round ratios:\n")
    print("| workload | " + " | ".join(systems) + " |" + "".join(
        f" {s} / pytorch |" for s in systems if s != "pytorch" and pt))
    print("|---" * (1 + len(systems) + (len(systems) - 1 if pt else 0)) + "|")
    for k in keys:
        name = label.get(k, k.replace("gen@", "generation, batch "))
        cells = [f"{med[s][k]:,.0f} ({spread[s][k][0]:,.0f} - {spread[s][k][1]:,.0f})" for s in systems]
        # The ratio of each round (the systems ran back to back), then the median over rounds.
        ratios = [f"{statistics.median(a[k] / b[k] for a, b in zip(per[s], per['pytorch'])):.2f}x"
                  for s in systems if s != "pytorch" and pt]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "dtype": args.dtype, "median_tokens_per_s": med,
                       "parity_ok": ok, "rounds": args.rounds}, f, indent=1)
    if not ok:
        sys.exit("bench_vs_pytorch: the forward logits disagree with transformers (see above)")


if __name__ == "__main__":
    main()
