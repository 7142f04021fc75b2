"""A PyTorch VGG with torchvision's module names, without torchvision.

Its ``state_dict()`` keys are exactly those of ``torchvision.models.vgg11``
... ``vgg19_bn`` (``features.<i>``, ``classifier.0/.3/.6``), so it serves both
as the PyTorch side of ferjax's benchmarks and as a stand-in for a downloaded
torchvision checkpoint in the import tests (torchvision is not a dependency).
Initialisation follows torchvision's ``VGG._initialize_weights``.

Two departures from torchvision, both chosen to equal ferjax's ``VGG`` at any
input size: pools use ``ceil_mode=True`` (ferjax pools with SAME padding; the
two agree with torchvision wherever the side is a multiple of 32), and
``adaptive_pool=False`` drops the 7x7 adaptive average pool so that, as in
ferjax, the classifier's input size follows the image (``input_size``).
"""

import math

import torch
from torch import nn

# Convolution widths per stage of configurations A, B, D and E; each stage
# ends in a max-pool (torchvision's cfgs "A", "B", "D", "E").
STAGES: dict[int, tuple[tuple[int, ...], ...]] = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def _features(depth: int, batch_norm: bool, in_channels: int) -> nn.Sequential:
  layers: list[nn.Module] = []
  for widths in STAGES[depth]:
    for width in widths:
      layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
      if batch_norm:
        layers.append(nn.BatchNorm2d(width))
      layers.append(nn.ReLU(inplace=True))
      in_channels = width
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
  return nn.Sequential(*layers)


class VGG(nn.Module):
  """VGG-``depth`` (11, 13, 16, 19), optionally with BatchNorm.

  With ``adaptive_pool`` (torchvision's model) the features are average-pooled
  to 7x7 whatever the input; without, the classifier takes the flattened
  features of an ``input_size`` image, 512 x ceil(H/32) x ceil(W/32).
  """

  def __init__(self, depth: int, batch_norm: bool, num_classes: int = 1000,
               in_channels: int = 3, classifier_width: int = 4096,
               adaptive_pool: bool = True,
               input_size: tuple[int, int] = (224, 224)):
    super().__init__()
    if depth not in STAGES:
      raise ValueError(
          f"VGG depth: expected one of {sorted(STAGES)}, got {depth}")
    self.features = _features(depth, batch_norm, in_channels)
    if adaptive_pool:
      self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
      spatial = 7 * 7
    else:
      self.avgpool = nn.Identity()
      spatial = math.prod(math.ceil(side / 32) for side in input_size)
    width = STAGES[depth][-1][-1]
    self.classifier = nn.Sequential(
        nn.Linear(width * spatial, classifier_width), nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(classifier_width, classifier_width), nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(classifier_width, num_classes))
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(m.bias, 0)
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)
      elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.constant_(m.bias, 0)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.avgpool(self.features(x))
    return self.classifier(torch.flatten(x, 1))
