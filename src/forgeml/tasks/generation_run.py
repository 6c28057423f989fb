"""A trained generation run, loaded (``forgeml.run.load`` asks the family's ``load_run``): it draws images
(``generate``; ``forgeml generate RUN``), writes them as PNG files and a grid (``write``), exports its generator or
decoder to ONNX (``export_onnx``; ``forgeml export RUN``) and answers ``POST /v1/models/NAME/generate``
(``serve_route``: forgeml.serve.own_runs; tasks/generation_serve.py) and scores itself again on its test split
(``evaluate_run``; ``forgeml evaluate RUN``). It has no rows to predict."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from forgeml import artifacts
from forgeml.errors import ConfigError, DataError, RunError

MAX_IMAGES = 10_000
GRID_FILE = "grid.png"


class GenerationRun:
    serve_route = "generate"
    serve_body = '{"n": 8, "label": ..., "seed": ...}'  # what a request to the route holds (forgeml.serve.own_runs)

    def __init__(self, run_dir: Union[str, Path], manifest: dict):
        from forgeml.config import params_class
        from forgeml.models import get_model
        from forgeml.tasks import make_task

        self.run_dir, self.manifest = Path(run_dir), manifest
        self.task = make_task(manifest["task"], {k: v for k, v in manifest["target"].items() if k != "name"})
        m = manifest["model"]
        self.model_name = m["name"]
        if not (self.run_dir / m["file"]).is_file():
            raise RunError(f"{self.run_dir} has no trained model ({m['file']} is missing); train it to the end first "
                           "(forgeml train ..., or --resume an interrupted run)")
        params = params_class(m["name"]).model_validate(m["params"])
        self.network = get_model(m["name"]).build(params, m["input_shapes"], self.task.out_dim)
        self.network.load_state_dict(artifacts.load_tensors(self.run_dir / m["file"]))
        self.network.eval()

    @property
    def shape(self) -> list[int]:
        return list(self.network.shape)

    # ---- drawing images
    def class_code(self, label) -> Optional[int]:
        """The code of a class name (``--label 3``), checked: None draws every class in turn."""
        if label is None:
            return None
        classes = self.task.classes
        if not self.task.state["conditional"]:
            raise ConfigError(f"{self.run_dir} was trained unconditionally: it cannot draw a chosen class. Drop --label, or "
                              "train with --set task.conditional=true")
        if str(label) not in classes:
            raise ConfigError(f"label {label!r} is not a class this model draws; it knows: {', '.join(classes)}")
        return classes.index(str(label))

    def generate(self, n: int, label=None, seed: Optional[int] = None) -> tuple[np.ndarray, list, int]:
        """n images as pixels in [0, 1] [n, C, H, W], the class each was drawn for (None: unconditional) and the seed
        (a fresh one when not given: pass it again to draw the same images)."""
        import torch

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_IMAGES:
            raise ConfigError(f"the number of images (-n) must be a whole number from 1 to {MAX_IMAGES}, got {n!r}")
        code = self.class_code(label)
        seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        z = torch.randn(n, self.network.latent_dim, generator=torch.Generator().manual_seed(seed))
        codes = None
        if self.network.classes:
            codes = torch.full((n,), code) if code is not None else torch.arange(n) % self.network.classes
        with torch.no_grad():
            pixels = self.network.to_pixels(self.network.generate(z, codes)).numpy()
        names = [self.task.classes[c] for c in codes.tolist()] if codes is not None else [None] * n
        return pixels, names, seed

    def write(self, out: Union[str, Path], n: int, label=None, seed: Optional[int] = None,
              overwrite: bool = False) -> dict:
        """sample_0000.png ... and grid.png in the folder ``out`` (created; one holding files needs ``overwrite``,
        which removes the PNG files a previous generate wrote there)."""
        from forgeml.evaluate.image_grids import grid, png_bytes, to_uint8

        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"-o {out} is a file; give a folder for the images")
        held = sorted(out.iterdir()) if out.is_dir() else []
        if held and not overwrite:
            raise ConfigError(f"-o {out} already holds {len(held)} file(s); choose an empty or new folder, or pass "
                              "--overwrite to replace the images there")
        pixels, names, seed = self.generate(n, label, seed)  # bad -n / --label fail before anything is written
        for old in held:
            if old.is_file() and (old.name == GRID_FILE or (old.name.startswith("sample_") and old.suffix == ".png")):
                old.unlink()
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, image in enumerate(to_uint8(pixels)):
            tag = f"_{names[i]}" if names[i] is not None else ""
            files.append(out / f"sample_{i:04d}{tag}.png")
            artifacts.atomic_write_bytes(files[-1], png_bytes(image))
        artifacts.atomic_write_bytes(out / GRID_FILE, png_bytes(grid(pixels, self.network.classes or None)))
        return {"files": files, "grid": out / GRID_FILE, "seed": seed, "labels": names, "shape": self.shape}

    # ---- what other commands ask of a loaded run
    def require_target(self, capability: str, or_tags: tuple[str, ...] = ()) -> None:
        from forgeml.tasks import refuse_capability

        refuse_capability(self.task, self.run_dir, capability, or_tags)

    def frame(self, *args, **kwargs):
        raise DataError(f"{self.run_dir} is a generation run: it has no rows to predict; draw images with "
                        f"forgeml generate {self.run_dir} -n 64 -o samples/")

    predict = frame

    def evaluate_run(self, data=None, sep=None, encoding=None) -> dict:
        """The generator scored again on the run's test split, as training scored it: the run's config reads and
        splits the images the same way and retrains the scoring classifier (deterministic: the same network as when
        the run trained), and the generator draws from the split's fixed noise (and classes)."""
        from forgeml.config import run_config
        from forgeml.models import raw_outputs
        from forgeml.tasks.generation import Generation

        if data is not None:
            raise ConfigError("a generation run is scored against its own test split, in the feature space of the "
                              "classifier trained on its training images; drop --data")
        cfg = run_config(self.run_dir)
        prepared = Generation.prepare_run(cfg)
        task = prepared.task
        images = task.outputs(raw_outputs(self.network, self.model_name, prepared.enc["test"], task))
        return {"task": self.manifest["task"], "data": f"test split of {cfg.data.source}",
                **task.metrics(prepared.y["test"], images)}

    # ---- forgeml export and forgeml serve
    def export_onnx(self, path: Path, check: bool = True) -> dict:
        from forgeml.tasks.generation_serve import export

        return export(self, path, check)

    def answer(self, body) -> dict:
        from forgeml.tasks.generation_serve import answer

        return answer(self, body)

    def serve_schemas(self) -> tuple[dict, dict]:
        from forgeml.tasks.generation_serve import schemas

        return schemas(self)

    def serve_example(self) -> dict:
        return {"n": 8, "seed": 0, **({"label": self.task.classes[0]} if self.task.state["conditional"] else {})}
