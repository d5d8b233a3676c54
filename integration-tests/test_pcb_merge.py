"""Downstream use of pcb-merge: fine-tune small MLPs from one shared init with Lion (lion-opt) on
digits tasks, save them as safetensors, merge the files with pcb-merge, load the merged model and
check it beats the shared initialisation on every task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pcb_merge as pm
import torch
from lion_opt import Lion
from safetensors.torch import save_file

from papershelf.data import load_split, split_into_tasks


def _mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def _fit(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    lr: float,
) -> None:
    opt = Lion(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def _task_acc(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, cls: torch.Tensor) -> float:
    mask = torch.isin(y, cls)
    with torch.no_grad():
        pred = cls[model(X[mask])[:, cls].argmax(dim=1)]
    return float((pred == y[mask]).double().mean())


def test_lion_finetuned_digits_models_merge_with_pcb(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    split = load_split("digits", seed=0, as_torch=True)
    tasks = split_into_tasks(split.y_train.numpy(), 3, by="class", seed=0)
    classes = [torch.as_tensor(np.unique(split.y_train.numpy()[t])) for t in tasks]

    base = _mlp()
    few = torch.randperm(len(split.y_train), generator=gen)[:60]
    _fit(base, split.X_train[few], split.y_train[few], 15, gen, lr=3e-4)  # a weak shared init
    save_file(
        {k: v.contiguous() for k, v in base.state_dict().items()}, tmp_path / "base.safetensors"
    )
    paths = []
    for t, cls in enumerate(classes):
        m = _mlp()
        m.load_state_dict(base.state_dict())
        mask = torch.isin(split.y_train, cls)
        _fit(m, split.X_train[mask], split.y_train[mask], 80, gen, lr=5e-4)
        paths.append(tmp_path / f"task{t}.safetensors")
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, paths[-1])

    out = pm.merge_files(
        "pcb",
        tmp_path / "base.safetensors",
        paths,
        tmp_path / "merged.safetensors",
        scope="global",
        ratio=0.1,
        lambdas=1.0,
    )
    merged = _mlp()
    ckpt = pm.open_checkpoint(out)
    merged.load_state_dict({k: ckpt.load(k) for k in ckpt})
    for cls in classes:
        before = _task_acc(base, split.X_test, split.y_test, cls)
        after = _task_acc(merged, split.X_test, split.y_test, cls)
        assert after > before + 0.02, (cls.tolist(), before, after)
