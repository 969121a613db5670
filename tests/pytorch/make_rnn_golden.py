"""Writes the PyTorch reference file for tests/recurrent.rs.

Run from the repository root with torch and safetensors installed:

    python tests/pytorch/make_rnn_golden.py

For each case (RNN tanh/relu, LSTM, GRU; 1 layer, 2 layers, bidirectional, 2-layer
bidirectional) it builds the torch.nn module in float64 with batch_first=True, I=3, H=4,
T=5, B=2, and stores under the prefix `{case}.`: the state dict (PyTorch's names), the
input `x`, initial states `h0` (and `c0`), the output `y` and final states `hn` (`cn`) of
`module(x, h0)`, a fixed weight `r` and the gradients of `sum(y * r)` with respect to `x`
(`grad.x`) and every parameter (`grad.{name}`). Everything goes in tests/pytorch/rnn_golden.safetensors.
"""

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
I, H, T, B = 3, 4, 5, 2
CASES = {
    "rnn": lambda l, bi: torch.nn.RNN(I, H, l, batch_first=True, bidirectional=bi),
    "rnn_relu": lambda l, bi: torch.nn.RNN(I, H, l, nonlinearity="relu", batch_first=True, bidirectional=bi),
    "lstm": lambda l, bi: torch.nn.LSTM(I, H, l, batch_first=True, bidirectional=bi),
    "gru": lambda l, bi: torch.nn.GRU(I, H, l, batch_first=True, bidirectional=bi),
}
out = {}
for kind, make in CASES.items():
    for layers, bi in [(1, False), (2, False), (1, True), (2, True)]:
        case = f"{kind}_l{layers}{'_bi' if bi else ''}"
        m = make(layers, bi).double()
        rows = layers * (2 if bi else 1)
        x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
        h0 = torch.randn(rows, B, H, dtype=torch.float64)
        if kind == "lstm":
            c0 = torch.randn(rows, B, H, dtype=torch.float64)
            y, (hn, cn) = m(x, (h0, c0))
            out[f"{case}.c0"] = c0
            out[f"{case}.cn"] = cn.detach()
        else:
            y, hn = m(x, h0)
        r = torch.randn(y.shape, dtype=torch.float64)
        (y * r).sum().backward()
        for name, p in m.named_parameters():
            out[f"{case}.{name}"] = p.detach().clone()
            out[f"{case}.grad.{name}"] = p.grad.clone()
        out[f"{case}.x"] = x.detach()
        out[f"{case}.grad.x"] = x.grad.clone()
        out[f"{case}.h0"] = h0
        out[f"{case}.y"] = y.detach()
        out[f"{case}.hn"] = hn.detach()
        out[f"{case}.r"] = r
save_file({k: v.contiguous() for k, v in out.items()}, "tests/pytorch/rnn_golden.safetensors")
