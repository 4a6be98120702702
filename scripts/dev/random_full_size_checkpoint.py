"""A checkpoint of the released entropy model's shape (dim 768, 14 layers, 12 heads, window 512,
99.5 M parameters) with random weights, in the Hub layout (config.json + model.safetensors),
bf16: for throughput and memory runs of `blt ingest`, where the values do not matter."""
import json, os, sys
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
d, layers, heads, vocab, f = 768, 14, 12, 260, 2048
args = {"dim": d, "n_layers": layers, "head_dim": None, "n_heads": heads, "n_kv_heads": None,
        "ffn_dim_multiplier": 1.0, "multiple_of": 256, "norm_eps": 1e-05, "rope_theta": 10000.0,
        "rope_use_fp32_in_outer_product": False, "max_seqlen": 8192, "attn_impl": "xformers",
        "attn_bias_type": "local_block_causal", "eos_id": 2, "vocab_size": vocab,
        "weight_tying": False, "sliding_window": 512}
json.dump({"args": args}, open(os.path.join(out, "config.json"), "w"))
g = torch.Generator().manual_seed(0)
def w(*shape, std=0.02):
    return (torch.randn(*shape, generator=g) * std).to(torch.bfloat16)
t = {"tok_embeddings.weight": w(vocab, d), "norm.weight": torch.ones(d, dtype=torch.bfloat16),
     "output.weight": w(vocab, d)}
for i in range(layers):
    p = f"layers.{i}."
    t[p + "attention.wq.weight"] = w(d, d); t[p + "attention.wk.weight"] = w(d, d)
    t[p + "attention.wv.weight"] = w(d, d); t[p + "attention.wo.weight"] = w(d, d)
    t[p + "feed_forward.w1.weight"] = w(f, d); t[p + "feed_forward.w2.weight"] = w(d, f)
    t[p + "feed_forward.w3.weight"] = w(f, d)
    t[p + "attention_norm.weight"] = torch.ones(d, dtype=torch.bfloat16)
    t[p + "ffn_norm.weight"] = torch.ones(d, dtype=torch.bfloat16)
# safetensors, written directly: 8-byte header length, JSON header, raw little-endian data
header, blobs, at = {}, [], 0
for name, v in t.items():
    b = v.contiguous().view(torch.int16).numpy().tobytes()
    header[name] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [at, at + len(b)]}
    blobs.append(b); at += len(b)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as fh:
    fh.write(len(h).to_bytes(8, "little")); fh.write(h)
    for b in blobs: fh.write(b)
print("params", sum(v.numel() for v in t.values()))
