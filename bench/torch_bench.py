"""The dpcot model, loss and optimizer in PyTorch, timed the way `dpcot bench` times them.

`cargo xtask bench` runs this beside `dpcot bench` for every shape and prints dpcot/PyTorch
ratios; run it alone with `python bench/torch_bench.py --help`. With `--to-accuracy DIR` it
trains instead, as `dpcot train --data DIR` does, until a target accuracy
(`cargo xtask bench --to-accuracy`).

The model is dpcot-model's decoder (crates/dpcot-model/src/transformer.rs): token embedding plus
fixed sinusoidal positions, LayerNorm, dropout, pre-LN blocks (fused qkv projection, causal
attention, output projection; MLP d -> 4d -> d with tanh-GELU), final LayerNorm, untied head
with bias, PyTorch's default initialisation. The attentions are the same algorithms as
dpcot-attention's kernels, written with the same tensor operations:

- standard: softmax(QK^T / sqrt(d) + causal mask) V, the score matrix materialised;
- sparse: the fixed pattern of Child et al. (block B = ceil(sqrt(L)), one summary per block),
  block-diagonal local scores plus a summary product, merged under one softmax;
- linear: elu+1 feature map, chunks of 64, exclusive prefix sums of the chunk states.

Decoding feeds one token at a time through a KV cache (standard), a block and summary cache
(sparse) or the recurrent state (linear), reading each step's tokens back as dpcot's decoder does.
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED = -1.0e9


def sinusoidal(start, length, d):
    position = torch.arange(start, start + length, dtype=torch.float64)[:, None]
    index = torch.arange(d)
    frequency = torch.pow(10_000.0, -(index - index % 2).to(torch.float64) / d)
    angle = position * frequency
    return torch.where(index % 2 == 0, angle.sin(), angle.cos()).to(torch.float32)


def feature_map(x):
    return x.clamp_min(0.0) + x.clamp_max(0.0).exp()


def default_block_size(max_len):
    b = max(1, math.isqrt(max_len))
    return b if b * b >= max_len else b + 1


def padded(x, length):
    pad = length - x.shape[2]
    return x if pad == 0 else F.pad(x, (0, 0, 0, pad))


def softmax_attention(q, k, v):
    l, d = q.shape[2], q.shape[3]
    future = torch.ones(l, l, dtype=torch.bool).triu(1)
    scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(2, 3)
    return torch.softmax(scores.masked_fill(future, MASKED), dim=3) @ v


def sparse_attention(q, k, v, block, c=1):
    b, h, l, d = q.shape
    bs = min(block, max(l, 1))
    nb = -(-l // bs)
    lp = nb * bs
    q = padded(q * (1.0 / math.sqrt(d)), lp)
    kb = padded(k, lp).reshape(b, h, nb, bs, d)
    vb = padded(v, lp).reshape(b, h, nb, bs, d)
    future = torch.ones(bs, bs, dtype=torch.bool).triu(1)
    local = (q.reshape(b, h, nb, bs, d) @ kb.transpose(3, 4)).masked_fill(future, MASKED)
    if nb == 1:
        return (torch.softmax(local, dim=4) @ vb).reshape(b, h, lp, d)[:, :, :l]
    ks = kb[:, :, :, bs - c :].reshape(b, h, nb * c, d)
    vs = vb[:, :, :, bs - c :].reshape(b, h, nb * c, d)
    i = torch.arange(lp)[:, None]
    s = torch.arange(nb * c)[None, :]
    not_earlier = (s // c) >= (i // bs)
    summary = (q @ ks.transpose(2, 3)).masked_fill(not_earlier, MASKED)
    m_local = local.detach().amax(dim=4).reshape(b, h, lp, 1)
    m = torch.maximum(m_local, summary.detach().amax(dim=3, keepdim=True))
    p_local = (local - m.reshape(b, h, nb, bs, 1)).exp()
    p_summary = (summary - m).exp()
    denominator = p_local.sum(dim=4).reshape(b, h, lp, 1) + p_summary.sum(dim=3, keepdim=True)
    numerator = (p_local @ vb).reshape(b, h, lp, d) + p_summary @ vs
    return (numerator / denominator)[:, :, :l]


def linear_attention(q, k, v, chunk=64, eps=1e-6):
    b, h, l, d = q.shape
    cs = min(chunk, max(l, 1))
    nc = -(-l // cs)
    lp = nc * cs
    qc = padded(feature_map(q), lp).reshape(b, h, nc, cs, d)
    kc = padded(feature_map(k), lp).reshape(b, h, nc, cs, d)
    vc = padded(v, lp).reshape(b, h, nc, cs, d)
    future = torch.ones(cs, cs, dtype=torch.bool).triu(1)
    weights = (qc @ kc.transpose(3, 4)).masked_fill(future, 0.0)
    numerator = weights @ vc
    denominator = weights.sum(dim=4, keepdim=True)
    if nc > 1:

        def exclusive_prefix(per_chunk):
            shifted = torch.cat([torch.zeros_like(per_chunk[:, :, :1]), per_chunk[:, :, :-1]], dim=2)
            return shifted.cumsum(dim=2)

        states = exclusive_prefix(kc.transpose(3, 4) @ vc)
        key_sums = exclusive_prefix(kc.sum(dim=3, keepdim=True))
        numerator = numerator + qc @ states
        denominator = denominator + qc @ key_sums.transpose(3, 4)
    return (numerator / (denominator + eps)).reshape(b, h, lp, d)[:, :, :l]


class Attention(nn.Module):
    def __init__(self, d, heads, kind, max_len):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.output = nn.Linear(d, d)
        self.heads, self.kind = heads, kind
        self.block = default_block_size(max_len)

    def project(self, x):
        b, l, d = x.shape
        qkv = self.qkv(x).reshape(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def merge(self, heads):
        b, h, l, dh = heads.shape
        return self.output(heads.transpose(1, 2).reshape(b, l, h * dh))

    def forward(self, x):
        q, k, v = self.project(x)
        if self.kind == "standard":
            out = softmax_attention(q, k, v)
        elif self.kind == "sparse":
            out = sparse_attention(q, k, v, self.block)
        else:
            out = linear_attention(q, k, v)
        return self.merge(out)

    def new_cache(self):
        return {"t": 0, "k": [], "v": [], "sk": [], "sv": [], "state": None, "z": None}

    def step(self, x, cache):
        q, k, v = self.project(x)
        d = q.shape[3]
        t = cache["t"]
        cache["t"] += 1
        if self.kind == "linear":
            fq, fk = feature_map(q), feature_map(k)
            update = fk.transpose(2, 3) @ v
            cache["state"] = update if cache["state"] is None else cache["state"] + update
            cache["z"] = fk if cache["z"] is None else cache["z"] + fk
            out = (fq @ cache["state"]) / (fq @ cache["z"].transpose(2, 3) + 1e-6)
            return self.merge(out)
        if self.kind == "sparse":
            # The current block, plus the last key of every completed block.
            if t % self.block == 0:
                cache["k"], cache["v"] = [], []
            cache["k"].append(k)
            cache["v"].append(v)
            keys = torch.cat(cache["sk"] + cache["k"], dim=2)
            values = torch.cat(cache["sv"] + cache["v"], dim=2)
            if t % self.block == self.block - 1:
                cache["sk"].append(k)
                cache["sv"].append(v)
        else:
            cache["k"].append(k)
            cache["v"].append(v)
            keys = torch.cat(cache["k"], dim=2)
            values = torch.cat(cache["v"], dim=2)
        weights = torch.softmax((q * (1.0 / math.sqrt(d))) @ keys.transpose(2, 3), dim=3)
        return self.merge(weights @ values)


class Block(nn.Module):
    def __init__(self, d, heads, kind, max_len, dropout):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d)
        self.attention = Attention(d, heads, kind, max_len)
        self.mlp_norm = nn.LayerNorm(d)
        self.mlp_in = nn.Linear(d, 4 * d)
        self.mlp_out = nn.Linear(4 * d, d)
        self.dropout = nn.Dropout(dropout)

    def mlp(self, x):
        hidden = F.gelu(self.mlp_in(self.mlp_norm(x)), approximate="tanh")
        return self.dropout(self.mlp_out(hidden))

    def forward(self, x, cache=None):
        normed = self.attention_norm(x)
        attended = self.attention(normed) if cache is None else self.attention.step(normed, cache)
        x = x + self.dropout(attended)
        return x + self.mlp(x)


class Transformer(nn.Module):
    def __init__(self, vocab, d, layers, heads, kind, max_len, dropout=0.1):
        super().__init__()
        self.d = d
        self.token_embedding = nn.Embedding(vocab, d)
        self.embedding_norm = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(Block(d, heads, kind, max_len, dropout) for _ in range(layers))
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.dropout = nn.Dropout(dropout)

    def embed(self, tokens, start):
        positions = sinusoidal(start, tokens.shape[1], self.d)
        return self.dropout(self.embedding_norm(self.token_embedding(tokens) + positions))

    def forward(self, tokens):
        x = self.embed(tokens, 0)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))

    def step(self, tokens, caches, position):
        x = self.embed(tokens, position)
        for block, cache in zip(self.blocks, caches):
            x = block(x, cache)
        return self.head(self.final_norm(x))[:, -1]


def masked_cross_entropy(logits, targets, mask):
    picked = torch.log_softmax(logits, dim=2).gather(2, targets[:, :, None])[:, :, 0]
    return -(picked * mask).sum() / mask.sum()


def median_seconds(run, warmup, iterations):
    seconds = []
    for i in range(warmup + iterations):
        started = time.perf_counter()
        run()
        if i >= warmup:
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(args):
    torch.manual_seed(args.seed)
    b, l = args.batch, args.seq_len
    tokens = torch.randint(0, args.vocab, (b, l + 1))
    inputs, targets = tokens[:, :l], tokens[:, 1:]
    mask = torch.ones(b, l)
    model = Transformer(args.vocab, args.d_model, args.layers, args.heads, args.model, l)
    # dpcot's defaults: AdamW, lr 1e-3, weight decay 0.01, eps 1e-8, no gradient clipping.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, eps=1e-8)

    def train_step():
        loss = masked_cross_entropy(model(inputs), targets, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train = median_seconds(train_step, args.warmup, args.iterations)

    model.eval()
    with torch.no_grad():
        forward = median_seconds(lambda: model(inputs), args.warmup, args.iterations)

        def decode():
            # Like dpcot's decoder: every step's tokens are read back (to look for the end token).
            caches = [block.attention.new_cache() for block in model.blocks]
            next_tokens = inputs[:, :1]
            for position in range(l):
                ids = model.step(next_tokens, caches, position).argmax(dim=1).tolist()
                next_tokens = torch.tensor(ids)[:, None]

        decode_seconds = median_seconds(decode, args.warmup, args.iterations)
    return {
        "train_step_seconds": train,
        "forward_seconds": forward,
        "decode_tokens_per_second": b * l / decode_seconds,
    }


def read_dataset(path):
    """A dpcot dataset file: its JSON header and its examples as (token ids, prompt length).

    Each line is one example's words; dpcot appends `<eos>`, and the prompt ends with the first
    `<sep>` (dpcot-tasks' dataset.rs).
    """
    with open(path) as f:
        header = json.loads(f.readline())
        ids = {word: i for i, word in enumerate(header["vocab"])}
        examples = []
        for line in f:
            tokens = [ids[word] for word in line.split()] + [ids["<eos>"]]
            examples.append((tokens, tokens.index(ids["<sep>"]) + 1))
    return header, examples


def make_batch(examples):
    """Inputs, next-token targets and the loss mask (targets past the prompt), padded with 0."""
    seq = max(len(tokens) for tokens, _ in examples) - 1
    inputs = torch.zeros(len(examples), seq, dtype=torch.long)
    targets = torch.zeros(len(examples), seq, dtype=torch.long)
    mask = torch.zeros(len(examples), seq)
    for row, (tokens, prompt_len) in enumerate(examples):
        n = len(tokens) - 1
        inputs[row, :n] = torch.tensor(tokens[:-1])
        targets[row, :n] = torch.tensor(tokens[1:])
        mask[row, prompt_len - 1 : n] = 1.0
    return inputs, targets, mask


def teacher_forced_accuracy(model, examples, batch):
    """Share of examples whose every supervised token is the argmax: dpcot's headline for LIS."""
    right = 0
    with torch.no_grad():
        for start in range(0, len(examples), batch):
            inputs, targets, mask = make_batch(examples[start : start + batch])
            wrong = (model(inputs).argmax(dim=2) != targets) & (mask > 0)
            right += int((~wrong.any(dim=1)).sum())
    return right / len(examples)


def train_to_accuracy(args):
    """Trains as `dpcot train --data DIR` does until the validation accuracy reaches the target.

    The same split (the last `--validation-examples` of train.txt, training examples equal to
    one of them left out), the same schedule (linear warm-up, then linear decay to 0 at
    `--steps`), AdamW with weight decay on the matrices only, evaluation every `--eval-every`
    steps. Only the training steps are timed; evaluation is not.
    """
    torch.manual_seed(args.seed)
    header, train = read_dataset(f"{args.to_accuracy}/train.txt")
    validation = train[-args.validation_examples :]
    held_out = {tuple(tokens) for tokens, _ in validation}
    train = [e for e in train[: -args.validation_examples] if tuple(e[0]) not in held_out]
    model = Transformer(
        len(header["vocab"]), args.d_model, args.layers, args.heads, args.model, header["max_len"], args.dropout
    )
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": 0.01}, {"params": vectors, "weight_decay": 0.0}],
        lr=args.learning_rate,
        eps=1e-8,
    )

    def learning_rate(step):
        if step < args.warmup_steps:
            return args.learning_rate * (step + 1) / args.warmup_steps
        return args.learning_rate * (args.steps - step) / max(args.steps - args.warmup_steps, 1)

    evaluations, train_seconds, order = [], 0.0, []
    started_wall = time.perf_counter()
    for step in range(args.steps):
        started = time.perf_counter()
        model.train()
        if len(order) < args.batch:
            order.extend(torch.randperm(len(train)).tolist())
        picked, order = order[: args.batch], order[args.batch :]
        inputs, targets, mask = make_batch([train[i] for i in picked])
        loss = masked_cross_entropy(model(inputs), targets, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        optimizer.step()
        train_seconds += time.perf_counter() - started
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            model.eval()
            accuracy = teacher_forced_accuracy(model, validation, args.batch)
            evaluations.append({"step": done, "accuracy": accuracy, "train_seconds": train_seconds})
            if accuracy >= args.target:
                break
    return {
        "reached_target": evaluations[-1]["accuracy"] >= args.target,
        "steps": evaluations[-1]["step"],
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - started_wall,
        "evaluations": evaluations,
    }


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def measure_ops(args):
    """The operations of a training step one by one, named as `dpcot bench --ops` names them."""
    torch.manual_seed(args.seed)
    b, l, d, h = args.batch, args.seq_len, args.d_model, args.heads
    x = torch.randn(b, l, d)
    wide = torch.randn(b, l, 4 * d)
    q = torch.randn(b, h, l, d // h)
    scores = torch.randn(b, h, l, l)
    linear = nn.Linear(d, 4 * d)
    norm = nn.LayerNorm(d)
    dropout = nn.Dropout(0.1)
    logits = torch.randn(b * l, args.vocab)
    targets = torch.randint(0, args.vocab, (b * l,))
    weights = torch.ones(b * l)

    def cross_entropy_sum(z):
        picked = torch.log_softmax(z, dim=1).gather(1, targets[:, None])[:, 0]
        return -(picked * weights).sum()

    def backward_of(op, t):
        t = t.detach().requires_grad_()
        op(t).sum().backward()

    def no_grad(op):
        def run():
            with torch.no_grad():
                op()

        return run

    ops = [
        ("linear d→4d", no_grad(lambda: linear(x))),
        ("linear d→4d fwd+bwd", lambda: backward_of(linear, x)),
        ("matmul QKᵀ", no_grad(lambda: q @ q.transpose(2, 3))),
        ("softmax", no_grad(lambda: torch.softmax(scores, dim=3))),
        ("softmax fwd+bwd", lambda: backward_of(lambda t: torch.softmax(t, dim=3), scores)),
        ("layer_norm fwd+bwd", lambda: backward_of(norm, x)),
        ("cross_entropy fwd+bwd", lambda: backward_of(cross_entropy_sum, logits)),
        ("gelu_tanh fwd+bwd", lambda: backward_of(gelu_tanh, wide)),
        ("dropout", lambda: dropout(wide)),
        ("add", no_grad(lambda: wide + wide)),
        ("exp", no_grad(lambda: wide.exp())),
    ]
    return [{"op": name, "seconds": median_seconds(run, args.warmup, args.iterations)} for name, run in ops]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["standard", "sparse", "linear"], default="standard")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: all cores]")
    parser.add_argument("--ops", action="store_true", help="time the step's operations one by one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    training = parser.add_argument_group("--to-accuracy: training until a target accuracy")
    training.add_argument("--to-accuracy", metavar="DIR", help="a dpcot dataset directory to train on")
    training.add_argument("--steps", type=int, default=12000, help="the schedule's horizon")
    training.add_argument("--learning-rate", type=float, default=1e-3)
    training.add_argument("--warmup-steps", type=int, default=400)
    training.add_argument("--dropout", type=float, default=0.0)
    training.add_argument("--eval-every", type=int, default=250)
    training.add_argument("--validation-examples", type=int, default=500)
    training.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.to_accuracy:
        result = train_to_accuracy(args)
        if args.json:
            print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "training": result}))
        else:
            for e in result["evaluations"]:
                print(f"step {e['step']}: validation {100 * e['accuracy']:.1f}% after {e['train_seconds']:.1f} s")
        return
    if args.ops:
        ops = measure_ops(args)
        if args.json:
            print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ops": ops}))
        else:
            for op in ops:
                print(f"{op['op']:<24} {1e3 * op['seconds']:>9.3f} ms")
        return
    timings = measure(args)
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "timings": timings}))
    else:
        print(
            f"pytorch {args.model} d_model={args.d_model} seq_len={args.seq_len} batch={args.batch}: "
            f"train step {timings['train_step_seconds']:.3f} s, forward {timings['forward_seconds']:.3f} s, "
            f"decode {timings['decode_tokens_per_second']:.0f} tokens/s"
        )


if __name__ == "__main__":
    main()
