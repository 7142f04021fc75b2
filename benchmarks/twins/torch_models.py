"""PyTorch twins of ferjax's model families, for the side-by-side benchmark.

Each twin has ferjax's layers in ferjax's order, for the same input and with
the same parameter count (``train_step.py`` asserts it), so the two
frameworks do the same arithmetic, and from the same weights the same numbers
(``twin_weights.py`` converts them; ``tests/integration/test_parity.py`` checks training
step by step). Only the small-input geometry that ferjax picks below 96
pixels is built here; VGG comes from ``torch_vgg``.
"""

import math

import torch
from torch import nn

from ferjax.models import create_model
from twins.torch_vgg import VGG


def _lrn(k: float) -> nn.LocalResponseNorm:
  """ferjax's ``local_response_norm`` has torch's semantics and constants."""
  return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=k)


class LeNet5(nn.Module):
  """ferjax.models.lenet.LeNet5: two VALID 5x5 convolutions, two dense."""

  def __init__(self, num_classes: int, in_channels: int,
               input_size: tuple[int, int]):
    super().__init__()
    h, w = ((side - 4) // 2 for side in input_size)
    h, w = (h - 4) // 2, (w - 4) // 2
    self.net = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, num_classes))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.net(x)


class AlexNet(nn.Module):
  """ferjax.models.alexnet.AlexNet with its small-input 5x5 stride-1 stem;
  ``bn``: ``alexnet_bn``, BatchNorm (eps 1e-5, momentum 0.1) before each
  ReLU."""

  def __init__(self, num_classes: int, in_channels: int,
               input_size: tuple[int, int], classifier_width: int = 4096,
               bn: bool = False):
    super().__init__()
    h, w = input_size
    for _ in range(3):  # Three VALID 3x3 stride-2 pools.
      h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1

    def conv_relu(cin, cout, kernel):
      layers = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2)]
      return layers + [nn.BatchNorm2d(cout)] * bn + [nn.ReLU()]

    self.features = nn.Sequential(
        *conv_relu(in_channels, 96, 5), _lrn(2.0), nn.MaxPool2d(3, 2),
        *conv_relu(96, 256, 5), _lrn(2.0), nn.MaxPool2d(3, 2),
        *conv_relu(256, 384, 3), *conv_relu(384, 384, 3),
        *conv_relu(384, 256, 3), nn.MaxPool2d(3, 2))
    self.classifier = nn.Sequential(
        nn.Linear(256 * h * w, classifier_width), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(classifier_width, classifier_width), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(classifier_width, num_classes))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.classifier(torch.flatten(self.features(x), 1))


def _conv_relu(cin: int, cout: int, kernel: int, stride: int = 1,
               bn: bool = False) -> nn.Sequential:
  """Conv, [BatchNorm as ferjax's googlenet_bn: eps 1e-3, momentum 0.1], ReLU."""
  conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                   bias=not bn)
  if bn:
    return nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU())
  return nn.Sequential(conv, nn.ReLU())


def _same_max_pool(stride: int) -> nn.MaxPool2d:
  """ferjax's 3x3 SAME max-pool: ceil mode at stride 2, padding 1 at 1."""
  if stride == 1:
    return nn.MaxPool2d(3, 1, padding=1)
  return nn.MaxPool2d(3, stride, ceil_mode=True)


class Inception(nn.Module):
  """ferjax.models.googlenet.Inception: four branches, concatenated."""

  def __init__(self, cin: int, filters: tuple[int, ...], bn: bool = False):
    super().__init__()
    c1, c3r, c3, c5r, c5, cp = filters
    self.branch1 = _conv_relu(cin, c1, 1, bn=bn)
    self.branch3 = nn.Sequential(_conv_relu(cin, c3r, 1, bn=bn),
                                 _conv_relu(c3r, c3, 3, bn=bn))
    self.branch5 = nn.Sequential(_conv_relu(cin, c5r, 1, bn=bn),
                                 _conv_relu(c5r, c5, 5, bn=bn))
    self.branch_pool = nn.Sequential(_same_max_pool(1),
                                     _conv_relu(cin, cp, 1, bn=bn))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                      self.branch_pool(x)], 1)


class AuxHead(nn.Module):
  """Small-input auxiliary head: SAME 5x5/3 average pool of real pixels."""

  def __init__(self, cin: int, side: int, num_classes: int,
               bn: bool = False):
    super().__init__()
    out = math.ceil(side / 3)
    pad = max((out - 1) * 3 + 5 - side, 0)
    if pad % 2:
      raise ValueError(f"aux pool: asymmetric SAME padding at {side}x{side}")
    self.pool = nn.AvgPool2d(5, 3, padding=pad // 2, ceil_mode=True,
                             count_include_pad=False)
    self.conv = _conv_relu(cin, 128, 1, bn=bn)
    self.fc = nn.Linear(128 * out * out, 1024)
    self.dropout = nn.Dropout(0.7)
    self.classifier = nn.Linear(1024, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = torch.flatten(self.conv(self.pool(x)), 1)
    return self.classifier(self.dropout(torch.relu(self.fc(x))))


class GoogLeNet(nn.Module):
  """ferjax.models.googlenet.GoogLeNet, lighter stem, LRN, both aux heads.

  In training ``forward`` returns ``(logits, aux1, aux2)``, as ferjax sows
  its auxiliary logits; the step weights each aux loss by 0.3.
  """

  def __init__(self, num_classes: int, in_channels: int,
               input_size: tuple[int, int], bn: bool = False):
    super().__init__()
    from ferjax.models.googlenet import INCEPTION_FILTERS
    if input_size[0] != input_size[1]:
      raise ValueError("the GoogLeNet twin takes square inputs")
    side = math.ceil(math.ceil(input_size[0] / 2) / 2)  # conv1 /2, pool2 /2.
    self.stem = nn.Sequential(
        _conv_relu(in_channels, 64, 7, stride=2, bn=bn), _lrn(1.0),
        _conv_relu(64, 64, 1, bn=bn), _conv_relu(64, 192, 3, bn=bn),
        _lrn(1.0),
        _same_max_pool(2))
    blocks, cin = [], 192
    self.aux = nn.ModuleDict()
    for stage, filters in INCEPTION_FILTERS.items():
      if stage in ("4a", "5a"):
        blocks.append(_same_max_pool(2))
        side = math.ceil(side / 2)
      blocks.append(Inception(cin, filters, bn=bn))
      cin = filters[0] + filters[2] + filters[4] + filters[5]
      if stage in ("4a", "4d"):
        self.aux[str(len(blocks) - 1)] = AuxHead(cin, side, num_classes,
                                                 bn=bn)
    self.blocks = nn.ModuleList(blocks)
    self.dropout = nn.Dropout(0.4)
    self.classifier = nn.Linear(cin, num_classes)

  def forward(self, x: torch.Tensor):
    x = self.stem(x)
    aux = []
    for i, block in enumerate(self.blocks):
      x = block(x)
      if self.training and str(i) in self.aux:
        aux.append(self.aux[str(i)](x))
    logits = self.classifier(self.dropout(x.mean((2, 3))))
    return (logits, *aux) if self.training else logits


class BasicBlock(nn.Module):
  """ferjax.models.resnet.BasicBlock: conv-BN-ReLU, conv-BN, shortcut, ReLU."""

  def __init__(self, cin: int, width: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(width)
    self.shortcut = nn.Sequential()
    if stride != 1 or cin != width:
      self.shortcut = nn.Sequential(
          nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = torch.relu(self.bn1(self.conv1(x)))
    return torch.relu(self.shortcut(x) + self.bn2(self.conv2(y)))


class ResNet(nn.Module):
  """ferjax.models.resnet.ResNet: 3x3 stem, basic blocks, mean pool, dense."""

  def __init__(self, num_classes: int, in_channels: int,
               widths: tuple[int, ...], blocks: tuple[int, ...],
               dropout: float = 0.2):
    super().__init__()
    self.stem = nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(widths[0]), nn.ReLU())
    layers, cin = [], widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks)):
      for i in range(count):
        layers.append(BasicBlock(cin, width,
                                 2 if stage > 0 and i == 0 else 1))
        cin = width
    self.blocks = nn.Sequential(*layers)
    self.dropout = nn.Dropout(dropout)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.blocks(self.stem(x)).mean(dim=(2, 3))
    return self.fc(self.dropout(x))


def has_dense_classifier(name: str) -> bool:
  """AlexNet's and VGG's twins: features, then a flatten and three dense
  layers whose width is the ``classifier_width`` model kwarg."""
  return name in ("alexnet", "alexnet_bn") or name.startswith("vgg")


def create(name: str, num_classes: int, input_shape: tuple[int, int, int],
           classifier_width: int = 4096,
           resnet: tuple[tuple[int, ...], tuple[int, ...]] | None = None
           ) -> nn.Module:
  """The twin of ``ferjax.models.create_model(name)`` for an HWC input.

  ``classifier_width`` is AlexNet's and VGG's model kwarg of that name;
  ``resnet`` the ResNet's (widths, blocks), from the registry by default.
  """
  h, w, c = input_shape
  if name == "lenet5":
    return LeNet5(num_classes, c, (h, w))
  if name in ("alexnet", "alexnet_bn"):
    if min(h, w) >= 96:
      raise ValueError("only AlexNet's small-input geometry has a twin")
    return AlexNet(num_classes, c, (h, w), classifier_width,
                   bn=name == "alexnet_bn")
  if name in ("googlenet", "googlenet_bn"):
    if min(h, w) >= 96:
      raise ValueError("only GoogLeNet's small-input geometry has a twin")
    return GoogLeNet(num_classes, c, (h, w), bn=name == "googlenet_bn")
  if name.startswith("vgg"):
    depth, _, bn = name[3:].partition("_")
    return VGG(int(depth), batch_norm=bn == "bn", num_classes=num_classes,
               in_channels=c, classifier_width=classifier_width,
               adaptive_pool=False, input_size=(h, w))
  if name.startswith("resnet"):
    if resnet is None:
      model = create_model(name, num_classes=num_classes)
      resnet = (tuple(model.widths), tuple(model.blocks))
    return ResNet(num_classes, c, *resnet)
  raise ValueError(f"no PyTorch twin for {name!r}")
