#!/usr/bin/env python3
"""Writes the parity fixture of dpcot's reference-checkpoint loader.

A tiny model of the reference benchmark's architecture (Feng et al. 2023, guyuntian/CoT_benchmark,
`model.py`), re-implemented here from its definition, with every parameter drawn at random (so
that a swapped, transposed or mis-split tensor shows in the logits), saved

  - as `torch.save(model.state_dict())` -> tiny_reference.pt (parameters and the three buffers
    `pe`, `attn.bias`, `attn.RPE`, exactly the names the reference saves), and
  - as safetensors with the parameters only -> tiny_reference.safetensors,

plus the logits of a few fixed inputs -> tiny_reference_logits.json, computed in float64 from the
float32 weights. `crates/dpcot-model/tests/pretrained.rs` loads both files and must reproduce the
logits within 1e-4; it needs neither Python nor torch.

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch safetensors numpy
    /tmp/torchenv/bin/python tools/reference_fixture.py

The architecture, as the reference defines it:
  embedding: token embedding (padding index 0) + fixed sinusoidal table `pe` [1, maxlen, d]
             (float32, pe[p, 2i] = sin(p * exp(2i * -ln(10000)/d)), pe[p, 2i+1] = cos(...)),
             then LayerNorm (no dropout inside; GPT applies dropout after it);
  block:     x + c_proj(attn(ln_1(x))), then x + c_proj(gelu_tanh(c_fc(ln_2(x))));
             attention: c_attn: d -> 3d, split as [q | k | v] each d wide, each viewed as
             [heads, d/heads]; scores q.k^T / sqrt(d/heads), causal mask from the buffer `bias`
             (lower-triangular ones, [1, 1, maxlen, maxlen]); `RPE` [1, heads, maxlen, maxlen] is
             the ALiBi table, only added with --rpe (not here);
  head:      ln_f, then lm_head: d -> vocab with bias (untied).
"""

import json
import math
import os

import torch
from torch import nn
from safetensors.torch import save_file

VOCAB, D_MODEL, LAYERS, HEADS, MAXLEN = 21, 16, 2, 4, 16
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "dpcot-model", "tests", "fixtures")


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok_embed = nn.Embedding(VOCAB, D_MODEL, padding_idx=0)
        position = torch.arange(MAXLEN, dtype=torch.float32)[:, None]
        rate = torch.exp(torch.arange(0, D_MODEL, 2, dtype=torch.float32) * (-math.log(10000.0) / D_MODEL))
        table = torch.zeros(MAXLEN, D_MODEL)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)
        self.register_buffer("pe", table[None])
        self.norm = nn.LayerNorm(D_MODEL)

    def forward(self, ids):
        return self.norm(self.tok_embed(ids) + self.pe[:, : ids.shape[1]])


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.c_proj = nn.Linear(D_MODEL, D_MODEL)
        self.register_buffer("bias", torch.tril(torch.ones(MAXLEN, MAXLEN))[None, None])
        # The ALiBi table of the reference's --rpe option: saved, unused without it.
        distance = torch.arange(MAXLEN)[:, None] - torch.arange(MAXLEN)[None, :]
        slopes = torch.tensor([2.0 ** (-8.0 / HEADS * (h + 1)) for h in range(HEADS)])
        alibi = -distance.clamp(min=0).float()[None] * slopes[:, None, None]
        self.register_buffer("RPE", alibi[None])

    def forward(self, x):
        b, t, d = x.shape
        dh = d // HEADS
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.reshape(b, t, HEADS, dh).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        scores = scores.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D_MODEL)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(D_MODEL)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(D_MODEL, 4 * D_MODEL), c_proj=nn.Linear(4 * D_MODEL, D_MODEL)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(gelu_tanh(self.mlp.c_fc(self.ln_2(x))))


class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(embedding=Embed(), h=nn.ModuleList([Block() for _ in range(LAYERS)]), ln_f=nn.LayerNorm(D_MODEL))
        )
        self.lm_head = nn.Linear(D_MODEL, VOCAB, bias=True)

    def forward(self, ids):
        x = self.transformer.embedding(ids)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def main():
    torch.manual_seed(20240214)
    model = Reference()
    with torch.no_grad():
        # Every parameter random (LayerNorm scales around 1), so that a swapped, transposed or
        # mis-split tensor changes the logits.
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1.0 + 0.3 * torch.randn_like(module.weight))
                module.bias.copy_(0.3 * torch.randn_like(module.bias))
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn_like(module.weight) / math.sqrt(module.in_features))
                module.bias.copy_(0.3 * torch.randn_like(module.bias))
            elif isinstance(module, nn.Embedding):
                module.weight.copy_(torch.randn_like(module.weight))
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    state = model.state_dict()
    torch.save(state, os.path.join(OUT, "tiny_reference.pt"))
    buffers = {name for name, _ in model.named_buffers()}
    params = {k: v.contiguous() for k, v in state.items() if k not in buffers}
    assert buffers == {"transformer.embedding.pe"} | {f"transformer.h.{i}.attn.{b}" for i in range(LAYERS) for b in ("bias", "RPE")}
    save_file(params, os.path.join(OUT, "tiny_reference.safetensors"))

    # Arithmetic-vocabulary sequences (ids), of different lengths, up to the full table.
    inputs = [
        [10, 3, 11, 9, 13, 2],
        [18, 6, 7, 15, 5, 13, 8, 5, 20, 9, 18, 6, 14, 5, 20, 9],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    ]
    reference64 = Reference().double()
    reference64.load_state_dict({k: v.double() for k, v in state.items()})
    reference64.eval()
    logits = []
    with torch.no_grad():
        for ids in inputs:
            out = reference64(torch.tensor([ids]))[0]
            logits.append(out.tolist())
            out32 = model(torch.tensor([ids]))[0].double()
            assert (out32 - out).abs().max() < 1e-4
    with open(os.path.join(OUT, "tiny_reference_logits.json"), "w") as f:
        json.dump(
            dict(
                about="logits of tools/reference_fixture.py's tiny reference model, float64 from the float32 weights",
                vocab_size=VOCAB, d_model=D_MODEL, n_layers=LAYERS, n_heads=HEADS, maxlen=MAXLEN,
                inputs=inputs,
                logits=[[[round(v, 7) for v in row] for row in seq] for seq in logits],
            ),
            f,
        )
    for name in ("tiny_reference.pt", "tiny_reference.safetensors", "tiny_reference_logits.json"):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")


if __name__ == "__main__":
    main()
