"""Writes the torchvision references for the image pipeline and the `classify` example.

Run from the repository root with torch, torchvision, Pillow and safetensors installed:

    python tests/pytorch/make_image_golden.py

It writes, under tests/pytorch/:
- images_golden.txt: for each sample image in data/images (ImageFolder's order), the 64-bit
  FNV-1a hash of the RGB bytes torchvision's eval transforms make of it (Resize(256),
  CenterCrop(224), and Resize(64), CenterCrop(56)), so the Rust side can check its decoding
  and Pillow-exact resizing byte for byte; and {coffee,rocket}-64-56.png, the JPEGs' small
  crops themselves, since JPEG decoders differ by a few levels;
- classify_golden.safetensors: the logits torchvision's ShuffleNetV2 x1.0 gives for each
  sample image after Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet), with the
  deterministic weights of `weights()`, which the Rust test rebuilds from the same formula
  (so no weights file is committed).
"""

import math
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

ROOT = Path("data/images")


def image_paths():
    """ImageFolder's order: classes sorted, files sorted within each."""
    dataset = torchvision.datasets.ImageFolder(str(ROOT))
    return [Path(p) for p, _ in dataset.samples]


def fnv1a(data):
    """64-bit FNV-1a of bytes or of a name's UTF-8 (a tensor's seed)."""
    h = 0xCBF29CE484222325
    for b in data.encode() if isinstance(data, str) else data:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h


def uniform(n, seed):
    """n values in [-1, 1) from SplitMix64 at positions seed, seed + 1, ...: integer
    arithmetic, so Rust rebuilds them exactly."""
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**52 - 1.0


def weights(state_dict):
    """A deterministic stand-in for trained weights: He-uniform convolutions and linear
    layers, batch norms near the identity, small biases."""
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith("num_batches_tracked"):
            out[name] = tensor
            continue
        u = uniform(tensor.numel(), fnv1a(name))
        if name.endswith("running_var"):
            values = 1.0 + 0.1 * u
        elif name.endswith("running_mean") or name.endswith("bias"):
            values = 0.01 * u
        elif tensor.dim() == 1:
            values = 1.0 + 0.1 * u
        else:
            values = u * math.sqrt(6.0 / math.prod(tensor.shape[1:]))
        out[name] = torch.from_numpy(values.astype(np.float32)).reshape(tensor.shape)
    return out


def main():
    paths = image_paths()
    with open("tests/pytorch/images_golden.txt", "w") as f:
        f.write(f"# torchvision {torchvision.__version__}, Pillow {Image.__version__}: "
                "image, resize, crop, FNV-1a of the RGB bytes\n")
        for path in paths:
            image = Image.open(path).convert("RGB")
            for resize, crop in [(256, 224), (64, 56)]:
                out = transforms.CenterCrop(crop)(transforms.Resize(resize)(image))
                f.write(f"{path.relative_to(ROOT)} {resize} {crop} {fnv1a(out.tobytes()):016x}\n")
                # JPEG decoders differ by a few levels (Pillow uses libjpeg-turbo), so the
                # JPEGs' small crops are kept whole, to compare with a tolerance.
                if path.suffix == ".jpg" and crop == 56:
                    out.save(f"tests/pytorch/{path.stem}-{resize}-{crop}.png")

    model = torchvision.models.shufflenet_v2_x1_0()
    model.load_state_dict(weights(model.state_dict()))
    model.eval()
    preprocess = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        logits = model(batch)
    save_file({"logits": logits.contiguous()}, "tests/pytorch/classify_golden.safetensors")
    for path, row in zip(paths, logits):
        print(path, row.topk(5).indices.tolist())


if __name__ == "__main__":
    main()
