"""Writes the PyTorch reference files for tests/pytorch_interop.rs.

Run from the repository root with torch, torchvision and safetensors installed:

    python tests/pytorch/make_golden.py

It writes, under tests/pytorch/:
- small_{resnet,mobilenet,vgg}.safetensors: state dicts (float32) of three small networks built
  from torchvision's own ResNet, MobileNetV2 and VGG building blocks;
- small_nets_golden.safetensors: an input batch and each network's output on it in eval mode,
  computed in float64 from the same (float32-rounded) weights;
- small_{inception,shufflenet}.safetensors and zoo_blocks_golden.safetensors: the same for two
  small networks built from torchvision's GoogLeNet and ShuffleNetV2 units (an Inception block
  and a ceil-mode max pool; both kinds of ShuffleNetV2 InvertedResidual);
- torchvision_keys.txt: every state-dict name and shape of torchvision's full-size models, so the
  Rust side can check its name maps without shipping their weights.
Batch-norm running statistics are randomised so that they matter in eval mode.
"""

import torch
import torch.nn as nn
import torchvision
from torchvision.models.googlenet import BasicConv2d, Inception
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.shufflenetv2 import InvertedResidual as ShuffleUnit
from torchvision.models.resnet import BasicBlock, Bottleneck
from safetensors.torch import save_file

torch.manual_seed(0)


class TinyResNet(nn.Module):
    """torchvision's ResNet layout at width 8: stem, a basic block, a strided basic block with a
    projection, a bottleneck block with a projection, global pooling and fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, down))
        down = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))
        self.layer3 = nn.Sequential(Bottleneck(16, 8, 2, down))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyMobileNet(nn.Module):
    """torchvision's MobileNetV2 blocks: an expansion-6 block with its shortcut and a strided one."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()),
            InvertedResidual(8, 8, 1, 6),
            InvertedResidual(8, 16, 2, 6),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def tiny_vgg():
    """torchvision's VGG layout with batch norm, two stages, on 16x16 inputs."""
    cfg = [8, "M", 16, 16, "M"]
    features = torchvision.models.vgg.make_layers(cfg, batch_norm=True)
    classifier = nn.Sequential(
        nn.Linear(16 * 4 * 4, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 32),
        nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10),
    )
    net = nn.Module()
    net.features = features
    net.classifier = classifier
    net.forward = lambda x: classifier(torch.flatten(features(x), 1))
    return net


class TinyInception(nn.Module):
    """torchvision's GoogLeNet units at width 8: a BasicConv2d stem, an Inception block, the
    ceil-mode max pool (16 -> 8, its last windows partial), global pooling and fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = BasicConv2d(3, 8, kernel_size=3, padding=1)
        self.inception = Inception(8, 4, 4, 6, 2, 3, 3)
        self.maxpool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.inception(self.conv1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class TinyShuffleNet(nn.Module):
    """torchvision's ShuffleNetV2 layout at width 8: stem, a downsampling unit (8 -> 16
    channels) and a channel-split unit, global pooling and fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
        )
        self.stage2 = nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stage2(self.conv1(x))
        return self.fc(x.mean([2, 3]))


def randomise_batch_norms(net):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def main():
    nets = {"resnet": TinyResNet(), "mobilenet": TinyMobileNet(), "vgg": tiny_vgg()}
    golden = {}
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    golden["input"] = x
    for name, net in nets.items():
        randomise_batch_norms(net)
        net.eval()
        weights = {k: t.detach().float().contiguous() for k, t in net.state_dict().items()}
        save_file(weights, f"tests/pytorch/small_{name}.safetensors")
        with torch.no_grad():
            golden[name] = net.double()(x).contiguous()
    save_file(golden, "tests/pytorch/small_nets_golden.safetensors")

    # Written after the first three so that their files stay as they were.
    zoo = {"inception": TinyInception(), "shufflenet": TinyShuffleNet()}
    golden = {"input": x}
    for name, net in zoo.items():
        randomise_batch_norms(net)
        net.eval()
        weights = {k: t.detach().float().contiguous() for k, t in net.state_dict().items()}
        save_file(weights, f"tests/pytorch/small_{name}.safetensors")
        with torch.no_grad():
            golden[name] = net.double()(x).contiguous()
    save_file(golden, "tests/pytorch/zoo_blocks_golden.safetensors")

    full = {
        "vgg11": torchvision.models.vgg11,
        "vgg11_bn": torchvision.models.vgg11_bn,
        "vgg13": torchvision.models.vgg13,
        "vgg13_bn": torchvision.models.vgg13_bn,
        "vgg16": torchvision.models.vgg16,
        "vgg16_bn": torchvision.models.vgg16_bn,
        "vgg19": torchvision.models.vgg19,
        "vgg19_bn": torchvision.models.vgg19_bn,
        "resnet18": torchvision.models.resnet18,
        "resnet34": torchvision.models.resnet34,
        "resnet50": torchvision.models.resnet50,
        "mobilenet_v2": torchvision.models.mobilenet_v2,
        "alexnet": torchvision.models.alexnet,
        "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False),
        "shufflenet_v2_x1_0": torchvision.models.shufflenet_v2_x1_0,
        "resnet101": torchvision.models.resnet101,
        "resnet152": torchvision.models.resnet152,
    }
    with open("tests/pytorch/torchvision_keys.txt", "w") as f:
        f.write(f"# torchvision {torchvision.__version__}: model, state-dict name, shape\n")
        for model, build in full.items():
            net = build()
            params = sum(p.numel() for p in net.parameters())
            f.write(f"{model} parameters {params}\n")
            for key, tensor in net.state_dict().items():
                shape = "x".join(str(d) for d in tensor.shape)
                f.write(f"{model} {key} {shape}\n")


if __name__ == "__main__":
    main()
