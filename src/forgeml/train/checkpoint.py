"""Checkpoints as safetensors (model, optimizer tensors, RNG states) + JSON (everything else). No pickle."""
from __future__ import annotations

from pathlib import Path

import torch

from forgeml.artifacts import load_tensors, read_json, save_tensors, write_json

LAST = "last"
BEST = "best.safetensors"


def _split_optimizer(state: dict, prefix: str) -> tuple[dict, dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{pid}/{key}"] = value
            else:
                meta["state"][str(pid)][key] = value
    return tensors, meta


def _join_optimizer(tensors: dict, meta: dict, prefix: str) -> dict:
    state = {int(pid) if pid.isdigit() else pid: dict(entries) for pid, entries in meta["state"].items()}  # FSDP: names
    for name, value in tensors.items():
        if name.startswith(prefix):
            pid, key = name[len(prefix):].split("/", 1)
            state.setdefault(int(pid) if pid.isdigit() else pid, {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _as_dict(obj) -> dict:
    """A task may train with several optimizers (a GAN: "d" and "g"); a single one is named "model"."""
    return obj if isinstance(obj, dict) else {"model": obj}


def save(folder: Path, model, optimizers, schedulers, scaler, generator: torch.Generator, progress: dict,
         parallel=None) -> None:
    """Write the checkpoint: tensors first, then the JSON whose presence marks the checkpoint complete.
    ``optimizers`` / ``schedulers``: one of each, or dicts by optimizer name. A checkpoint folder removed meanwhile
    (its run folder deleted during training) fails the run rather than being written again. Under data-parallel
    training (``parallel``) every rank calls it (FSDP gathers the sharded state) and rank 0 writes."""
    model_state = parallel.model_state(model) if parallel else model.state_dict()
    optimizer_states = {name: parallel.optimizer_state(model, opt) if parallel else opt.state_dict()
                        for name, opt in _as_dict(optimizers).items()}
    if parallel is not None and not parallel.is_main:
        return
    check_folder(folder)
    tensors = {f"model/{k}": v for k, v in model_state.items()}
    metas = {}
    for name, state in optimizer_states.items():
        opt_tensors, metas[name] = _split_optimizer(state, f"optim/{name}/")
        tensors.update(opt_tensors)
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/shuffle"] = generator.get_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    save_tensors(folder / f"{LAST}.safetensors", tensors)
    write_json(folder / f"{LAST}.json", {
        **progress,
        "optimizers": metas,
        "schedulers": {name: sched.state_dict() for name, sched in _as_dict(schedulers).items()},
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
    })


def check_folder(folder: Path) -> None:
    """Checkpoints go into a folder that exists: one removed during training (its run folder deleted) stops the run
    rather than being created again."""
    if not Path(folder).is_dir():
        from forgeml.errors import RunError

        raise RunError(f"the checkpoint folder {folder} was removed during training (was the run folder deleted?); "
                       "the run is stopped. Train again")


def exists(folder: Path) -> bool:
    return (folder / f"{LAST}.json").is_file() and (folder / f"{LAST}.safetensors").is_file()


def load_states(model, model_state: dict, optimizers: dict, optimizer_states: dict) -> None:
    model.load_state_dict(model_state)
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(optimizer_states[name])


def restore(folder: Path, model, optimizers, schedulers, scaler, generator: torch.Generator, parallel=None) -> dict:
    """Load the last checkpoint into the given objects; returns the saved progress (epoch, history, ...).
    Checkpoints written before optimizers were named (one "optimizer") restore into the one named "model".
    Under data-parallel training every rank reads it (the runs folder is this machine's, or shared)."""
    meta = read_json(folder / f"{LAST}.json")
    tensors = load_tensors(folder / f"{LAST}.safetensors")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    if "optimizers" in meta:
        states = {name: _join_optimizer(tensors, meta["optimizers"][name], f"optim/{name}/") for name in _as_dict(optimizers)}
        (parallel.load if parallel is not None else load_states)(model, model_state, _as_dict(optimizers), states)
        for name, sched in _as_dict(schedulers).items():
            sched.load_state_dict(meta["schedulers"][name])
    else:
        model.load_state_dict(model_state)
        _as_dict(optimizers)["model"].load_state_dict(_join_optimizer(tensors, meta["optimizer"], "optim/"))
        _as_dict(schedulers)["model"].load_state_dict(meta["scheduler"])
    if meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng/torch"])
    generator.set_state(tensors["rng/shuffle"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return meta
