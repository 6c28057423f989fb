"""Data-parallel training over torch.distributed, when torchrun launched the process (``forgeml train --nproc N``, or
``torchrun ... -m forgeml train`` on several machines; forgeml.train.launch).

Every rank reads and prepares the same data with the same seed and draws the same shuffled order, so each global
batch is the same on every rank; each rank computes the loss of its share of that batch. ``ddp`` (PyTorch's
DistributedDataParallel) averages the gradients, so N ranks take the step one process takes on the whole batch;
``fsdp`` (FSDP2's ``fully_shard``) also shards the parameters, gradients and optimizer state across ranks, for models
whose training state does not fit one GPU. Only rank 0 validates (FSDP: every rank takes part in the forward pass),
decides early stopping (broadcast to every rank), logs, tracks, checkpoints and writes the run.

The task's step runs inside the wrapped module's forward (``_Step``), so DDP's gradient hooks and FSDP's
all-gathers see the whole loss, whatever model method the step calls (an autoencoder's ``training_loss``)."""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Optional

import torch
from torch import nn

from forgeml.core import ENGINES
from forgeml.errors import ConfigError
from forgeml.train.checkpoint import load_states

STRATEGIES = ("ddp", "fsdp")


def launched() -> bool:
    """Was this process started by torchrun as one of several?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def data_parallel(train_cfg) -> Optional["DataParallel"]:
    """The engine of a process torchrun started (joining its process group), else None."""
    if not launched():
        return None
    return ENGINES.get(train_cfg.parallel)()


class _Step(nn.Module):
    """The model with the task's step as its training forward (one loss) and the model's own as its eval forward."""

    def __init__(self, model: nn.Module, step):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, batch: dict):
        if not self.training:
            return self.model(batch)
        _, loss = next(self.step(self.model, batch))  # one optimizer (the loop refuses tasks with several)
        return loss


class DataParallel:
    """Shared by both strategies: who this rank is, its share of each batch, the collectives the loop needs."""

    tags = frozenset({"parallel"})
    strategy = "ddp"
    shards = False  # the weights are split across the ranks: every rank takes part in each forward pass

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        self.cuda = torch.cuda.is_available()
        if not dist.is_initialized():
            if self.cuda:
                torch.cuda.set_device(self.local_rank)
            # gloo for CPU tensors, NCCL for GPU ones; rank 0 may train a non-torch candidate (LightGBM) or write a
            # long report while the others wait, hence the long timeout (torchrun stops every rank if one fails)
            dist.init_process_group("cpu:gloo,cuda:nccl" if self.cuda else "gloo", timeout=timedelta(hours=3))
        self.trainer: Optional[nn.Module] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    # ---- placement
    def threads(self, threads: int) -> int:
        """The ranks on one machine share its CPUs."""
        from forgeml.cpus import usable_cpus

        return max(1, min(threads, usable_cpus() // self.local_world))

    def device(self, device: torch.device) -> torch.device:
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def check(self, batch_size: int) -> None:
        if batch_size < self.world:
            raise ConfigError(f"train.batch_size {batch_size} is smaller than the {self.world} processes: each process "
                              f"needs at least one row of every batch; raise the batch size or lower --nproc")

    # ---- batches
    def share(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (contiguous; sizes differ by at most one)."""
        return torch.tensor_split(idx, self.world)[self.rank]

    # ---- collectives
    def total(self, value: torch.Tensor) -> torch.Tensor:
        out = value.detach().clone()
        self.dist.all_reduce(out)
        return out

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (early stopping, a time budget, the best epoch)."""
        t = torch.tensor([int(flag)], dtype=torch.int64)
        self.dist.broadcast(t, src=0)
        return bool(t.item())

    def barrier(self) -> None:
        self.dist.barrier()

    # ---- the model
    def wrap(self, model: nn.Module, step) -> nn.Module:
        """Set up ``self.trainer`` (the module whose forward is the step's loss) and return the module whose parameters
        the optimizers train: ``model`` itself (DDP), or a sharded copy (FSDP; ``model`` gets its weights at the end)."""
        raise NotImplementedError

    def sync(self, enabled: bool):
        """A context in which backward does (or, between accumulated batches, does not) average the gradients."""
        return contextlib.nullcontext()

    def model_state(self, net: nn.Module) -> dict:
        return net.state_dict()

    def optimizer_state(self, net: nn.Module, optimizer) -> dict:
        return optimizer.state_dict()

    load = staticmethod(load_states)  # (net, model state, optimizers, optimizer states): every rank the whole state


@ENGINES.register("ddp")
class DistributedDataParallel(DataParallel):
    """Every rank holds the whole model; DDP averages the gradients in buckets during backward."""

    def wrap(self, model, step):
        from torch.nn.parallel import DistributedDataParallel as DDP

        device = next(model.parameters()).device
        wrapped = _Step(model, step)
        if device.type == "cuda":  # batch norm over the whole global batch (SyncBatchNorm needs GPUs; on CPUs each
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)  # rank normalizes its share, as DDP does)
        self.trainer = DDP(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
        return model

    def sync(self, enabled):
        return contextlib.nullcontext() if enabled else self.trainer.no_sync()


@ENGINES.register("fsdp")
class FullyShardedDataParallel(DataParallel):
    """FSDP2: each block of the model (a member of an ``nn.ModuleList``: transformer layers) is its own shard unit,
    the rest one root unit; parameters are gathered for the forward and backward pass and freed after."""

    strategy = "fsdp"
    shards = True

    def wrap(self, model, step):
        import copy

        from torch.distributed.fsdp import fully_shard

        net = copy.deepcopy(model)  # ``model`` stays a plain module; the loop loads the trained weights into it
        root = _Step(net, step)
        for blocks in [m for m in net.modules() if isinstance(m, nn.ModuleList)]:
            for block in blocks:
                if any(p.requires_grad for p in block.parameters()):
                    fully_shard(block)
        self.trainer = fully_shard(root)
        return net

    def model_state(self, net):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self, net, optimizer):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(net, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load(self, net, model_state, optimizers, optimizer_states):
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(net, model_state, options=full)
        for name, opt in optimizers.items():
            set_optimizer_state_dict(net, opt, optimizer_states[name], options=full)
