#!/usr/bin/env python3
"""Times ERNIE-4.5-VL-28B-A3B's math at its real dimensions on one GPU and writes a cost model
for `pdserve simulate --cost-model FILE`.

What it measures (bf16, PyTorch only, random weights, nothing downloaded):
  * the card's floors: HBM bandwidth (a device-to-device copy) and bf16 matmul FLOP/s;
  * prefill of one dense layer and one MoE layer at 512..8192 tokens (attention causal over the
    chunk, dense MLP / gate + top-6 of 64 routed experts grouped per expert + 2 shared experts);
  * a decode step's dense layer, MoE layer and LM head at batch 1..256 and contexts 1k..32k
    (GQA attention reading the batch's KV, experts grouped per expert);
  * int4 routed experts with torch's tinygemm int4 kernel (`torch._weight_int4pack_mm`) if this
    torch has one; otherwise the report says so.
A whole model step is 1 dense + 27 MoE layers + the LM head (one layer of each kind is timed; the
28 layers are a sum). The coefficients of pdserve's cost model are least-squares fits of those
sums; every measured time is written beside its floor (max of bytes / bandwidth and FLOPs / FLOP/s)
in a report.

Usage (one H200, < 10 minutes):  python3 calibrate.py --out h200-cost.json
Check without a GPU or torch:     python3 calibrate.py --dry-run --out /tmp/dry.json
"""

import argparse
import json
import math
import sys
import time

# ERNIE-4.5-VL-28B-A3B, from its config.json (docs: /work/shared/DESIGN.md section 1)
MODEL = dict(
    hidden=2560,
    layers=28,
    dense_layers=1,
    heads=20,
    kv_heads=4,
    head_dim=128,
    dense_inter=12288,
    experts=64,
    text_inter=1536,
    vision_inter=512,
    top_k=6,
    shared_inter=3072,  # 2 shared experts of moe_intermediate_size 1536, fused
    vocab=103424,
)
# H200 SXM datasheet figures, used by --dry-run and printed beside the measured floors
H200_HBM_BYTES_PER_S = 4.8e12
H200_BF16_FLOPS = 989e12

PREFILL_TOKENS = [512, 1024, 2048, 4096, 8192]
DECODE_BATCHES = [1, 8, 32, 64, 128, 256]
DECODE_CONTEXTS = [1024, 4096, 16384, 32768]
BF16 = 2


# ---------------------------------------------------------------- floors (pure Python)


def attention_weight_bytes(m):
    q = m["hidden"] * m["heads"] * m["head_dim"]
    kv = 2 * m["hidden"] * m["kv_heads"] * m["head_dim"]
    return (2 * q + kv) * BF16


def swiglu_bytes(m, inter):
    return 3 * m["hidden"] * inter * BF16


def prefill_layer_floor(m, kind, n, bw, flops):
    """(seconds, bytes, flops) lower bound of one layer's prefill of n tokens."""
    h, d = m["hidden"], m["head_dim"]
    qkvo = 2 * n * (2 * h * m["heads"] * d + 2 * h * m["kv_heads"] * d)
    attn = 2 * 2 * m["heads"] * d * n * n / 2  # causal: half of QK^T and PV
    if kind == "dense":
        mlp = 2 * n * 3 * h * m["dense_inter"]
        weights = attention_weight_bytes(m) + swiglu_bytes(m, m["dense_inter"])
    else:
        mlp = 2 * n * 3 * h * (m["top_k"] * m["text_inter"] + m["shared_inter"])
        mlp += 2 * n * h * m["experts"]
        active = min(m["experts"], n * m["top_k"])
        weights = (
            attention_weight_bytes(m)
            + active * swiglu_bytes(m, m["text_inter"])
            + swiglu_bytes(m, m["shared_inter"])
        )
    f = qkvo + attn + mlp
    b = weights + 4 * n * h * BF16
    return max(b / bw, f / flops), b, f


def expected_active_experts(m, batch):
    """Distinct experts hit by batch tokens choosing top_k of E uniformly."""
    e, k = m["experts"], m["top_k"]
    return e * (1 - (1 - k / e) ** batch)


def decode_layer_floor(m, kind, batch, context, bw, flops):
    h, d = m["hidden"], m["head_dim"]
    kv_bytes = batch * context * 2 * m["kv_heads"] * d * BF16
    f = 2 * batch * (2 * h * m["heads"] * d + 2 * h * m["kv_heads"] * d)
    f += 2 * 2 * batch * m["heads"] * d * context
    if kind == "dense":
        weights = attention_weight_bytes(m) + swiglu_bytes(m, m["dense_inter"])
        f += 2 * batch * 3 * h * m["dense_inter"]
    else:
        active = expected_active_experts(m, batch)
        weights = (
            attention_weight_bytes(m)
            + active * swiglu_bytes(m, m["text_inter"])
            + swiglu_bytes(m, m["shared_inter"])
        )
        f += 2 * batch * 3 * h * (m["top_k"] * m["text_inter"] + m["shared_inter"])
    b = weights + kv_bytes
    return max(b / bw, f / flops), b, f


def head_floor(m, batch, bw, flops):
    b = m["vocab"] * m["hidden"] * BF16
    f = 2 * batch * m["vocab"] * m["hidden"]
    return max(b / bw, f / flops), b, f


# ---------------------------------------------------------------- fitting (pure Python)


def least_squares(rows, ys):
    """Coefficients c minimising |A c - y| for a few columns (normal equations, Gauss-Jordan)."""
    k = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    aty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(k)]
    for col in range(k):
        piv = max(range(col, k), key=lambda r: abs(ata[r][col]))
        ata[col], ata[piv] = ata[piv], ata[col]
        aty[col], aty[piv] = aty[piv], aty[col]
        p = ata[col][col]
        if abs(p) < 1e-300:
            return [0.0] * k
        for j in range(k):
            ata[col][j] /= p
        aty[col] /= p
        for r in range(k):
            if r != col and ata[r][col] != 0:
                factor = ata[r][col]
                for j in range(k):
                    ata[r][j] -= factor * ata[col][j]
                aty[r] -= factor * aty[col]
    return aty


def non_negative_fit(rows, ys):
    """Least squares; a coefficient fitted below 0 is fixed at 0 and the rest refitted."""
    k = len(rows[0])
    keep = list(range(k))
    while True:
        c = least_squares([[r[i] for i in keep] for r in rows], ys)
        bad = [keep[i] for i, v in enumerate(c) if v < 0]
        if not bad:
            out = [0.0] * k
            for i, v in zip(keep, c):
                out[i] = v
            return out
        keep = [i for i in keep if i not in bad]
        if not keep:
            return [0.0] * k


def model_prefill_ms(m, dense_ms, moe_ms, head_ms):
    return m["dense_layers"] * dense_ms + (m["layers"] - m["dense_layers"]) * moe_ms + head_ms


def fit_cost_model(m, prefill, decode, source):
    """pdserve's CostModel keys from per-layer timings (ms).

    prefill: {n: (dense_ms, moe_ms, head_ms)}; decode: {(batch, ctx): (dense_ms, moe_ms, head_ms)}.
    Prefill step = base + perToken * n + attention * n^2 (one chunk at offset 0);
    decode step = base + perSequence * B + perContextToken * (B * ctx).
    """
    rows, ys = [], []
    for n, (d, e, h) in sorted(prefill.items()):
        rows.append([1.0, float(n), float(n) * n])
        ys.append(model_prefill_ms(m, d, e, h))
    pb, pt, pa = non_negative_fit(rows, ys)
    rows, ys = [], []
    for (b, c), (d, e, h) in sorted(decode.items()):
        rows.append([1.0, float(b), float(b) * c])
        ys.append(model_prefill_ms(m, d, e, h))
    db, ds, dc = non_negative_fit(rows, ys)
    return {
        "name": source,
        "prefillBaseMs": round(max(pb, 0.0), 4),
        "prefillPerTokenMs": max(pt, 1e-6),
        "prefillAttentionMs": max(pa, 0.0),
        "decodeBaseMs": round(max(db, 0.01), 4),
        "decodePerSequenceMs": max(ds, 0.0),
        "decodePerContextTokenMs": max(dc, 0.0),
        "kvBytesPerToken": 2 * m["layers"] * m["kv_heads"] * m["head_dim"] * BF16,
    }


def write_outputs(path, cost, report):
    """The cost model (keys pdserve reads; "_"-prefixed keys are notes it skips) and a report."""
    doc = dict(cost)
    doc["_calibration"] = {
        "script": "scripts/gpu-calibrate/calibrate.py",
        "model": "ernie-4.5-vl-28b-a3b, bf16",
        "floors": report["floors"],
        "int4_experts": report["int4_experts"],
        "notes": report["notes"],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")
    report_path = path[:-5] + "-report.json" if path.endswith(".json") else path + ".report.json"
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return report_path


# ---------------------------------------------------------------- dry run (no torch)


def dry_run(args):
    """Exercises the floors, the fit and the file writing with roofline times (no GPU)."""
    m = MODEL
    bw, fl = H200_HBM_BYTES_PER_S, H200_BF16_FLOPS
    prefill, decode, rows = {}, {}, []
    for n in PREFILL_TOKENS:
        d = prefill_layer_floor(m, "dense", n, bw, fl)[0] * 1e3
        e = prefill_layer_floor(m, "moe", n, bw, fl)[0] * 1e3
        h = head_floor(m, 1, bw, fl)[0] * 1e3
        prefill[n] = (d, e, h)
        rows.append({"phase": "prefill", "tokens": n, "dense_ms": d, "moe_ms": e, "floor": True})
    for b in DECODE_BATCHES:
        for c in DECODE_CONTEXTS:
            d = decode_layer_floor(m, "dense", b, c, bw, fl)[0] * 1e3
            e = decode_layer_floor(m, "moe", b, c, bw, fl)[0] * 1e3
            h = head_floor(m, b, bw, fl)[0] * 1e3
            decode[(b, c)] = (d, e, h)
            rows.append({"phase": "decode", "batch": b, "context": c, "dense_ms": d, "moe_ms": e})
    cost = fit_cost_model(m, prefill, decode, "dry-run: H200 roofline floors, NOT measured")
    report = {
        "dry_run": True,
        "floors": {"hbm_bytes_per_s": bw, "bf16_flops": fl, "measured": False},
        "int4_experts": "not run (dry run)",
        "notes": ["dry run: every time is the datasheet roofline floor, nothing was measured"],
        "rows": rows,
    }
    report_path = write_outputs(args.out, cost, report)
    print(json.dumps(cost, indent=2))
    print("wrote %s and %s (dry run: floors only)" % (args.out, report_path))
    return 0


# ---------------------------------------------------------------- the measured run (torch)


def measured_run(args):
    import torch  # only here: --dry-run needs no torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print("no CUDA device; use --dry-run to check the script without one", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    torch.manual_seed(0)
    m = MODEL
    t_start = time.time()
    budget_s = args.budget_seconds
    h, d, hq, hkv = m["hidden"], m["head_dim"], m["heads"], m["kv_heads"]
    notes = []

    def timed(fn, min_ms=30.0, max_iter=20):
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        one = max(start.elapsed_time(end), 1e-3)
        iters = int(max(1, min(max_iter, min_ms / one)))
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters

    def w(out, inp):
        return (torch.randn(out, inp, device=dev, dtype=torch.bfloat16) / math.sqrt(inp))

    # floors
    big = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(big)
    copy_ms = timed(lambda: dst.copy_(big))
    hbm = 2 * big.numel() / (copy_ms / 1e3)
    del big, dst
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    mm_ms = timed(lambda: a @ a)
    flops = 2 * 8192**3 / (mm_ms / 1e3)
    del a
    print("floors: HBM copy %.2f TB/s (datasheet 4.8), bf16 matmul %.0f TFLOP/s (datasheet 989)"
          % (hbm / 1e12, flops / 1e12), flush=True)

    # one layer's weights of each kind
    wq, wk, wv, wo = w(hq * d, h), w(hkv * d, h), w(hkv * d, h), w(h, hq * d)
    dense_gu, dense_d = w(2 * m["dense_inter"], h), w(h, m["dense_inter"])
    gate = w(m["experts"], h)
    e_gu = torch.randn(m["experts"], 2 * m["text_inter"], h, device=dev, dtype=torch.bfloat16) / 50
    e_d = torch.randn(m["experts"], h, m["text_inter"], device=dev, dtype=torch.bfloat16) / 40
    s_gu, s_d = w(2 * m["shared_inter"], h), w(h, m["shared_inter"])
    head = w(m["vocab"], h)

    def swiglu(x, gu, dn):
        g, u = (x @ gu.t()).chunk(2, dim=-1)
        return (F.silu(g) * u) @ dn.t()

    grouped = getattr(torch, "_grouped_mm", None)

    def routed(x):
        logits = (x.float() @ gate.float().t()).softmax(-1)
        wts, idx = logits.topk(m["top_k"], dim=-1)
        wts = (wts / wts.sum(-1, keepdim=True)).to(x.dtype)
        flat = idx.reshape(-1)
        order = flat.argsort()
        rows = x.repeat_interleave(m["top_k"], dim=0)[order]
        counts = torch.bincount(flat, minlength=m["experts"])
        out = torch.empty_like(rows)
        start = 0
        for e, c in enumerate(counts.tolist()):
            if c:
                out[start:start + c] = swiglu(rows[start:start + c], e_gu[e], e_d[e])
                start += c
        y = torch.empty_like(out)
        y[order] = out
        return (y.view(x.shape[0], m["top_k"], h) * wts.unsqueeze(-1)).sum(1)

    def attention_prefill(x):
        n = x.shape[0]
        q = (x @ wq.t()).view(1, n, hq, d).transpose(1, 2)
        k = (x @ wk.t()).view(1, n, hkv, d).transpose(1, 2).repeat_interleave(hq // hkv, 1)
        v = (x @ wv.t()).view(1, n, hkv, d).transpose(1, 2).repeat_interleave(hq // hkv, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return o.transpose(1, 2).reshape(n, hq * d) @ wo.t()

    def attention_decode(x, kc, vc):
        b = x.shape[0]
        # GQA decode as SDPA over [B, kv_heads, group, d] queries: the KV is read once
        q = (x @ wq.t()).view(b, hkv, hq // hkv, d)
        _ = x @ wk.t(), x @ wv.t()
        o = F.scaled_dot_product_attention(q, kc, vc)
        return o.reshape(b, hq * d) @ wo.t()

    prefill, decode, rows = {}, {}, []
    for n in PREFILL_TOKENS:
        x = torch.randn(n, h, device=dev, dtype=torch.bfloat16)
        dense_ms = timed(lambda: swiglu(x + attention_prefill(x), dense_gu, dense_d))
        moe_ms = timed(lambda: routed(x + attention_prefill(x)) + swiglu(x, s_gu, s_d))
        head_ms = timed(lambda: x[-1:] @ head.t())
        prefill[n] = (dense_ms, moe_ms, head_ms)
        fd = prefill_layer_floor(m, "dense", n, hbm, flops)[0] * 1e3
        fe = prefill_layer_floor(m, "moe", n, hbm, flops)[0] * 1e3
        rows.append(dict(phase="prefill", tokens=n, dense_ms=dense_ms, moe_ms=moe_ms,
                         head_ms=head_ms, dense_floor_ms=fd, moe_floor_ms=fe,
                         model_ms=model_prefill_ms(m, dense_ms, moe_ms, head_ms)))
        print("prefill %5d tokens: dense %.2f ms (floor %.2f), MoE %.2f ms (floor %.2f)"
              % (n, dense_ms, fd, moe_ms, fe), flush=True)

    for c in DECODE_CONTEXTS:
        for b in DECODE_BATCHES:
            if time.time() - t_start > budget_s * 0.8:
                notes.append("stopped the decode grid early at batch %d context %d (time budget)"
                             % (b, c))
                break
            kc = torch.randn(b, hkv, c, d, device=dev, dtype=torch.bfloat16)
            vc = torch.randn(b, hkv, c, d, device=dev, dtype=torch.bfloat16)
            x = torch.randn(b, h, device=dev, dtype=torch.bfloat16)
            dense_ms = timed(lambda: swiglu(x + attention_decode(x, kc, vc), dense_gu, dense_d))
            moe_ms = timed(lambda: routed(x + attention_decode(x, kc, vc)) + swiglu(x, s_gu, s_d))
            head_ms = timed(lambda: x @ head.t())
            decode[(b, c)] = (dense_ms, moe_ms, head_ms)
            fd = decode_layer_floor(m, "dense", b, c, hbm, flops)[0] * 1e3
            fe = decode_layer_floor(m, "moe", b, c, hbm, flops)[0] * 1e3
            rows.append(dict(phase="decode", batch=b, context=c, dense_ms=dense_ms, moe_ms=moe_ms,
                             head_ms=head_ms, dense_floor_ms=fd, moe_floor_ms=fe,
                             model_ms=model_prefill_ms(m, dense_ms, moe_ms, head_ms)))
            print("decode batch %3d ctx %5d: dense %.3f ms (floor %.3f), MoE %.3f ms (floor %.3f)"
                  % (b, c, dense_ms, fd, moe_ms, fe), flush=True)
            del kc, vc
        torch.cuda.empty_cache()

    int4 = int4_experts(torch, dev, m, timed, e_gu)
    if grouped is None:
        notes.append("torch._grouped_mm absent: routed experts ran one matmul set per active expert")
    notes.append("routed experts: one matmul set per active expert (a Python loop), not a fused "
                 "MoE kernel: the MoE figures are an upper bound of what a fused kernel does")
    notes.append("one layer of each kind timed; a model step is 1 dense + 27 MoE layers + head")
    cost = fit_cost_model(m, prefill, decode,
                          "h200 calibrated (%s, torch %s)" % (torch.cuda.get_device_name(0),
                                                              torch.__version__))
    report = {
        "dry_run": False,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "floors": {"hbm_bytes_per_s": hbm, "bf16_flops": flops, "measured": True,
                   "datasheet_hbm_bytes_per_s": H200_HBM_BYTES_PER_S,
                   "datasheet_bf16_flops": H200_BF16_FLOPS},
        "int4_experts": int4,
        "notes": notes,
        "rows": rows,
        "seconds": time.time() - t_start,
    }
    report_path = write_outputs(args.out, cost, report)
    print(json.dumps(cost, indent=2))
    print("wrote %s and %s in %.0f s" % (args.out, report_path, time.time() - t_start))
    return 0


def int4_experts(torch, dev, m, timed, e_gu):
    """bf16 vs int4 (tinygemm, group 128) for one expert's gate+up matmul at 1..64 rows."""
    h, inter = m["hidden"], 2 * m["text_inter"]
    try:
        wq = torch.randint(0, 16, (inter, h), dtype=torch.int32, device=dev)
        try:  # torch >= 2.5 packs from uint8 pairs
            packed_in = (wq[:, ::2] << 4 | wq[:, 1::2]).to(torch.uint8)
            packed = torch._convert_weight_to_int4pack(packed_in, 8)
        except Exception:
            packed = torch._convert_weight_to_int4pack(wq, 8)
        scales = torch.ones(h // 128, inter, 2, dtype=torch.bfloat16, device=dev)
        out = []
        for rows in (1, 8, 64):
            x = torch.randn(rows, h, device=dev, dtype=torch.bfloat16)
            bf = timed(lambda: x @ e_gu[0].t())
            i4 = timed(lambda: torch._weight_int4pack_mm(x, packed, 128, scales))
            out.append({"rows": rows, "bf16_ms": bf, "int4_ms": i4})
        return out
    except Exception as e:  # no kernel in this torch build
        return "no int4 kernel at hand in this torch (%s: %s)" % (type(e).__name__, e)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="h200-cost.json", help="cost model file to write (JSON)")
    p.add_argument("--dry-run", action="store_true",
                   help="no torch, no GPU: write the file from roofline floors (checks the script)")
    p.add_argument("--budget-seconds", type=float, default=540,
                   help="stop the decode grid early past 80%% of this (default 540)")
    args = p.parse_args(argv)
    return dry_run(args) if args.dry_run else measured_run(args)


if __name__ == "__main__":
    sys.exit(main())
