"""Training and float evaluation of the LeNet-5 models."""

import math

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from .errors import HwlenetError
from .models import RBF_MAP_J, build_model, map_loss

__all__ = ["augment", "evaluate_model", "fit", "predict", "train_loss", "train_model"]


def augment(pixels, generator, max_degrees=12.0, max_scale=0.12, max_shift=2.5):
    """Random rotation, scale and shift of a batch ``(N, 1, 28, 28)`` of raw pixels.

    Each image gets its own rotation in ``±max_degrees``, scale in ``1 ± max_scale`` and shift in
    ``±max_shift`` pixels, drawn from ``generator``; the background stays 0.
    """
    n = pixels.shape[0]
    uniform = torch.rand(n, 4, generator=generator) * 2 - 1
    angle = uniform[:, 0] * math.radians(max_degrees)
    scale = 1 + uniform[:, 1] * max_scale
    shift = uniform[:, 2:] * (2 * max_shift / 28)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, pixels.shape, align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def predict(model, images, batch_size=1000):
    """Float scores of ``model`` for uint8 images ``(N, 28, 28)``, as a numpy array ``(N, 10)``:
    logits, or for an RBF output the negated penalties; their argmax is the class."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        outputs.append(model(batch.float().unsqueeze(1)).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)


def evaluate_model(model, split):
    """Float accuracy of ``model`` on an :class:`~hwlenet.data.MnistSplit`."""
    logits = predict(model, split.images)
    return float((logits.argmax(1) == split.labels).mean()) if len(split) else float("nan")


def train_loss(model, pixels, labels):
    """The training criterion of ``model`` on a batch: the paper's MAP criterion
    (:func:`hwlenet.models.map_loss`, ``j`` = ``RBF_MAP_J``) on the penalties of a model whose
    output rule is ``argmin`` (the RBF output), cross-entropy on the logits otherwise."""
    if model.output_rule == "argmin":
        return map_loss(model.penalties(pixels), labels)
    return F.cross_entropy(model(pixels), labels)


def fit(model, train, batch_loss, optimizer, schedule, epochs, batch_size, generator,
        description, progress=True):
    """Minimise ``batch_loss`` over ``epochs`` passes of seeded, shuffled mini-batches of
    ``train``, stepping ``optimizer`` and then ``schedule`` once per batch; ``model`` is left in
    eval mode.

    ``batch_loss(pixels, labels)`` is the loss of one batch: float pixels ``(N, 1, 28, 28)`` in
    0..255 and int64 labels. ``generator`` orders the batches (and may serve ``batch_loss``).
    A progress bar named ``description`` counts the batches unless ``progress`` is false.
    """
    images = torch.from_numpy(train.images).float().unsqueeze(1)
    labels = torch.from_numpy(train.labels.astype(np.int64))
    steps = epochs * math.ceil(len(train) / batch_size)
    with tqdm(total=steps, desc=description, unit="batch",
              disable=not progress) as bar:  # closed before an error or Ctrl-C is reported
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), batch_size):
                index = order[start : start + batch_size]
                loss = batch_loss(images[index], labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    model.eval()


def train_model(arch, train, test=None, epochs=40, seed=0, batch_size=64, lr=2e-3,
                progress=True):
    """Train a fresh model of ``arch`` on ``train`` with augmentation; reproducible per seed.

    Adam with a one-cycle learning-rate schedule; augmentation by :func:`augment`; the loss is
    :func:`train_loss` (the MAP criterion for the classic model's RBF output).

    Returns
    -------
    model : torch.nn.Module
    meta : dict
        Epochs, seed, training-set size and, when ``test`` is given, its accuracy.
    """
    if epochs < 1:
        raise HwlenetError(f"epochs must be a positive integer, not {epochs!r}")
    if len(train) == 0:
        raise HwlenetError("the training set is empty")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * math.ceil(len(train) / batch_size),
        pct_start=0.15)
    fit(model, train, lambda batch, labels: train_loss(model, augment(batch, generator), labels),
        optimizer, schedule, epochs, batch_size, generator, f"train {arch}", progress)
    meta = {"arch": arch, "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
            "train_images": len(train),
            "loss": f"map (j={RBF_MAP_J:g})" if model.output_rule == "argmin" else "cross-entropy"}
    if test is not None:
        meta["test_images"] = len(test)
        meta["test_accuracy"] = evaluate_model(model, test)
    return model, meta
