"""Several optimizers: the loss of one never moves the parameters of another (GAN-style alternation)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pixelmind.config import TrainConfig
from pixelmind.engine.trainer import Trainer
from pixelmind.tasks.base import DataBundle, Meta, Task


class Pair(nn.Module):
    """Two networks: ``g`` feeds ``d``, as a GAN's generator feeds its discriminator."""

    def __init__(self) -> None:
        super().__init__()
        self.g, self.d = nn.Linear(3, 3), nn.Linear(3, 1)


class CountingEvaluator:
    def __init__(self) -> None:
        self.n = 0

    def update(self, preds, targets) -> None:
        self.n += len(preds)

    def compute(self) -> dict[str, float]:
        return {"n": float(self.n)}

    def summary(self) -> dict:
        return {}

    def plots(self, out_dir: Path) -> list[Path]:
        return []


class TwoOptimizerTask(Task):
    """Optimizer 0 steps ``d`` with a loss whose gradient is zero; optimizer 1 steps ``g`` through ``d``."""

    name, primary_metric = "toy", "n"
    models = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.epochs_seen: list[int] = []
        self.requires_grad_seen: list[tuple[bool, bool]] = []

    def load_data(self, cfg, meta=None):
        raise NotImplementedError

    def build_model(self, cfg, meta):
        return Pair()

    def configure_optimizers(self, model, cfg, steps_per_epoch):
        from pixelmind.engine.optim import build_scheduler

        opts = [torch.optim.SGD(model.d.parameters(), lr=0.5), torch.optim.SGD(model.g.parameters(), lr=0.5)]
        return [(o, build_scheduler(o, cfg, steps_per_epoch)) for o in opts]

    def training_step(self, model, batch, step, optimizer_idx=0):
        x, _ = batch
        self.requires_grad_seen.append((model.d.weight.requires_grad, model.g.weight.requires_grad))
        if optimizer_idx == 0:
            return {"loss": model.d(x).sum() * 0.0}  # d's own gradient is zero: d must not move
        return {"loss": -model.d(model.g(x)).sum()}  # flows through d into g

    def validation_step(self, model, batch):
        return batch[0], batch[1]

    def evaluator(self, meta):
        return CountingEvaluator()

    def preprocess(self, meta):
        return lambda image: image

    def predict(self, model, images, meta, **options):
        return []

    def on_epoch_end(self, model, epoch, run_dir):
        self.epochs_seen.append(epoch)


def test_the_second_optimizers_loss_does_not_leak_into_the_first_and_the_epoch_hook_runs(tmp_path):
    torch.manual_seed(0)
    data = [(torch.randn(3), 0) for _ in range(16)]
    cfg = TrainConfig(task="toy", data="toy", epochs=2, batch=4, lr=0.5, workers=0, device="cpu", ema=False,
                      warmup_epochs=0, scheduler="constant", project=str(tmp_path))  # fmt: skip
    task = TwoOptimizerTask()
    model = Pair()
    d_before = [p.detach().clone() for p in model.d.parameters()]
    g_before = [p.detach().clone() for p in model.g.parameters()]
    trainer = Trainer(task, cfg, Meta(task="toy", model="pair"), model, DataBundle(train=data, val=data[:4], class_names=[]))
    trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(d_before, model.d.parameters()))  # 8 steps of g's loss left d alone
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.g.parameters()))
    # while optimizer 0 runs, g (only optimizer 1's) is frozen, and the other way round; all restored after
    assert set(task.requires_grad_seen[0::2]) == {(True, False)} and set(task.requires_grad_seen[1::2]) == {(False, True)}
    assert all(p.requires_grad for p in model.parameters())
    assert task.epochs_seen == [0, 1]
