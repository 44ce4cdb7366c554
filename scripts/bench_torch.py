"""The orz-tch bench's work in PyTorch itself (eager, no Python frameworks beyond torch): a random
Qwen2 (vocab 2048, hidden 128, 4 layers, 4 heads / 2 KV heads, intermediate 384) on the CPU.

Generation: 16 sequences (4 prompts x 4 samples) of 16 prompt tokens, 64 sampled tokens each, with
a KV cache. Train step: 4 rows x 256 tokens (as 8 sequences of 128, causal), token log-probs, mean,
backward, torch.optim.AdamW (foreach). Run: .venv/bin/python scripts/bench_torch.py [threads]
"""
import math
import sys
import time

import torch
import torch.nn.functional as F

V, H, I, L, NH, NKV = 2048, 128, 384, 4, 4, 2
D = H // NH
EPS = 1e-6


def make_params(dtype):
    g = torch.Generator().manual_seed(7)
    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dtype).requires_grad_()
    def ones(n):
        return torch.ones(n, dtype=dtype).requires_grad_()
    p = {"embed": w(V, H), "norm": ones(H), "lm_head": w(V, H), "layers": []}
    for _ in range(L):
        p["layers"].append({
            "ln1": ones(H), "q": w(NH * D, H), "qb": w(NH * D), "k": w(NKV * D, H), "kb": w(NKV * D),
            "v": w(NKV * D, H), "vb": w(NKV * D), "o": w(H, NH * D), "ln2": ones(H),
            "gate": w(I, H), "up": w(I, H), "down": w(H, I),
        })
    return p


def all_params(p):
    out = [p["embed"], p["norm"], p["lm_head"]]
    for layer in p["layers"]:
        out.extend(layer.values())
    return out


def rms(x, w):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)


def rope(pos, dtype):
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = pos.double()[..., None] * inv
    ang = torch.cat([ang, ang], -1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def rot(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(p, ids, pos, cache=None):
    b, s = ids.shape
    x = F.embedding(ids, p["embed"])
    cos, sin = rope(pos, x.dtype)
    cos, sin = cos[:, None], sin[:, None]
    for i, layer in enumerate(p["layers"]):
        h = rms(x, layer["ln1"])
        q = F.linear(h, layer["q"], layer["qb"]).view(b, s, NH, D).transpose(1, 2)
        k = F.linear(h, layer["k"], layer["kb"]).view(b, s, NKV, D).transpose(1, 2)
        v = F.linear(h, layer["v"], layer["vb"]).view(b, s, NKV, D).transpose(1, 2)
        q, k = rot(q, cos, sin), rot(k, cos, sin)
        if cache is not None:
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=(s > 1), enable_gqa=True)
        x = x + F.linear(a.transpose(1, 2).reshape(b, s, H), layer["o"])
        h = rms(x, layer["ln2"])
        x = x + F.linear(F.silu(F.linear(h, layer["gate"])) * F.linear(h, layer["up"]), layer["down"])
    return F.linear(rms(x, p["norm"]), p["lm_head"])


def generation(p, reps=3):
    best = math.inf
    for rep in range(reps):
        torch.manual_seed(rep)
        ids = torch.stack([torch.arange(2 + r * 16, 2 + r * 16 + 16) for r in range(4) for _ in range(4)])
        t0 = time.perf_counter()
        with torch.no_grad():
            cache = [None] * L
            pos = torch.arange(16).expand(16, 16)
            logits = forward(p, ids, pos, cache)[:, -1]
            out = []
            for t in range(64):
                nxt = torch.multinomial(torch.softmax(logits.float(), -1), 1)
                out.append(nxt)
                logits = forward(p, nxt, torch.full((16, 1), 16 + t), cache)[:, -1]
            toks = torch.cat(out, 1).tolist()
        best = min(best, time.perf_counter() - t0)
    return 16 * 64, 16 * 64 / best


def train_step(p, reps=3):
    ids = torch.tensor([[((r * 977 + s * 131 + i * 7) % 2000) + 2 for i in range(128)]
                        for r in range(4) for s in range(2)])
    pos = torch.arange(128).expand(8, 128)
    params = all_params(p)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, foreach=True)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        logits = forward(p, ids, pos)
        logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -logp.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return 1024, 1024 / best


if __name__ == "__main__":
    if len(sys.argv) > 1:
        torch.set_num_threads(int(sys.argv[1]))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for dtype in (torch.float32, torch.bfloat16):
        p = make_params(dtype)
        gt, gr = generation(p)
        st, sr = train_step(p)
        name = {torch.float32: "f32", torch.bfloat16: "bf16"}[dtype]
        print(f"pytorch eager            {name:<5} generation {gt} tokens: {gr:>9.1f} tok/s   "
              f"train step {st} tokens: {sr:>9.1f} tok/s")
