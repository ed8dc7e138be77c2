#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures of tests/reference.rs (run by hand, never in CI).

For each case it writes a model configuration, lets `urpe init` write a checkpoint in our
safetensors format, builds the same model in PyTorch from that checkpoint (names, shapes,
row-vector convention and `config` metadata as README's "Checkpoint format"), replaces every
parameter by seeded draws (so gradients are not tiny), and records in float64:
inputs, targets, outputs, loss, every parameter gradient, and the losses of 5 Adam steps
on the same batch (lr 1e-2, betas 0.9/0.999, eps 1e-8, no decay).

Usage: python3 scripts/torch_reference.py [--urpe target/release/urpe] [--only NAME,NAME]
Needs: torch, safetensors, numpy (pip install torch safetensors numpy).
"""
import argparse
import json
import math
import os
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures")
ADAM = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
ADAM_STEPS = 5

# name, family, urpe, norm, causal, share_position, token input/class output[, attention[,
# other model fields]]
CASES = [
    ("nope", "nope", False, "post", False, True, True),
    ("ape_learned", "ape-learned", False, "pre", False, True, False),
    ("ape_sin", "ape-sin", False, "none", True, True, True),
    ("t5", "t5", False, "post", False, True, False),
    ("t5_urpe", "t5", True, "post", False, True, True),
    ("t5_urpe_pre_causal_per_layer", "t5", True, "pre", True, False, False),
    ("t5_bucketed", "t5-bucketed", False, "post", True, True, True),
    ("alibi", "alibi", False, "pre", True, True, False),
    ("rope", "rope", False, "post", False, True, True),
    ("rope_urpe_none", "rope", True, "none", True, False, False),
    ("shaw_key", "shaw-key", False, "post", False, False, False),
    ("shaw_value", "shaw-value", True, "pre", False, True, True),
    ("xl", "xl", False, "post", False, True, False),
    ("xl_urpe_causal", "xl", True, "none", True, False, True),
    ("kerple", "kerple", False, "post", False, True, True),
    ("kerple_urpe_causal", "kerple", True, "pre", True, False, False),
    ("t5_sigmoid", "t5", False, "post", False, True, True, "sigmoid"),
    ("rope_relu_causal", "rope", False, "pre", True, True, False, "relu"),
    ("nope_stick_breaking", "nope", False, "post", True, True, True, "stick-breaking"),
    ("alibi_stick_breaking_urpe", "alibi", True, "none", True, False, False, "stick-breaking"),
    ("xpos", "xpos", False, "post", True, True, True),
    ("xpos_urpe_sigmoid", "xpos", True, "pre", False, False, False, "sigmoid"),
    ("t5_sink", "t5", False, "post", False, True, True, "sink"),
    ("rope_sink_urpe_causal", "rope", True, "pre", True, False, False, "sink"),
    ("fire", "fire", False, "post", False, True, True),
    ("fire_urpe_causal", "fire", True, "pre", True, False, False),
    ("fire_sigmoid", "fire", False, "none", True, True, False, "sigmoid"),
    ("cope_causal", "cope", False, "post", True, True, True),
    ("cope_urpe_causal", "cope", True, "pre", True, False, False),
    ("t5_differential", "t5", False, "post", False, True, True, "differential"),
    ("alibi_differential_urpe_causal", "alibi", True, "pre", True, False, False, "differential"),
    ("shaw_value_differential_urpe", "shaw-value", True, "none", False, True, True, "differential"),
    ("t5_bos", "t5", False, "pre", False, True, False, "softmax", {"bos": True}),
    ("nope_bos_causal", "nope", False, "post", True, True, True, "softmax", {"bos": True}),
]
DEPTH, WIDTH, HEADS, FFN, N_MAX, N, BATCH, VOCAB, CLASSES, D_IN, D_OUT = 2, 8, 2, 16, 6, 5, 3, 7, 4, 3, 3


def sinusoid(t, d):
    """Feature 2k: sin(t·ω_k), feature 2k+1: cos(t·ω_k), ω_k = 10000^(−2k/d); t a 1-D tensor."""
    k = torch.arange(d // 2, dtype=torch.float64)
    omega = 10000.0 ** (-2.0 * k / d)
    angles = t[:, None] * omega[None, :]
    out = torch.zeros(len(t), d)
    out[:, 0::2] = torch.sin(angles)
    out[:, 1::2] = torch.cos(angles)
    return out


def alibi_slopes(h):
    def pow2(h):
        start = 2.0 ** (-8.0 / h)
        return [start ** (i + 1) for i in range(h)]
    if h & (h - 1) == 0:
        return pow2(h)
    closest = 2 ** int(math.floor(math.log2(h)))
    return pow2(closest) + pow2(2 * closest)[0::2][: h - closest]


def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's relative_position_bucket (as in Hugging Face transformers), rel = j − i."""
    ret = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        ret += (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = -torch.clamp(rel, max=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return ret + torch.where(is_small, n, large)


class Reference:
    """The urpe model written plainly in PyTorch from the README's formulas."""

    def __init__(self, config, params):
        self.c = config
        self.p = params  # name -> leaf tensor (requires_grad)

    def pos(self, l, name):
        key = f"pos.{name}" if self.c["share_position"] else f"layers.{l}.pos.{name}"
        return self.p[key]

    def linear(self, x, name):
        return x @ self.p[f"{name}.weight"] + self.p[f"{name}.bias"]

    def norm(self, x, name):
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.p[f"{name}.weight"], self.p[f"{name}.bias"], eps=1e-5)

    def attention(self, x, l):
        c = self.c
        b, n, d = x.shape
        # with a BOS row the attention sees one position more than the longest input
        h, dh, n_max = c["heads"], d // c["heads"], c["n_max"] + int(c.get("bos", False))
        split = lambda t: t.view(b, n, h, dh).transpose(1, 2)  # [b, h, n, dh]
        q = split(self.linear(x, f"layers.{l}.attn.q"))
        k = split(self.linear(x, f"layers.{l}.attn.k"))
        v = split(self.linear(x, f"layers.{l}.attn.v"))
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        off = j - i + n_max - 1  # offset index [n, n]
        scale = 1.0 / math.sqrt(dh)
        fam = c["family"]
        if fam in ("rope", "xpos"):
            half = dh // 2
            kk = torch.arange(half, dtype=torch.float64)
            ang = torch.arange(n, dtype=torch.float64)[:, None] * c["rope_base"] ** (-2.0 * kk / dh)[None, :]
            cos, sin = torch.cos(ang), torch.sin(ang)

            def rot(t):
                a, bb = t[..., :half], t[..., half:]
                return torch.cat([a * cos - bb * sin, a * sin + bb * cos], dim=-1)

            q, k = rot(q), rot(k)
            if fam == "xpos":
                # pair k (features k and k + d_h/2) scaled by ζ_k^{±position/512}
                zeta = (kk / half + 0.4) / 1.4
                power = torch.arange(n, dtype=torch.float64)[:, None] / 512.0
                up = torch.cat([zeta[None, :] ** power] * 2, dim=-1)  # [n, dh]
                q, k = q * up, k / up
        # a score bias that reads neither q nor k: the same for every score matrix of a head
        bias = torch.zeros(1, h, n, n)
        if fam == "t5":
            bias = bias + self.pos(l, "t5")[:, off][None]
        if fam == "t5-bucketed":
            buckets = t5_bucket(j - i, not c["causal"], c["t5_buckets"], c["t5_max_distance"])
            bias = bias + self.pos(l, "t5_bucketed")[:, buckets][None]
        if fam == "alibi":
            m = torch.tensor(alibi_slopes(h))[:, None, None]
            bias = bias - m * (j - i).abs()[None].double()
        if fam == "kerple":
            r = F.softplus(self.pos(l, "kerple"))  # [h, 2]: r1, r2 > 0
            bias = bias - r[:, 0, None, None] * torch.log1p(r[:, 1, None, None] * (j - i).abs().double())[None]
        if fam == "fire":
            # b_h(i, j) = MLP(x_ij)_h, x_ij = sign(i − j)·ψ(|i − j|)/ψ(max(L, i)), ψ(t) = log(1 + c·t),
            # c = 0.1·exp(ρ_0), L = n_max·exp(ρ_1); one hidden layer of ReLUs
            w1, b1, w2, b2, rho = (self.pos(l, f"fire.{t}") for t in ("w1", "b1", "w2", "b2", "rho"))
            c_, L = 0.1 * torch.exp(rho[0]), n_max * torch.exp(rho[1])
            rel = (i - j).double()  # [n, n]
            query = torch.arange(n, dtype=torch.float64)[:, None]  # [n, 1]
            x = torch.sign(rel) * torch.log1p(c_ * rel.abs()) / torch.log1p(c_ * torch.maximum(query, L))
            hidden = F.relu(x[..., None] * w1 + b1)  # [n, n, H]
            bias = bias + (hidden @ w2.T + b2).permute(2, 0, 1)[None]
        attention = c.get("attention", "softmax")
        if attention == "differential":
            return self.differential(q, k, v, bias, l, off, j > i)
        if fam == "xl":
            u = self.pos(l, "xl_u")[None, :, None, :]
            vb = self.pos(l, "xl_v")[None, :, None, :]
            R = sinusoid(torch.tensor([float(n_max - 1 - o) for o in range(2 * n_max - 1)]), d)
            r = (R @ self.pos(l, "xl_r")).view(2 * n_max - 1, h, dh).transpose(0, 1)  # [h, offsets, dh]
            s = (q + u) @ k.transpose(-1, -2)
            rel = torch.einsum("bhid,hijd->bhij", q + vb, r[:, off, :])
            s = (s + rel) * scale
        else:
            s = (q @ k.transpose(-1, -2)) * scale
            if fam == "cope":
                # CoPE: gates σ(c_ij) of the content scores for keys j ≤ i, contextual positions
                # p_ij = Σ_{k=j..i} g_ik (suffix sums along the row) clamped to n_max − 1, and
                # q_i·e[p_ij] interpolated linearly between ⌊p⌋ and ⌊p⌋ + 1, scaled like the content
                top = n_max - 1
                gates = torch.sigmoid(s) * (j <= i).double()
                p = torch.flip(torch.cumsum(torch.flip(gates, [-1]), dim=-1), [-1]).clamp(max=top)
                lo = p.detach().floor().long()
                hi = (lo + 1).clamp(max=top)
                w = p - lo.double()
                z = q @ self.pos(l, "cope").T  # [b, h, n, n_max]: z[..., i, t] = q_i·e[t]
                s = s + ((1 - w) * torch.gather(z, -1, lo) + w * torch.gather(z, -1, hi)) * scale
            s = s + bias
        if fam == "shaw-key":
            a = self.pos(l, "shaw_key")[off]  # [n, n, dh]
            s = s + torch.einsum("bhid,ijd->bhij", q, a) * scale
        if attention == "stick-breaking":
            # A_ij = β_ij Π_{j<k<i} (1 − β_ik) for keys j < i, β = σ(s), from the unmasked scores
            earlier = (j < i).double()  # [n, n]: key j strictly before query i
            log_rest = F.logsigmoid(-s) * earlier  # log(1 − β_ik) where k < i
            after = (i > j).double()  # after[k, j] = 1 where k > j
            a = torch.exp(F.logsigmoid(s) + log_rest @ after) * earlier
        else:
            if c["causal"]:
                s = s.masked_fill((j > i)[None, None], float("-inf"))
            if attention == "softmax":
                a = torch.softmax(s, dim=-1)
            elif attention == "sink":
                # a learned logit per head in the denominator: softmax over [s, β], β dropped
                beta = self.p[f"layers.{l}.attn.sink"][None, :, None, None].expand(b, h, n, 1)
                a = torch.softmax(torch.cat([s, beta], dim=-1), dim=-1)[..., :n]
            elif attention == "sigmoid":
                a = torch.sigmoid(s - math.log(n))
            elif attention == "relu":
                a = F.relu(s) / n
            else:
                raise ValueError(attention)
        return self.heads_out(self.mix_values(a, v, l, off), l)

    def mix_values(self, a, v, l, off):
        """The gate (if on), the product with V and shaw-value's term: [b, h, n, dh]."""
        if self.c["urpe"]:
            a = a * self.pos(l, "urpe")[:, off][None]
        out = a @ v
        if self.c["family"] == "shaw-value":
            out = out + torch.einsum("bhij,ijd->bhid", a, self.pos(l, "shaw_value")[off])
        return out

    def heads_out(self, out, l):
        """Heads [b, h, n, dh] side by side, then the output map."""
        b, h, n, dh = out.shape
        return self.linear(out.transpose(1, 2).reshape(b, n, h * dh), f"layers.{l}.attn.o")

    def differential(self, q, k, v, bias, l, off, masked):
        """Differential attention (Ye et al. 2024): the halves of q and k make two score
        matrices, A = softmax(S1) - lam*softmax(S2), lam = exp(lq1.lk1) - exp(lq2.lk2) + lam_init,
        lam_init = 0.8 - 0.6*exp(-0.3*l); each head's output row divided by its RMS (eps 1e-5)
        and multiplied by 1 - lam_init."""
        half = q.shape[-1] // 2
        vec = self.p[f"layers.{l}.attn.lambda"]  # rows lq1, lk1, lq2, lk2
        lam_init = 0.8 - 0.6 * math.exp(-0.3 * l)
        lam = torch.exp(torch.dot(vec[0], vec[1])) - torch.exp(torch.dot(vec[2], vec[3])) + lam_init
        maps = []
        for part in (slice(0, half), slice(half, 2 * half)):
            s = q[..., part] @ k[..., part].transpose(-1, -2) / math.sqrt(half) + bias
            if self.c["causal"]:
                s = s.masked_fill(masked[None, None], float("-inf"))
            maps.append(torch.softmax(s, dim=-1))
        out = self.mix_values(maps[0] - lam * maps[1], v, l, off)
        out = out * torch.rsqrt(out.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * (1.0 - lam_init)
        return self.heads_out(out, l)

    def ffn(self, x, l):
        return self.linear(F.gelu(self.linear(x, f"layers.{l}.ffn.up")), f"layers.{l}.ffn.down")

    def forward(self, inputs):
        c = self.c
        if c["input"]["kind"] == "tokens":
            h = self.p["embed.weight"][inputs]
        else:
            h = self.linear(inputs, "input")
        bos = c.get("bos", False)
        if bos:
            # the learned vector before every sequence: position 0 from here on
            h = torch.cat([self.p["bos"].expand(h.shape[0], 1, h.shape[2]), h], dim=1)
        n = h.shape[1]
        if c["family"] == "ape-learned":
            h = h + self.p["pos.ape"][:n]
        if c["family"] == "ape-sin":
            h = h + sinusoid(torch.arange(n, dtype=torch.float64), c["width"])
        for l in range(c["depth"]):
            if c["norm"] == "post":
                h = self.norm(h + self.attention(h, l), f"layers.{l}.norm1")
                h = self.norm(h + self.ffn(h, l), f"layers.{l}.norm2")
            elif c["norm"] == "pre":
                h = h + self.attention(self.norm(h, f"layers.{l}.norm1"), l)
                h = h + self.ffn(self.norm(h, f"layers.{l}.norm2"), l)
            else:
                h = h + self.attention(h, l)
                h = h + self.ffn(h, l)
        if c["norm"] == "pre":
            h = self.norm(h, "final_norm")
        if bos:
            h = h[:, 1:]  # the head reads the input positions only
        return self.linear(h, "head")


def loss_of(config, out, targets):
    if config["output"]["kind"] == "classes":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))
    return F.mse_loss(out, targets)


def write_case(urpe_bin, name, family, urpe, norm, causal, share, tokens, attention="softmax", extra=None, *, seed):
    model = {
        "family": family, "urpe": urpe, "depth": DEPTH, "width": WIDTH, "heads": HEADS, "ffn": FFN,
        "norm": norm, "causal": causal, "n_max": N_MAX, "share_position": share,
        "t5_buckets": 6, "t5_max_distance": 5, "rope_base": 50.0,
        "input": {"kind": "tokens", "vocab": VOCAB} if tokens else {"kind": "real", "d_in": D_IN},
        "output": {"kind": "classes", "classes": CLASSES} if tokens else {"kind": "real", "d_out": D_OUT},
        "attention": attention,
        **(extra or {}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "model.json")
        ckpt = os.path.join(tmp, "model.safetensors")
        with open(cfg, "w") as f:
            json.dump(model, f)
        subprocess.run([urpe_bin, "init", "--config", cfg, "--seed", str(seed), "--out", ckpt], check=True, capture_output=True)
        tensors = load_file(ckpt)
        from safetensors import safe_open
        with safe_open(ckpt, "pt") as f:
            meta = f.metadata()
    assert meta["format"] == "urpe-checkpoint-v1"
    config = json.loads(meta["config"])
    rng = np.random.default_rng(seed)
    params = {}
    for key, t in tensors.items():
        centre = 1.0 if key.endswith(("norm1.weight", "norm2.weight", "final_norm.weight", ".urpe")) else 0.0
        values = centre + rng.uniform(-0.5, 0.5, size=tuple(t.shape))
        if key.endswith("fire.rho") and (key.startswith("pos.") or key.startswith("layers.1.")):
            # L = 6·e^(−1) ≈ 2.2 < i for queries i ≥ 3, so max(L, i) = i is exercised too
            # (every layer when shared; the second layer otherwise)
            values[1] = -1.0
        params[key] = torch.tensor(values, requires_grad=True)
    if tokens:
        inputs = torch.tensor(rng.integers(0, VOCAB, size=(BATCH, N)))
        targets = torch.tensor(rng.integers(0, CLASSES, size=(BATCH, N)))
    else:
        inputs = torch.tensor(rng.uniform(-1, 1, size=(BATCH, N, D_IN)))
        targets = torch.tensor(rng.uniform(-1, 1, size=(BATCH, N, D_OUT)))
    ref = Reference(config, params)
    out = ref.forward(inputs)
    loss = loss_of(config, out, targets)
    loss.backward()
    fixture = {f"param.{k}": v.detach().clone() for k, v in params.items()}
    fixture.update({f"grad.{k}": v.grad.detach().clone() for k, v in params.items()})
    fixture["inputs"] = inputs.to(torch.int64) if tokens else inputs
    fixture["targets"] = targets.to(torch.int64) if tokens else targets
    fixture["output"] = out.detach()
    fixture["loss"] = loss.detach().reshape(1)
    opt = torch.optim.Adam(list(params.values()), foreach=False, **ADAM)
    losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        step_loss = loss_of(config, ref.forward(inputs), targets)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    fixture["adam_losses"] = torch.tensor(losses)
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file({k: v.contiguous() for k, v in fixture.items()}, path, metadata={"config": meta["config"], "adam": json.dumps(ADAM)})
    print(f"{name}: loss {loss.item():.6f}, {len(params)} tensors -> {os.path.relpath(path, ROOT)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--urpe", default=os.path.join(ROOT, "target", "release", "urpe"), help="the urpe binary")
    parser.add_argument("--only", default="", help="comma-separated case names (default: every case)")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    for seed, case in enumerate(CASES):
        if not only or case[0] in only:
            write_case(args.urpe, *case, seed=seed + 1)


if __name__ == "__main__":
    main()
