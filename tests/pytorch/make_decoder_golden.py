"""Writes the PyTorch reference files for tests/decoder.rs.

Run from the repository root with torch and safetensors installed:

    python tests/pytorch/make_decoder_golden.py

In float64, with random weights (biases and LayerNorm affines included) and dropout 0, it
builds nn.TransformerDecoderLayer(8, 2, 16, dropout=0, batch_first=True), post-norm and
norm_first, and runs it on a target of length 4 attending to a memory of length 5:
- `<norm>`: no masks;
- `<norm>_masked`: a causal target mask (`tgt_is_causal`) and a memory key-padding mask;
- `stack_masked`: nn.TransformerDecoder of two post-norm layers, with both masks;
- `transformer_masked` and `transformer_pre_masked`: nn.Transformer(8, 2, 2, 2, 16), post-norm
  and norm_first, on a source of length 5 (the memory above, padded as it) and the target,
  causal.
Each model's state dict goes to tests/pytorch/decoder_<norm>_weights.safetensors. Inputs,
outputs and the gradients of sum(out * R) (R random) with respect to the target, the memory
and every parameter go to tests/pytorch/decoder_golden.safetensors as `<case>.<what>`.
"""

import torch
import torch.nn as nn
from golden_common import randomise, record as record_into, save_golden, save_weights

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

D, HEADS, FF, T, S, B = 8, 2, 16, 4, 5, 2
golden = {}


def record(case, model, inputs, run):
    record_into(golden, case, model, inputs, run)


tgt = torch.randn(B, T, D)
memory = torch.randn(B, S, D)
memory_pad = torch.tensor([[False, False, False, True, True], [False, True, False, False, False]])
golden["memory_pad"] = memory_pad.to(torch.float64)
causal = nn.Transformer.generate_square_subsequent_mask(T)

for name, norm_first in [("post", False), ("pre", True)]:
    layer = nn.TransformerDecoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
    randomise(layer)
    layer.train()  # the training path; dropout is 0, so it is deterministic
    save_weights(f"decoder_{name}", layer)
    record(name, layer, [tgt, memory], lambda t, m: layer(t, m))
    record(f"{name}_masked", layer, [tgt, memory],
           lambda t, m: layer(t, m, tgt_mask=causal, memory_key_padding_mask=memory_pad,
                              tgt_is_causal=True))

stack = nn.TransformerDecoder(
    nn.TransformerDecoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True), 2)
randomise(stack)
stack.train()
save_weights("decoder_stack", stack)
record("stack_masked", stack, [tgt, memory],
       lambda t, m: stack(t, m, tgt_mask=causal, memory_key_padding_mask=memory_pad,
                          tgt_is_causal=True))

for name, norm_first in [("transformer", False), ("transformer_pre", True)]:
    model = nn.Transformer(D, HEADS, 2, 2, FF, dropout=0.0, batch_first=True,
                           norm_first=norm_first)
    randomise(model)
    model.train()
    save_weights(name, model)
    record(f"{name}_masked", model, [memory, tgt],
           lambda s, t: model(s, t, tgt_mask=causal, src_key_padding_mask=memory_pad,
                              memory_key_padding_mask=memory_pad, tgt_is_causal=True))

save_golden(golden, "decoder_golden.safetensors")
