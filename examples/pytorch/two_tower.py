#!/usr/bin/env python3
"""The reference two-tower model in PyTorch, and its export to pg_recall.

    two_tower.py export   --out DIR [sizes]     random (or your trained) weights → model.safetensors
                                                + config.json, the config also in the file's metadata
    two_tower.py fixture  --out DIR [--dtype f32|f16|bf16] [sizes]
                                                the parity fixture: weights, config, and cases.json
                                                (inputs and PyTorch's outputs) for pg_recall's tests
    two_tower.py bench    [--threads N]         eager CPU latency of one user-tower request

The module names below are the tensor names pg_recall reads (`nn.Linear.weight` is [out, in]);
`config()` writes the same config as `recall_core::tower::reference::config`.
Load the result with `SELECT recall.load_model('name', pg_read_binary_file('.../model.safetensors'))`
or `recall.load_model_file('name', '/path/model.safetensors')`.
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

CONFIG_KEY = "pg_recall.config"


def mlp(width, hidden, output, dropout):
    layers = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, output))
    return nn.Sequential(*layers)


class UserTower(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.user_id = nn.Embedding(s.users, 64)
        self.features = nn.Linear(s.user_features, 64)
        self.behavior = nn.EmbeddingBag(s.items, 64, mode="mean")
        self.mlp = mlp(192, s.hidden, s.output, 0.1)

    def forward(self, user_id, features, behavior, offsets):
        x = torch.cat([self.user_id(user_id), self.features(features), self.behavior(behavior, offsets)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class ItemTower(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.item_id = nn.Embedding(s.items, 64)
        self.category = nn.Embedding(s.categories, 32)
        self.tags = nn.EmbeddingBag(s.tags, 32, mode="mean")
        self.features = nn.Linear(s.item_features, 64)
        self.mlp = mlp(192, s.hidden, s.output, 0.1)

    def forward(self, item_id, category, tags, offsets, features):
        x = torch.cat([self.item_id(item_id), self.category(category), self.tags(tags, offsets),
                       self.features(features)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class TwoTower(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.user_tower = UserTower(s)
        self.item_tower = ItemTower(s)


def mlp_config(prefix, seq):
    layers = []
    for i, m in enumerate(seq):
        module = f"{prefix}.mlp.{i}"
        if isinstance(m, nn.Linear):
            layers.append({"kind": "linear", "module": module, "in": m.in_features, "out": m.out_features,
                           "bias": m.bias is not None})
        elif isinstance(m, nn.BatchNorm1d):
            layers.append({"kind": "batchnorm", "module": module, "dim": m.num_features, "eps": m.eps})
        elif isinstance(m, nn.ReLU):
            layers.append({"kind": "relu"})
        elif isinstance(m, nn.Dropout):
            layers.append({"kind": "dropout", "p": m.p})
        else:
            raise ValueError(f"no pg_recall layer for {m}")
    return layers


def config(model, oov=None):
    """The pg_recall config of `model`; `oov` maps an input name to its out-of-vocabulary row."""
    oov = oov or {}

    def emb(input, module, m, kind="embedding"):
        c = {"kind": kind, "input": input, "module": module, "vocab": m.num_embeddings, "dim": m.embedding_dim}
        if input in oov:
            c["oov_row"] = oov[input]
        return c

    def dense(module, m):
        return {"kind": "dense", "input": "features", "module": module, "in": m.in_features,
                "out": m.out_features, "bias": m.bias is not None}

    u, it = model.user_tower, model.item_tower
    return {
        "format": "pg_recall.two_tower",
        "format_version": 1,
        "towers": {
            "user": {
                "inputs": [emb("user_id", "user_tower.user_id", u.user_id),
                           dense("user_tower.features", u.features),
                           emb("behavior", "user_tower.behavior", u.behavior, "bag")],
                "layers": mlp_config("user_tower", u.mlp),
                "normalize": True,
            },
            "item": {
                "inputs": [emb("item_id", "item_tower.item_id", it.item_id),
                           emb("category", "item_tower.category", it.category),
                           emb("tags", "item_tower.tags", it.tags, "bag"),
                           dense("item_tower.features", it.features)],
                "layers": mlp_config("item_tower", it.mlp),
                "normalize": True,
            },
        },
    }


def export(model, cfg, out, dtype=torch.float32):
    os.makedirs(out, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, "model.safetensors"), metadata={CONFIG_KEY: json.dumps(cfg)})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def randomize(model, seed):
    """Random weights and non-trivial BatchNorm statistics, so the fixture exercises them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 1 else 1.0 / p.shape[-1] ** 0.5))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def map_ids(ids, vocab, oov_row):
    """pg_recall's out-of-vocabulary rule: ids outside 0..vocab use the configured row."""
    return [i if 0 <= i < vocab else oov_row for i in ids]


def bag(lists):
    flat, offsets = [], []
    for ids in lists:
        offsets.append(len(flat))
        flat += ids
    return torch.tensor(flat, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def fixture(args):
    s = sizes(args)
    torch.manual_seed(args.seed)
    model = TwoTower(s)
    randomize(model, args.seed)
    model.eval()
    oov = {"user_id": 0, "category": 0, "tags": 0}
    cfg = config(model, oov)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    export(model, cfg, args.out, dtype)
    # Expected outputs come from the weights as stored: rounded to the file's dtype, then
    # computed in f32 (pg_recall widens on load).
    with torch.no_grad():
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.to(dtype).to(torch.float32))
    g = torch.Generator().manual_seed(args.seed + 1)

    def randint(hi, n):
        return torch.randint(0, hi, (n,), generator=g).tolist()

    users = []
    for c in range(args.cases):
        uid = randint(s.users, 1)[0] if c % 4 else s.users + 5  # every 4th: out of vocabulary
        behavior = [] if c % 5 == 0 else randint(s.items, 1 + c % 7)
        if c % 6 == 3:
            behavior = behavior + behavior[:1]  # a repeated item counts twice in the mean
        features = (torch.randn(s.user_features, generator=g)).tolist()
        users.append({"user_id": uid, "features": features, "behavior": behavior})
    items = []
    for c in range(args.cases):
        cat = randint(s.categories, 1)[0] if c % 3 else -1  # every 3rd: out of vocabulary
        tags = [] if c % 4 == 0 else randint(s.tags, 1 + c % 5)
        if c % 5 == 2:
            tags = tags + [s.tags + 100]
        features = (torch.randn(s.item_features, generator=g)).tolist()
        items.append({"item_id": randint(s.items, 1)[0], "category": cat, "tags": tags, "features": features})
    with torch.no_grad():
        u, it = model.user_tower, model.item_tower
        b, off = bag([c["behavior"] for c in users])
        uo = u(torch.tensor(map_ids([c["user_id"] for c in users], s.users, 0)),
               torch.tensor([c["features"] for c in users]), b, off)
        t, off = bag([map_ids(c["tags"], s.tags, 0) for c in items])
        io = it(torch.tensor([c["item_id"] for c in items]),
                torch.tensor(map_ids([c["category"] for c in items], s.categories, 0)),
                t, off, torch.tensor([c["features"] for c in items]))
    for c, o in zip(users, uo.tolist()):
        c["expected"] = o
    for c, o in zip(items, io.tolist()):
        c["expected"] = o
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"dtype": args.dtype, "torch": torch.__version__, "user": users, "item": items}, f)
    print(f"wrote {args.out}: {len(users)} user and {len(items)} item cases, dtype {args.dtype}")


def bench(args):
    torch.set_num_threads(args.threads)
    s = sizes(args)
    model = TwoTower(s).eval()
    u = model.user_tower
    uid = torch.tensor([4242])
    feats = torch.randn(1, s.user_features)
    b, off = bag([[i * 997 % s.items for i in range(20)]])
    with torch.inference_mode():
        for _ in range(200):
            u(uid, feats, b, off)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            u(uid, feats, b, off)
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"torch": torch.__version__, "threads": args.threads,
                      "p50_us": times[len(times) // 2] * 1e6, "mean_us": sum(times) / len(times) * 1e6}))


def sizes(args):
    return argparse.Namespace(users=args.users, items=args.items, categories=args.categories, tags=args.tags,
                              user_features=args.user_features, item_features=args.item_features,
                              hidden=[int(h) for h in args.hidden.split(",")], output=args.output)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["export", "fixture", "bench"])
    p.add_argument("--out", default="two_tower_model")
    p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cases", type=int, default=16)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--categories", type=int, default=20)
    p.add_argument("--tags", type=int, default=100)
    p.add_argument("--user-features", type=int, default=8)
    p.add_argument("--item-features", type=int, default=8)
    p.add_argument("--hidden", default="256,128")
    p.add_argument("--output", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=5000)
    args = p.parse_args()
    if args.command == "fixture":
        fixture(args)
    elif args.command == "bench":
        bench(args)
    else:
        torch.manual_seed(args.seed)
        model = TwoTower(sizes(args)).eval()
        export(model, config(model), args.out)
        print(f"wrote {args.out}/model.safetensors and config.json")


if __name__ == "__main__":
    main()
