"""The two PyTorch models of this example and the helpers its scripts share.

Both are plain nn.Modules with named submodules, the way a PyTorch user
writes them (no nn.Sequential indices): pytorch_trained.cpp builds the same
graphs in sparq with the same node names, so the state_dict loads by name
(nn::load_weights converts the conv weights from OIHW).

  FashionMLP:  flatten -> fc1 (784 -> 128) -> relu1 -> fc2 (128 -> 64) -> relu2 -> fc3 (64 -> 10)
  FashionCNN:  conv1 (1 -> 16, 3x3, pad 1) -> bn1 -> relu1 -> pool1 (max 2x2)
               conv2 (16 -> 32)            -> bn2 -> relu2 -> pool2 (max 2x2)
               conv3 (32 -> 64)            -> bn3 -> relu3 -> avgpool (global) -> fc (64 -> 10)

The CNN ends with a global average pool, as torchvision's CNNs do: a
[B][1][1][C] map flattens to the same order in NCHW (PyTorch) and NHWC
(sparq), so the fc weight needs no column reordering.
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fashion_mnist"))
from fashion_torch import load_split  # noqa: E402,F401  (the examples' Fashion-MNIST reader)
from export_from_pytorch import load_safetensors, save_safetensors  # noqa: E402,F401


class FashionMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, images):  # [B][1][28][28] or [B][784]
        x = images.flatten(1)
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))

    # Modules PyTorch's eager mode fuses before quantizing.
    fusions = [["fc1", "relu1"], ["fc2", "relu2"]]


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, images):  # [B][1][28][28]
        x = self.pool1(self.relu1(self.bn1(self.conv1(images))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        return self.fc(x.flatten(1))

    fusions = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3", "relu3"]]


MODELS = {"mlp": FashionMLP, "cnn": FashionCNN}


def weights_path(name):
    return os.path.join(HERE, f"{name}.safetensors")


def load_model(name):
    """The trained model `name` ("mlp" or "cnn"), in eval mode."""
    model = MODELS[name]()
    model.load_state_dict(load_safetensors(weights_path(name)))
    return model.eval()
