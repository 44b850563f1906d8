"""Attack your own PyTorch model: train a small CNN for a few seconds, then craft
targeted JSMA samples against it.

    python examples/attack_your_model.py
"""

import torch
from torch import nn

import jsma

data = jsma.load_mnist()  # the paper's MNIST split; fetched once into the cache
model = nn.Sequential(
    nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 12 * 12, 10)
)
images, labels = data.train.tensors(slice(0, 5000))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for batch in torch.arange(5000).split(100):  # one epoch over 5,000 images
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
    optimizer.step()

x, sources = data.test.tensors(slice(0, 20))
targets = (sources + 1) % data.num_classes  # any target but the source
result = jsma.attack(model, x, targets, sources=sources, theta=1.0, max_distortion=0.145)
print(f"success {result.success_rate:.0%}, mean distortion {float(result.distortion.mean()):.2f}%")
first = result[0]
print(f"sample 0: {first.source} -> {first.target}, {first.features_changed} pixels changed")
