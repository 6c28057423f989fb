"""Generation: learn to draw new images like the training images (a GAN or a VAE, models/gan.py and models/vae.py,
the learners tagged ``generator``), optionally one class at a time (``task.conditional``).

The rows are images (an image folder, bundled:digits, a table with image paths or pixel arrays), read and resized by
the image feature type: images of other sizes than the most common one are resized to it, and data.image_size sets
another size. The class column (an image folder's sub-folders, a bundled set's class, or ``task.label``) is never
an input; it trains the scoring classifier and, when conditional, says which class to draw.

How it plugs into forgeml's one pipeline: every split carries fixed noise ``z`` (and its rows' classes), so a
generator's output on a split is one generated image per real image, drawn from the same noise at every epoch;
``metrics`` compares them with the split's real images in the feature space of a small classifier trained on the
training images (forgeml.evaluate.feature_net, generative: not Inception FID). The validation loss the loop logs,
early-stops and keeps the best epoch by is that Frechet distance on validation. The baseline is a Gaussian mixture
fitted on the training pixels, scored the same way. A loss or an image that is not finite stops training with a
message; the last checkpoint, written after the last finite epoch, is kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from forgeml.core import Task
from forgeml.errors import ConfigError, DataError, RunError
from forgeml.tasks import TASKS
from forgeml.tasks.supervised import Prepared, Say

if TYPE_CHECKING:
    import pandas as pd

BASELINE = "gaussian_mixture"
LOSS_NAMES = {"d": "discriminator", "g": "generator", "model": "model's"}
SHOWN = 16  # images per epoch in the samples-by-epoch plot (the first of the validation noise)
# train settings a generation run takes where its config sets none (the learners add theirs: train_defaults): more
# epochs than a classifier needs (measured on digits: the GAN's validation Frechet distance 3.0 after 100 epochs of a
# cosine schedule, 0.8 after 300), and patience for the noisy Frechet distance the loop early-stops on
FAMILY_TRAIN = {"epochs": 300, "early_stopping": {"monitor": "val_loss", "patience": 40}}


class GenerationConfig(BaseModel):
    """``task: {name: generation, conditional: true, latent_dim: 32}``"""

    model_config = ConfigDict(extra="forbid")
    conditional: bool = Field(False, description="learn one distribution per class and draw a chosen class "
                                                 "(needs a class column: an image folder's sub-folders, a bundled set's "
                                                 "class, or task.label)")
    label: Optional[str] = Field(None, description="the class column (default: the data's own, e.g. an image folder's "
                                                   "sub-folder names); never an input")
    latent_dim: int = Field(32, ge=1, le=1024, description="size of the noise vector a generator draws from")


@dataclass
class Real:
    """What generated images are compared with: the split's real images in the scorer's feature space, and their
    class codes (None without a class column)."""

    features: np.ndarray
    labels: Optional[np.ndarray] = None


@TASKS.register("generation", tags={"samples", "own_route"})
class Generation(Task):
    Config = GenerationConfig
    needs_target = False
    primary_metric = "frechet_distance"
    folds_refused = ("a generation run is scored on its test split by a classifier trained with it; cross-validation "
                     "of generators is not built (train with another --seed to see the spread)")
    summary_keys = ["frechet_distance", "kid", "precision", "recall", "density", "coverage", "class_accuracy"]

    def __init__(self, state: dict[str, Any]):
        super().__init__(state)
        self.scorer = None  # forgeml.evaluate.feature_net.Scorer, trained by prepare_run (not saved with the run)
        self.val_real: Optional[Real] = None
        self.trained: list[list[np.ndarray]] = []  # per candidate, in training order: each epoch's first SHOWN images
        self.kept = None  # the chosen network (choose), for the interpolation plot
        self.kept_name: Optional[str] = None
        self.epoch_samples: list[np.ndarray] = []  # the kept candidate's (choose)

    @property
    def classes(self) -> list[str]:
        """The class names a conditional model draws (their index is the code it takes)."""
        return list(self.state.get("classes") or [])

    @property
    def out_dim(self) -> dict:
        """What a generator is built with (models/generative_nets.settings)."""
        return {"latent_dim": self.state["latent_dim"], "classes": len(self.classes) if self.state["conditional"] else 0,
                "mean": self.state["pixel_mean"], "std": self.state["pixel_std"]}

    # ---- training
    def parameter_groups(self, model) -> dict[str, Any]:
        return model.parameter_groups()

    def step(self, model, batch: dict):
        """The learner's losses (a GAN: "d" then "g"), each checked before the loop backpropagates it."""
        import torch

        for name, loss in model.training_losses(batch):
            if not torch.isfinite(loss.detach()).all():
                raise RunError(f"training stopped: the {LOSS_NAMES.get(name, name)} loss turned {float(loss.detach())}, so "
                               "the network diverged. The last checkpoint, written after the last finite epoch, is kept "
                               f"in {self.state.get('checkpoints', 'the run folder')}; train again with a lower learning "
                               "rate (--lr, e.g. half of it)")
            yield name, loss

    def validation_loss(self, raw, y) -> float:
        """The Frechet distance of this epoch's validation samples (raises when they are not finite, before the
        loop writes the epoch's checkpoint); keeps their first images for the samples-by-epoch plot."""
        images = np.asarray(raw, dtype=np.float32)
        if not np.isfinite(images).all():
            raise RunError("training stopped: the generator's images turned non-finite (the network diverged). The last "
                           f"checkpoint, from the last finite epoch, is kept in {self.state.get('checkpoints', 'the run folder')}; "
                           "train again with a lower learning rate (--lr)")
        if not self.trained:  # trained without init_model
            self.trained.append([])
        self.trained[-1].append(images[:SHOWN])
        return self.metrics(self.val_real, {"images": images}, quick=True)["frechet_distance"]

    def outputs(self, raw) -> dict[str, np.ndarray]:
        return {"images": np.asarray(raw, dtype=np.float32)}

    def quick_metrics(self, y, outputs: dict) -> dict:
        return {}

    def metrics(self, y: Real, outputs: dict, quick: bool = False) -> dict[str, Any]:
        """Generated images (one per real image of the split, its class when conditional) against the real ones."""
        from forgeml.evaluate import generative

        if self.scorer is None:
            raise RunError("generated images are scored by the classifier trained with the run; a loaded run does not "
                           "keep it: the run's metrics.json holds its scores")
        images = outputs["images"]
        fake = self.scorer.features(images)
        if quick:
            return {"frechet_distance": generative.frechet_distance(y.features, fake)}
        out: dict[str, Any] = {"n": int(len(images)), **generative.score(y.features, fake, self.state.get("seed", 0))}
        out["class_accuracy"] = None
        if self.state["conditional"] and self.scorer.kind == "labels" and y.labels is not None:
            out.update(generative.class_accuracy(self.scorer.predict(images), y.labels, self.classes))
        return out

    # ---- the pipeline's hooks
    @classmethod
    def prepare_run(cls, cfg, say: Say = lambda m: None) -> Prepared:
        """Read the images and their classes, split (stratified by class), fit the image preprocessing on the
        training split, add each split's fixed noise (and classes), and train the scoring classifier."""
        from forgeml.data.split import split_indices
        from forgeml.evaluate.feature_net import train_scorer
        from forgeml.features.preprocess import Preprocessor

        opts = GenerationConfig.model_validate(dict(cfg.task.model_extra or {}))
        if cfg.train.privacy is not None:
            raise ConfigError("differential privacy (train.privacy / --epsilon) is not available for generation yet")
        df, features, label, candidates = read_images(cfg, opts, say)
        train_defaults(cfg, candidates, say)
        names, codes = class_codes(df[label]) if label else ([], None)
        if opts.conditional and len(names) < 2:
            raise DataError("task.conditional needs a class column with at least 2 classes (an image folder with one "
                            f"sub-folder per class, or task.label); {'found ' + str(len(names)) + ' class' if label else 'there is none'}")
        stratify = codes if codes is not None else np.zeros(len(df), dtype=np.int64)
        idx = dict(zip(("train", "val", "test"), split_indices(stratify, codes is not None, cfg.data.split)))
        raw = {s: df.iloc[i].reset_index(drop=True) for s, i in idx.items()}
        if len(raw["train"]) < 10 or len(raw["val"]) < 3 or len(raw["test"]) < 3:
            raise DataError(f"generation needs at least 10 training images and 3 each for validation and test; the split "
                            f"has {', '.join(f'{s} {len(r)}' for s, r in raw.items())}")
        pre = Preprocessor.fit(raw["train"], features, cfg.data)
        image_state = pre.state[features[0].type]
        enc = {s: pre.transform(rows) for s, rows in raw.items()}
        y_codes = {s: (codes[i] if codes is not None else None) for s, i in idx.items()}
        for n, (s, arrays) in enumerate(enc.items()):  # the fixed noise each split is generated from
            arrays["z"] = np.random.default_rng([cfg.train.seed, n]).standard_normal(
                (len(raw[s]), opts.latent_dim)).astype(np.float32)
            if opts.conditional:
                arrays["label"] = y_codes[s].astype(np.int64)
        task = cls({"conditional": opts.conditional, "label": label, "latent_dim": opts.latent_dim,
                    "classes": names if opts.conditional else None, "pixel_mean": image_state["mean"],
                    "pixel_std": image_state["std"], "seed": cfg.train.seed,
                    "checkpoints": str(cfg.run_dir / "checkpoints")})
        size = "x".join(map(str, image_state["size"]))
        say(f"[dim]{len(df)} images -> train {len(raw['train'])} / val {len(raw['val'])} / test {len(raw['test'])}; "
            f"task generation; {image_state['mode']} {size} (images of other sizes are resized to it)"
            f"{f'; {len(names)} classes in {label!r}' if label else ''}{'; conditional' if opts.conditional else ''}[/]")
        task.scorer = train_scorer(enc["train"]["image"], y_codes["train"], enc["val"]["image"], y_codes["val"], cfg.train.seed)
        task.state["scorer"] = {"kind": task.scorer.kind, "val_accuracy": task.scorer.val_accuracy}
        say(f"[dim]scoring classifier ({'the classes' if task.scorer.kind == 'labels' else 'four flips: no classes'}): "
            f"validation accuracy {task.scorer.val_accuracy:.3f}; its features score the samples (not Inception FID)[/]")
        y = {s: Real(task.scorer.features(enc[s]["image"]), y_codes[s]) for s in enc}
        task.val_real = y["val"]
        return Prepared(target=label, task=task, features=features, raw=raw, y=y, candidates=candidates,
                        preprocessor=pre, enc=enc, rows={s: len(r) for s, r in raw.items()})

    @classmethod
    def split_rows(cls, cfg) -> dict:
        raise DataError("a generation run has no rows to predict: forgeml evaluate RUN scores its images on its test "
                        "split again; forgeml generate RUN draws new images")

    def training_loss(self, cfg, y_train):
        return None

    def sample_weights(self, cfg, y_train):
        return None

    def init_model(self, model, data: Prepared) -> None:
        self.trained.append([])  # the pipeline trains its candidates in order, each after this call

    def choose(self, candidates: list[dict]) -> dict:
        scored = [c for c in candidates if c["val"].get("frechet_distance") is not None]
        chosen = min(scored, key=lambda c: c["val"]["frechet_distance"]) if scored else candidates[0]
        self.kept, self.kept_name = chosen["estimator"], chosen["model"]
        at = [c["model"] for c in candidates].index(chosen["model"])
        self.epoch_samples = self.trained[at] if at < len(self.trained) else []
        return chosen

    def finalize(self, cfg, data: Prepared, val_outputs: dict, say: Say) -> None:
        pass

    def baseline_task(self, data: Prepared, val_raw) -> "Generation":
        return self

    def baseline(self, cfg, data: Prepared, trained_raw: Callable) -> tuple[str, dict]:
        """Gaussian mixtures on the training pixels (one per class when conditional), one draw per val/test image."""
        from forgeml.evaluate.generative import mixture_samples

        mean, std = np.asarray(self.state["pixel_mean"]), np.asarray(self.state["pixel_std"])
        cond = self.state["conditional"]
        wanted = {s: (data.y[s].labels if cond else np.full(len(data.y[s].features), -1)) for s in ("val", "test")}
        drawn = mixture_samples(data.enc["train"]["image"], data.enc["val"]["image"], wanted,
                                data.y["train"].labels if cond else None, data.y["val"].labels if cond else None,
                                -mean / std, (1 - mean) / std, self.state.get("seed", 0))
        return BASELINE, drawn

    def plots(self, data: Prepared, outputs: dict, folder) -> list:
        from forgeml.tasks.generation_plots import plots

        return plots(self, data, outputs, folder)

    # ---- what a client sends and gets back (forgeml generate, POST /v1/models/NAME/generate)
    def request_fields(self) -> list[dict]:
        fields = [{"name": "n", "type": "integer", "schema": {"type": "integer", "minimum": 1, "maximum": 1024},
                   "description": "images to draw"},
                  {"name": "seed", "type": "integer", "schema": {"type": "integer"}, "description": "noise seed (optional)"}]
        if self.state["conditional"]:
            fields.append({"name": "label", "type": "string", "schema": {"enum": self.classes},
                           "description": "the class to draw (default: every class in turn)"})
        return fields

    def response_fields(self) -> dict[str, dict]:
        return {"images": {"type": "array", "items": {"type": "string", "contentEncoding": "base64",
                                                      "contentMediaType": "image/png"},
                           "description": "the generated images as base64 PNG files"},
                "labels": {"type": "array", "items": {"type": ["string", "null"]},
                           "description": "the class each image was drawn for (null: unconditional)"}}

    def predictions(self, outputs: dict):
        raise DataError("a generation run does not predict rows; draw images with forgeml generate RUN")

    @classmethod
    def load_run(cls, run_dir, manifest: dict):
        from forgeml.tasks.generation_run import GenerationRun

        return GenerationRun(run_dir, manifest)


def read_images(cfg, opts: GenerationConfig, say: Say) -> tuple[pd.DataFrame, list, Optional[str], list[str]]:
    """(rows, the image feature, the class column or None, candidate learners): the learners tagged ``generator``
    that take the data's image column (model auto: those not tagged ``opt_in``); other columns are left out (and
    said)."""
    from forgeml.data.sources import read_source
    from forgeml.features import infer_features
    from forgeml.models import LEARNERS, check_supports

    df, implied = read_source(cfg.data.source, cfg.data.sep, cfg.data.encoding)
    label = opts.label or (implied if implied in df.columns else None)
    if label is not None:
        if label not in df.columns:
            raise DataError(f"class column {label!r} not found; available columns: {list(df.columns)}")
        if df[label].isna().any():
            raise DataError(f"class column {label!r} has {int(df[label].isna().sum())} missing values; fill or drop those rows")
    tagged = LEARNERS.tagged("generator")
    takes = set().union(*(LEARNERS.get(n).accepts for n in tagged))
    found = [f for f in infer_features(df, label, dict(cfg.data.features)) if f.type != "ignore"]
    images = [f for f in found if f.type in takes]
    if not images:
        raise DataError("generation needs an image column (an image folder, bundled:digits, or a table of image paths "
                        f"or pixel arrays); found {', '.join(f'{f.name}:{f.type}' for f in found) or 'no columns'}")
    if len(found) > len(images):
        say(f"[dim]generation: {', '.join(f.name for f in found if f not in images)} left out (a generator draws images only)[/]")
    candidates = [cfg.model.name] if cfg.model.name != "auto" else \
        [n for n in tagged if "opt_in" not in LEARNERS.get(n).tags]  # the VAE trains when asked for
    for name in candidates:
        if "generator" not in LEARNERS.get(name).tags:
            raise ConfigError(f"model {name!r} does not generate images; choose one of: auto, {', '.join(tagged)}")
        check_supports(name, images)
    return df, images, label, candidates


def train_defaults(cfg, candidates: list[str], say: Say) -> None:
    """Train settings the config does not set take the family's (FAMILY_TRAIN) and the learner's (its Params'
    ``train_defaults``; under model auto, the ones every candidate shares). Set on the config before the pipeline
    writes config.yaml, so the run records them and --resume trains the same way."""
    from forgeml.models import LEARNERS

    wanted = dict(FAMILY_TRAIN)
    own = [dict(getattr(LEARNERS.get(n).Params, "train_defaults", {})) for n in candidates]
    wanted.update({k: v for k, v in own[0].items() if all(o.get(k, object()) == v for o in own[1:])} if own else {})
    chosen = {k: v for k, v in wanted.items() if k not in cfg.train.model_fields_set}
    for key, value in chosen.items():
        setattr(cfg.train, key, value)
    if chosen:
        say(f"[dim]generation: train settings not given take the defaults for {' and '.join(candidates)}: "
            + ", ".join(f"{k} {v if not isinstance(v, dict) else v.get('patience')}" for k, v in chosen.items()).replace(
                "early_stopping", "early-stopping patience") + "[/]")


def class_codes(values: pd.Series) -> tuple[list[str], np.ndarray]:
    """Class names (numeric order when every name is a number, else text order) and each row's code."""
    from forgeml.data.schema import category_keys

    keys = category_keys(values).to_numpy(dtype=object)
    names = sorted(set(keys), key=lambda k: (0, float(k), "") if _number(k) else (1, 0.0, k))
    index = {k: i for i, k in enumerate(names)}
    return names, np.array([index[k] for k in keys], dtype=np.int64)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
