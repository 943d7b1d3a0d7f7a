"""What the training loops (``fit_branch``, ``fit_fused``) share: device and mixed precision, the optimizer step,
early stopping, and a checkpoint after every epoch.

The checkpoint holds everything that decides the rest of a run: the weights, the optimizer, the early-stopping
state, every random generator the loop draws from and the training time spent (for a wall-clock budget). So a run
interrupted after epoch k and resumed ends with exactly the weights of an uninterrupted run
(tests/training/test_loop.py checks that).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that must not be resumed from; the message names the file and what to do."""


def fingerprint(*parts: Any) -> str:
    """A short hash of what a run was configured with (dataclasses as dicts): a checkpoint is only resumed by the
    same configuration, since anything else would continue a different run."""
    plain = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) and not isinstance(p, type) else p for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """Where one training loop saves its state after every epoch, and whether it starts from what is there."""

    path: Path
    fingerprint: str
    resume: bool = False

    def load(self) -> dict[str, Any] | None:
        """The saved state when resuming and the file exists; refuses one written with another configuration."""
        if not self.resume or not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointError(f"checkpoint {self.path} was written with a different config (or --subsample); "
                                  "delete it to start that training afresh, or drop --resume")
        return state

    def member(self, i: int) -> Checkpoint:
        """The checkpoint of member ``i`` of an ensemble trained one member at a time, ``<stem>_<i>.pt`` beside this
        one (member 0: this one); like ``run_checkpoints``, a fresh run deletes an old one first."""
        if i == 0:
            return self
        ckpt = dataclasses.replace(self, path=self.path.with_name(f"{self.path.stem}_{i}{self.path.suffix}"))
        if not self.resume:
            ckpt.path.unlink(missing_ok=True)
        return ckpt

    def save(self, state: dict[str, Any]) -> None:
        """Writes a temporary file, then renames it: an interruption while writing keeps the previous checkpoint."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({**state, "fingerprint": self.fingerprint}, tmp)
        os.replace(tmp, self.path)


def run_checkpoints(folder: Path, names: Iterable[str], config_hash: str, resume: bool) -> dict[str, Checkpoint]:
    """The checkpoints of a run's loops, ``<folder>/<name>.pt``. A fresh run (no ``resume``) deletes old ones first,
    so that a later ``--resume`` cannot continue a loop of an earlier run."""
    ckpts = {name: Checkpoint(folder / f"{name}.pt", config_hash, resume) for name in names}
    if not resume:
        for c in ckpts.values():
            c.path.unlink(missing_ok=True)
    return ckpts


# Loop fields saved as they are (the tensors and generators are handled in state_dict).
_SAVED = ("epoch", "done", "stopped_by_budget", "loss", "best", "best_epoch", "best_parts", "stale")


@dataclass
class Loop:
    """One training loop's state: what it optimizes, early stopping (the best dev score, its epoch and the weights
    of ``keep`` then, epochs since the last improvement), the random generators it draws from, how far it got.

    ``amp`` means float16 autocast with a gradient scaler on CUDA. On the CPU it does nothing: CPU autocast (bf16) is
    slower than float32 on these machines' CPUs and would change the results of existing configs.
    """

    name: str  # "audio branch", "fused <architecture>": progress bar and log lines
    model: nn.Module  # on ``device`` already, before the optimizer was made
    keep: nn.Module  # the part whose best weights are kept and restored: a branch head, or the whole model
    opt: torch.optim.Optimizer
    gen: torch.Generator  # the loop's own torch draws (batch order, augmentation, modality dropout)
    epochs: int
    patience: int
    device: torch.device
    amp: bool = True
    rng: np.random.Generator | None = None  # numpy draws (pairing, batch order) of the fused loop
    ckpt: Checkpoint | None = None
    epoch: int = 0  # epochs finished
    done: bool = False  # stopped early (patience or budget): a resumed run does not train on
    stopped_by_budget: bool = False
    loss: float = float("nan")  # mean training loss of the last epoch
    best: float = -1.0
    best_epoch: int = -1
    best_parts: dict[str, float] = field(default_factory=dict)
    stale: int = 0

    def __post_init__(self) -> None:
        self.amp = self.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.best_state = copy.deepcopy(self.keep.state_dict())  # restored even if no epoch ever improves
        self.t0 = time.time()

    def seconds(self) -> float:
        """Training time, including that of the run this one resumed."""
        return time.time() - self.t0

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "gen": self.gen.get_state()}
        if self.device.type == "cuda":  # dropout on the GPU draws from the CUDA generator
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.rng is not None:
            rng["numpy"] = self.rng.bit_generator.state
        # Only ``keep``: a branch's checkpoint must not carry the other branch's weights back over a retrained one.
        return {"keep": self.keep.state_dict(), "opt": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "best_state": self.best_state, "seconds": self.seconds(), "rng": rng,
                **{k: getattr(self, k) for k in _SAVED}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.keep.load_state_dict(state["keep"])
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.best_state = state["best_state"]
        self.t0 = time.time() - state["seconds"]
        for k in _SAVED:
            setattr(self, k, state[k])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.gen.set_state(rng["gen"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if self.rng is not None:
            self.rng.bit_generator.state = rng["numpy"]

    def start(self) -> tqdm:
        """Resumes from the checkpoint when asked to; a progress bar over the epochs still to run (none if the
        checkpoint's loop had finished)."""
        state = self.ckpt.load() if self.ckpt else None
        if state is not None:
            assert self.ckpt is not None
            self.load_state_dict(state)
            if self.done or self.epoch >= self.epochs:
                log.info("%s finished in %s (best dev %.4f at epoch %d): not retrained", self.name, self.ckpt.path,
                         self.best, self.best_epoch)
            else:
                log.info("resuming %s from %s at epoch %d", self.name, self.ckpt.path, self.epoch)
        end = self.epoch if self.done else self.epochs
        return tqdm(range(self.epoch, end), initial=self.epoch, total=self.epochs, desc=self.name, unit="epoch")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass and loss under float16 autocast when ``amp`` is on (CUDA only)."""
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def step(self, loss: torch.Tensor, clip: float = 0.0) -> None:
        """Backward and optimizer step; ``clip`` > 0 bounds the gradient norm (unscaled first under amp, so the
        bound means the same as without it)."""
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], clip)
        self.scaler.step(self.opt)
        self.scaler.update()

    def end_epoch(self, score: float, loss: float, parts: dict[str, float] | None = None,
                  max_minutes: float = 0.0) -> bool:
        """Early stopping on the dev ``score`` of the epoch just trained, the wall-clock budget, then the
        checkpoint. True: stop training."""
        self.loss = loss
        if score > self.best:
            self.best, self.best_epoch, self.best_parts, self.stale = score, self.epoch, parts or {}, 0
            self.best_state = copy.deepcopy(self.keep.state_dict())
        else:
            self.stale += 1
        self.done = self.stale >= self.patience
        if not self.done and max_minutes and self.seconds() > 60 * max_minutes:
            log.info("wall-clock budget of %.1f minutes reached after epoch %d", max_minutes, self.epoch)
            self.done = self.stopped_by_budget = True
        self.epoch += 1
        if self.ckpt:
            self.ckpt.save(self.state_dict())
        return self.done

    def finish(self) -> None:
        """The best weights back in place and the model back on the CPU, where bundles are saved from."""
        self.keep.load_state_dict(self.best_state)
        self.model.to("cpu")
        log.info("%s: best dev %.4f at epoch %d of %d", self.name, self.best, self.best_epoch, self.epoch)
