"""PyTorch peers for the benchmarks, shared by `benchmarks.cpu` and `benchmarks.gpu`.

* `owt`: torchvision's `alexnet()` itself (224 input, no LRN, no groups).
* `2012`: the paper's network written in torch with the same layer shapes as
  `AlexNet("2012")`: 227 input, `Conv2d(groups=2)` for conv2/4/5,
  `LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)` (torch divides alpha by
  the size, so this is the paper's alpha=1e-4), max-pool 3/2, fc 4096-4096-1000,
  60,965,224 parameters. Its LRN spans all 96 (256) channels rather than each
  tower's half; that changes two channels at the seam, not the cost.

Both train with `torch.optim.SGD(lr=0.01, momentum=0.9, weight_decay=5e-4)`,
which is the paper's coupled update, and cross-entropy on logits.

Import torchvision before TensorFlow in one process: the other order segfaults
(TF 2.21 with torchvision 0.29.1). `benchmarks.cpu` and `benchmarks.gpu` import
this module first for that reason.
"""

import torch
from torch import nn

from benchmarks.harness import package_constants

try:  # torchvision first, before anything imports TensorFlow
    import torchvision
except ImportError:  # the gpu script can still run the 2012 peer
    torchvision = None

INPUT_SIZE = package_constants().INPUT_SIZE


class AlexNet2012(nn.Module):
    """The paper's network in torch (NCHW), shapes as `alexnet_keras.AlexNet("2012")`."""

    def __init__(self, classes=1000, dropout=0.5):
        super().__init__()
        lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4),
            nn.ReLU(inplace=True),
            lrn(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            lrn(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def make_model(variant, classes=1000):
    if variant == "2012":
        return AlexNet2012(classes)
    if torchvision is None:
        raise ImportError("torchvision is needed for the owt peer")
    return torchvision.models.alexnet(num_classes=classes)


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


class Peer:
    """A torch model with `train_step(x, y)` and `infer(x)`, each synchronised (returns a float).

    `compile=True` wraps the model in `torch.compile`; `channels_last` and
    `autocast` (a dtype, e.g. `torch.bfloat16`) are the usual GPU settings.
    """

    def __init__(self, variant, classes=1000, device="cpu", compile=False, channels_last=False, autocast=None):
        self.device = torch.device(device)
        self.autocast = autocast
        model = make_model(variant, classes).to(self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        self.model = model
        self.optimizer = make_optimizer(model)
        self.loss = nn.CrossEntropyLoss()
        self.size = INPUT_SIZE[variant]
        # torch.compile wraps the module (forward and backward); the optimizer step stays eager.
        self.net = torch.compile(model) if compile else model

    def batch(self, n, classes=1000, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, self.size, self.size, generator=g)
        y = torch.randint(0, classes, (n,), generator=g)
        x = x.to(self.device).contiguous(memory_format=self.memory_format)
        return x, y.to(self.device)

    def _ctx(self):
        if self.autocast is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _train_impl(self, x, y):
        self.model.train()
        with self._ctx():
            loss = self.loss(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def _infer_impl(self, x):
        with self._ctx():
            return self.net(x)

    def train_step(self, x, y):
        return float(self._train_impl(x, y).detach().float().cpu())

    def infer(self, x):
        self.model.eval()
        with torch.inference_mode():
            out = self._infer_impl(x)
            return float(out[0, 0].float().cpu())


# Blocks of the torch peers that match the Keras models' layers, for per-layer
# profiles: name -> (Keras layer names, indices into torch's features/avgpool/classifier).
BLOCKS = {
    "owt": [
        ("conv1", ["pad1", "conv1"], [("features", 0), ("features", 1)]),
        ("pool1", ["pool1"], [("features", 2)]),
        ("conv2", ["conv2"], [("features", 3), ("features", 4)]),
        ("pool2", ["pool2"], [("features", 5)]),
        ("conv3", ["conv3"], [("features", 6), ("features", 7)]),
        ("conv4", ["conv4"], [("features", 8), ("features", 9)]),
        ("conv5", ["conv5"], [("features", 10), ("features", 11)]),
        ("pool5+avgpool", ["pool5", "avgpool"], [("features", 12), ("avgpool", None)]),
        (
            "fc6",
            ["flatten", "drop6", "fc6"],
            [("flatten", None), ("classifier", 0), ("classifier", 1), ("classifier", 2)],
        ),
        ("fc7", ["drop7", "fc7"], [("classifier", 3), ("classifier", 4), ("classifier", 5)]),
        ("fc8", ["fc8"], [("classifier", 6)]),
    ],
    "2012": [
        ("conv1", ["conv1"], [("features", 0), ("features", 1)]),
        ("lrn1", ["lrn1"], [("features", 2)]),
        ("pool1", ["pool1"], [("features", 3)]),
        ("conv2", ["conv2"], [("features", 4), ("features", 5)]),
        ("lrn2", ["lrn2"], [("features", 6)]),
        ("pool2", ["pool2"], [("features", 7)]),
        ("conv3", ["conv3"], [("features", 8), ("features", 9)]),
        ("conv4", ["conv4"], [("features", 10), ("features", 11)]),
        ("conv5", ["conv5"], [("features", 12), ("features", 13)]),
        ("pool5", ["pool5"], [("features", 14)]),
        (
            "fc6",
            ["flatten", "fc6", "drop6"],
            [("classifier", 0), ("classifier", 1), ("classifier", 2), ("classifier", 3)],
        ),
        ("fc7", ["fc7", "drop7"], [("classifier", 4), ("classifier", 5), ("classifier", 6)]),
        ("fc8", ["fc8"], [("classifier", 7)]),
    ],
}


def torch_block(model, parts):
    """An nn.Sequential of the peer's modules named by `parts` (see BLOCKS)."""
    modules = []
    for where, index in parts:
        if where == "flatten":
            modules.append(nn.Flatten())
        elif index is None:
            modules.append(getattr(model, where))
        else:
            modules.append(getattr(model, where)[index])
    return nn.Sequential(*modules)
