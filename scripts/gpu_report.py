"""The two small Python halves of scripts/gpu-check.sh --run (on the GPU machine's python3):

  python3 gpu_report.py ceilings OUT   the device's measured ceilings: a 1 GiB device-to-device
                                       copy (bytes read + written per second) and an 8192^3 bf16
                                       matrix product (FLOP/s), medians of 20 timed runs with
                                       CUDA events, on random data -> OUT/ceilings.json
  python3 gpu_report.py summary OUT    OUT/summary.md from the step outputs: the conformance
                                       counts, the side-by-side table, the iteration's phases,
                                       throughput and peak memory against the dry run's plan,
                                       and the fractions of the physical limits

Fractions of the limits (the physical floor of each workload over its measured time):
  decode at batch 1: every token reads all bf16 weights once (2 bytes x parameters), so
      bandwidth used = tokens/s x 2 x parameters, against the measured copy bandwidth;
  train step: 6 x parameters FLOPs per token (forward 2, backward 4; attention at 128 tokens
      adds under 1%), against the measured bf16 matrix throughput.
"""
import json
import os
import re
import sys


def ceilings(out):
    import torch
    d = torch.device("cuda:0")

    def bench(f, n=20):
        f()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(n):
            s.record()
            f()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
        return sorted(times)[len(times) // 2]

    a = torch.randn(1 << 28, device=d, dtype=torch.float32)  # 1 GiB of random values, never zeros
    b = torch.empty_like(a)
    copy = bench(lambda: b.copy_(a))
    n = 8192
    x, y = (torch.randn(n, n, device=d, dtype=torch.bfloat16) for _ in range(2))
    mm = bench(lambda: x @ y)
    result = {"device": torch.cuda.get_device_name(0), "copy_bytes_per_s": 2 * a.numel() * 4 / copy,
              "bf16_matmul_flops_per_s": 2 * n ** 3 / mm}
    with open(os.path.join(out, "ceilings.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(result)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def params_of(config_path):
    """Parameters of a tied Qwen2 from its config.json (embedding counted once)."""
    c = json.load(open(config_path))
    h, i, layers, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    kv = c["num_key_value_heads"] * (h // c["num_attention_heads"])
    layer = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    return v * h + layers * layer + h


def summary(out):
    lines = ["# GPU check", ""]
    for name in ["versions.txt", "commit.txt"]:
        text = read(os.path.join(out, name))
        if text:
            lines.append(f"- {name[:-4]}: {text.strip()}")
    steps = read(os.path.join(out, "steps.txt")) or ""
    lines += ["", "## Steps (status, seconds)", "", "```", steps.strip(), "```", ""]

    lines += ["## Conformance of orz-tch on cuda:0", ""]
    for dtype in ["f32", "bf16"]:
        text = read(os.path.join(out, f"conformance-{dtype}.txt")) or ""
        tch = [l for l in text.splitlines() if re.match(r"^\d+\s", l) and " tch" in l]
        passed = sum(1 for l in tch if "pass" in l)
        failed = [l.split()[1] for l in tch if "FAIL" in l]
        lines.append(f"- {dtype}: {passed} of {len(tch)} tch rows pass" +
                     (f"; failing: {', '.join(failed)}" if failed else ""))
    lines.append("")

    ceil = json.loads(read(os.path.join(out, "ceilings.json")) or "{}")
    if ceil:
        lines += [f"## Ceilings measured on {ceil['device']}", "",
                  f"- copy: {ceil['copy_bytes_per_s'] / 1e12:.2f} TB/s (bytes read + written)",
                  f"- bf16 matrix product 8192^3: {ceil['bf16_matmul_flops_per_s'] / 1e12:.0f} TFLOP/s", ""]

    speed = json.loads(read(os.path.join(out, "speed.json")) or "{}")
    text = read(os.path.join(out, "speed.txt")) or ""
    table = [l for l in text.splitlines() if l.startswith("|") or l.startswith("parity")]
    if table:
        lines += ["## Side by side with PyTorch + transformers (bf16)", ""] + table + [""]
    config = "/tmp/orz-gpu-check/model/config.json"
    if speed and ceil and os.path.exists(config):
        p = params_of(config)
        tch = speed["median_tokens_per_s"].get("orz-tch", {})
        pt = speed["median_tokens_per_s"].get("pytorch", {})
        lines += [f"## Fractions of the physical limits ({p / 1e6:.0f}M parameters)", ""]
        for name, r in [("orz-tch", tch), ("pytorch", pt)]:
            if "gen@1" in r:
                bw = r["gen@1"] * 2 * p
                lines.append(f"- {name} decode at batch 1: {r['gen@1']:.0f} tokens/s reads {bw / 1e12:.2f} TB/s "
                             f"of weights, {100 * bw / ceil['copy_bytes_per_s']:.0f}% of the copy bandwidth")
            if "train" in r:
                fl = r["train"] * 6 * p
                lines.append(f"- {name} train step: {r['train']:.0f} tokens/s is {fl / 1e12:.1f} TFLOP/s, "
                             f"{100 * fl / ceil['bf16_matmul_flops_per_s']:.1f}% of the bf16 matrix throughput")
        lines.append("")

    metrics = read(os.path.join(out, "iteration-metrics.jsonl"))
    plan = read(os.path.join(out, "dry-run.txt")) or ""
    trace = read(os.path.join(out, "memory-trace.txt")) or ""
    used = [int(x) for x in re.findall(r"^\s*(\d+)\s*$", trace, re.M)]
    peak_plan = re.search(r"total at the peak.*?([\d.]+) GB", plan)
    lines += ["## One orz-0.5b iteration (8 prompts x 8 samples, real lengths, random weights)", ""]
    if metrics:
        m = json.loads(metrics.strip().splitlines()[-1])
        lines.append("```")
        lines.append(json.dumps({k: m[k] for k in m if any(w in k for w in
                                 ("seconds", "tokens", "response_length_mean", "generated", "packs"))}, indent=1))
        lines.append("```")
    else:
        lines.append("- the iteration left no metrics (see iteration.txt)")
    if used:
        lines.append(f"- peak GPU memory used (nvidia-smi, every 200 ms): {max(used) / 1024:.1f} GiB")
    if peak_plan:
        lines.append(f"- the dry run's plan at the peak: {peak_plan.group(1)} GB")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("ceilings", "summary"):
        sys.exit(__doc__)
    {"ceilings": ceilings, "summary": summary}[sys.argv[1]](sys.argv[2])
