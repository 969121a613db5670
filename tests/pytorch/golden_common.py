"""Helpers shared by the Transformer golden scripts (make_transformer_golden.py,
make_decoder_golden.py): random weights, recording a case's output and gradients, saving."""

import torch
from safetensors.torch import save_file

OUT = "tests/pytorch/"


def randomise(model):
    """Every parameter (biases and norm affines included) away from its initial value."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def record(golden, case, model, inputs, run):
    """Runs `run(*inputs)`; stores inputs, output and gradients of sum(out * R) in `golden`."""
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    model.zero_grad()
    out = run(*inputs)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    for i, t in enumerate(inputs):
        golden[f"{case}.input{i}"] = t.detach().clone()
        golden[f"{case}.input{i}_grad"] = t.grad.detach().clone()
    golden[f"{case}.output"] = out.detach().clone()
    golden[f"{case}.r"] = r
    for name, p in model.named_parameters():
        golden[f"{case}.grad.{name}"] = p.grad.detach().clone()


def save_weights(name, model):
    """The model's state dict to tests/pytorch/<name>_weights.safetensors."""
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              OUT + f"{name}_weights.safetensors")


def save_golden(golden, file):
    save_file({k: v.contiguous() for k, v in golden.items()}, OUT + file)
