"""Writes the PyTorch reference files for tests/attention.rs.

Run from the repository root with torch and safetensors installed:

    python tests/pytorch/make_transformer_golden.py

In float64, with random weights (biases and LayerNorm affines included, so none sits at its
initial value) and dropout 0, it builds:
- nn.MultiheadAttention(8, 2, batch_first=True): self-attention, a key-padding mask case, a
  causal mask case, and a cross-attention case with separate key and value and a padding mask;
- nn.TransformerEncoderLayer(8, 2, 16, dropout=0, batch_first=True), post-norm and norm_first;
- nn.TransformerEncoder of two post-norm layers.
Each model's state dict goes to tests/pytorch/<name>_weights.safetensors. The inputs, outputs
and the gradients of sum(out * R) (R random) with respect to the inputs and every parameter go
to tests/pytorch/transformer_golden.safetensors, under `<case>.<what>` names.
"""

import torch
import torch.nn as nn
from golden_common import randomise, record as record_into, save_golden, save_weights

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

D, HEADS, FF, S, B = 8, 2, 16, 5, 2
golden = {}


def record(case, model, inputs, run):
    record_into(golden, case, model, inputs, run)


mha = nn.MultiheadAttention(D, HEADS, batch_first=True)
randomise(mha)
save_weights("mha", mha)
x = torch.randn(B, S, D)
record("mha", mha, [x], lambda x: mha(x, x, x, need_weights=False)[0])

pad = torch.tensor([[False, False, False, True, True], [False, True, False, False, False]])
golden["mha_pad.mask"] = pad.to(torch.float64)
record("mha_pad", mha, [x],
       lambda x: mha(x, x, x, key_padding_mask=pad, need_weights=False)[0])

causal = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
record("mha_causal", mha, [x], lambda x: mha(x, x, x, attn_mask=causal, need_weights=False)[0])

q = torch.randn(B, 3, D)
k = torch.randn(B, S, D)
v = torch.randn(B, S, D)
record("mha_cross", mha, [q, k, v],
       lambda q, k, v: mha(q, k, v, key_padding_mask=pad, need_weights=False)[0])

for name, norm_first in [("post", False), ("pre", True)]:
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
    randomise(layer)
    layer.train()  # the training path; dropout is 0, so it is deterministic
    save_weights(name, layer)
    record(name, layer, [x], lambda x: layer(x))

encoder = nn.TransformerEncoder(
    nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True), 2,
    enable_nested_tensor=False)
randomise(encoder)
encoder.train()
save_weights("encoder", encoder)
record("encoder", encoder, [x], lambda x: encoder(x))

save_golden(golden, "transformer_golden.safetensors")
