"""``forgeml train --nproc N``: run the training in N processes on this machine through torchrun's own launcher
(torch.distributed.run: a standalone rendezvous on a free local port, the workers watched, all stopped when one
fails). Each worker runs ``python -m forgeml.cli train --config <the merged config>`` and joins the process group
itself (forgeml.train.distributed). On several machines, run ``torchrun --nnodes ... -m forgeml.cli train ...`` on
each: the workers behave the same."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

from forgeml.errors import ConfigError


def check_nproc(nproc: int, batch_size: int, device: str) -> None:
    """``--nproc`` against the batch and the machine, before any process starts."""
    import torch

    from forgeml.cpus import usable_cpus

    if nproc > batch_size:
        raise ConfigError(f"--nproc {nproc} is larger than train.batch_size {batch_size}: each process needs at least "
                          "one row of every batch; raise the batch size or lower --nproc")
    gpus = torch.cuda.device_count() if device != "cpu" else 0
    if gpus and nproc > gpus:
        raise ConfigError(f"--nproc {nproc} is more than this machine's {gpus} GPUs: one process per GPU")
    if not gpus and nproc > usable_cpus():
        warnings.warn(f"--nproc {nproc} is more than the {usable_cpus()} CPUs this process may use: the processes "
                      "will take turns on the cores and train slower than fewer would", stacklevel=2)


def launch(nproc: int, config: dict, flags: list[str], silent: bool = False) -> int:
    """Train ``config`` (a config dict) in ``nproc`` processes; ``flags`` go to each worker's ``forgeml train``
    (--resume, --overwrite, --quiet). ``silent``: the workers' output goes to files, and only a failure's messages
    are shown. Returns the exit code: 0, or the first failing worker's."""
    import yaml
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    from forgeml.cpus import usable_cpus

    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = omp or str(max(1, usable_cpus() // nproc))  # else torchrun warns and sets 1
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a failing worker prints its own error; torchrun repeats it
    with tempfile.TemporaryDirectory(prefix="forgeml-nproc-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        # what torchrun --standalone sets up: a c10d rendezvous on a free port of this machine
        logs = ["--log-dir", str(Path(tmp) / "logs"), "--redirects", "3"] if silent else []
        args = parse_args(["--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0", f"--rdzv-id={uuid.uuid4()}", *logs,
                           f"--nproc-per-node={nproc}", "--module", "forgeml.cli",
                           "train", "--config", str(path), *flags])
        launcher_config, cmd, cmd_args = config_from_args(args)
        try:
            elastic_launch(launcher_config, cmd)(*cmd_args)
        except ChildFailedError as exc:
            for log in sorted((Path(tmp) / "logs").glob("**/stderr.log")) if silent else []:
                sys.stderr.write(log.read_text(errors="replace"))  # rank 0's message (the others print none)
            codes = [failure.exitcode for _, failure in sorted(exc.failures.items())]
            return next((code for code in codes if code > 0), 1)
        except SignalException as exc:  # stopped (Ctrl-C, a scheduler's SIGTERM): the workers were stopped with it
            return 128 + int(exc.sigval)
        finally:
            if omp is None:
                os.environ.pop("OMP_NUM_THREADS", None)
    return 0
