"""The supervised family's data: one row per example and one target column. Read, check, de-duplicate, type and
split the rows (deterministic for a config: evaluate replays it), then clean the training split, fit the preprocessing
on it only, encode every split and rebalance the training inputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from forgeml.config import Config, params_class
from forgeml.core import TASKS, Task, better
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import fit_task, infer_task

if TYPE_CHECKING:  # annotations only; pandas is imported where rows are handled, so serving needs none
    import pandas as pd

Say = Callable[[str], None]


class SupervisedTask(Task):
    """One row, one target (classification, regression): the encoded target is ``batch["y"]`` and one optimizer
    minimizes ``loss``. The class methods and hooks below are what forgeml.train.pipeline asks of a family."""

    needs_target = True
    summary_keys: list[str] = []

    # ---- the target column: whether ``task: auto`` picks this family for it (forgeml.tasks.infer_task asks the
    # families tagged "target" in ``infer_order``; the first claim wins) and whether the family can learn it
    infer_order: int = 50

    @classmethod
    def claims_target(cls, y: pd.Series) -> bool:
        return False

    @classmethod
    def check_target(cls, y: pd.Series) -> None:
        """Raise forgeml.errors.DataError, saying what to do, when this family cannot learn target ``y``."""

    @classmethod
    def target_doubts(cls, y: pd.Series) -> str | None:
        """Why ``task: auto`` picking this family for ``y`` looks wrong (the user can still name it with --task), or None."""
        return None

    # ---- what a fitted task is (state: labels / target scale / threshold; JSON in the manifest)
    @classmethod
    def fit(cls, y: pd.Series) -> "SupervisedTask":
        raise NotImplementedError

    def encode(self, y: pd.Series):
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def loss(self, out, y):
        raise NotImplementedError

    def decode(self, pred):
        raise NotImplementedError

    def quick_metrics(self, y, outputs: dict) -> dict[str, float]:
        """Cheap metrics computed every epoch (the full suite runs once, at the end)."""
        raise NotImplementedError

    def step(self, model, batch: dict, loss=None):
        """One optimizer, "model": the task's loss (or ``loss``, e.g. class weights or distillation) on ``batch["y"]``;
        with ``batch["mix"] = (permutation, lam)`` the mixup loss lam * L(y) + (1 - lam) * L(y[perm])."""
        criterion = self.loss if loss is None else loss
        inputs = {k: v for k, v in batch.items() if k not in ("y", "mix")}
        out, y = model(inputs), batch["y"]
        value = criterion(out, y)
        if "mix" in batch:
            perm, lam = batch["mix"]
            value = lam * value + (1 - lam) * criterion(out, y[perm])
        yield "model", value

    def validation_loss(self, raw, y) -> float:
        import torch

        return float(self.loss(torch.from_numpy(raw).float(), torch.from_numpy(y)))

    # ---- the pipeline's hooks
    @classmethod
    def prepare_run(cls, cfg: Config, say: Say = lambda m: None) -> "Prepared":
        """Split the data, choose the candidate learners (model: auto may give several), then clean, fit the
        preprocessing for the learners' inputs and encode."""
        from forgeml.models import check_supports, get_model, resolve_auto

        splits = split_data(cfg)
        if excluded := splits.preparation.get("excluded_columns"):
            from rich.markup import escape

            from forgeml.features.exclusions import notice

            say(f"[yellow]{escape(notice(excluded))}[/]")
        if kept := splits.preparation.get("leak_suspects_kept"):
            from rich.markup import escape

            from forgeml.features.exclusions import kept_notice

            say(f"[yellow]warning: {escape(kept_notice(kept))}[/]")
        splits.candidates = resolve_auto({f.type for f in splits.features}, cfg.train.privacy, cfg.model.presets) \
            if cfg.model.name == "auto" else [cfg.model.name]
        for name in splits.candidates:
            check_supports(name, splits.features)
        torch_models = [c for c in splits.candidates if "torch" in get_model(c).tags]
        first = torch_models[0] if torch_models else None
        tokenizer = get_model(first).tokenizer_for(params_for(cfg, first)) if first else "words"
        return prepare(cfg, splits, tokenizer, say)

    def training_loss(self, cfg: Config, y_train):
        """The loss the training step uses when data.balance asks for one (class weights, focal); None: the task's."""
        if "labels" not in self.tags:
            return None
        from forgeml.data import balance

        return balance.training_loss(cfg.data.balance, y_train, self.out_dim)

    def sample_weights(self, cfg: Config, y_train):
        """Per-row weights for learners that take them (trees have no focal loss: they get class weights)."""
        if "labels" not in self.tags or cfg.data.balance.method not in ("class_weights", "focal"):
            return None
        from forgeml.data import balance

        return balance.class_weights(y_train, self.out_dim)[y_train]

    def init_model(self, model, data: "Prepared") -> None:
        """Anything a network needs from the training rows before the first step (nothing here)."""

    def choose(self, candidates: list[dict]) -> dict:
        """The candidate with the best validation score on the primary metric (the first on a tie)."""
        metric = self.primary_metric
        best = candidates[0]
        for c in candidates[1:]:
            if c["val"][metric] is not None and (best["val"][metric] is None or better(metric, c["val"][metric], best["val"][metric])):
                best = c
        return best

    def finalize(self, cfg: Config, data: "Prepared", val_outputs: dict, say: Say) -> None:
        """After the choice: tune the binary decision threshold on validation (data.balance.threshold); it joins the
        task's state (manifest), so predict, evaluate and serve decide with it."""
        bal = cfg.data.balance
        if bal.threshold == "none":
            return
        from forgeml.data import balance

        tuned = balance.tune_threshold(data.y["val"], val_outputs["proba"][:, 1], bal.threshold, bal.target_recall)
        self.state["threshold"] = tuned["threshold"]
        self.state["threshold_tuning"] = tuned
        say(f"decision threshold P({self.labels[1]}) >= {tuned['threshold']:.4f}, tuned on validation for "
            f"{tuned['tuned_for']} (val precision {tuned['val_precision']:.3f}, recall {tuned['val_recall']:.3f})")

    def baseline(self, cfg: Config, data: "Prepared", trained_raw: Callable) -> tuple[str, dict]:
        """The strong non-deep baseline on the same split: (name, raw outputs for val and test). ``trained_raw(name)``
        gives a candidate's raw outputs when the baseline was already trained as one (LightGBM), else None."""
        from forgeml.evaluate.baseline import kind_for, run_baseline

        kind = kind_for(data.preprocessor.state)
        reused = trained_raw(kind)
        if reused is not None:
            return kind, reused
        return kind, run_baseline(kind, self, data.enc, data.y, data.preprocessor.state, cfg.train.seed, cfg.train.threads)

    def plots(self, data: "Prepared", outputs: dict, folder) -> list:
        from forgeml.evaluate import plots

        if "labels" in self.tags:
            from sklearn.metrics import confusion_matrix

            cm = confusion_matrix(data.y["test"], outputs["pred"], labels=range(self.out_dim)).tolist()
            return [plots.confusion(cm, self.labels, folder / "confusion_matrix.png"),
                    *plots.roc_pr(data.y["test"], outputs["proba"], self.labels, folder / "roc.png", folder / "pr.png")]
        return [plots.regression_fit(self.decode(data.y["test"]), self.decode(outputs["pred"]), folder / "regression.png")]

    def baseline_task(self, data: "Prepared", val_raw) -> "SupervisedTask":
        """The task that scores the baseline's outputs: the same, except that a decision threshold tuned on validation
        is tuned again, by the same rule, on the baseline's own validation probabilities (they have their own scale;
        the model's threshold would put the baseline at an operating point tuned for another model)."""
        tuned = self.state.get("threshold_tuning")
        if not tuned or "how" not in tuned:
            return self
        from forgeml.data import balance

        proba = self.outputs(val_raw)["proba"][:, 1]
        own = balance.tune_threshold(data.y["val"], proba, tuned["how"], tuned.get("target_recall", 0.8))
        return type(self)({**self.state, "threshold": own["threshold"], "threshold_tuning": own})

    @classmethod
    def split_rows(cls, cfg: Config) -> dict[str, pd.DataFrame]:
        """The rows of each split as read (deterministic for a config: evaluate and export replay it)."""
        return split_data(cfg).raw

    def predictions(self, outputs: dict) -> pd.DataFrame:
        """predict's columns: the prediction (and proba_<label> per class)."""
        import pandas as pd

        result = pd.DataFrame({"prediction": self.decode(outputs["pred"])})
        if "proba" in outputs:
            for i, label in enumerate(self.labels):
                result[f"proba_{label}"] = outputs["proba"][:, i]
        return result


def params_for(cfg: Config, name: str):
    """A learner's parameters: the config's model section when it names this learner, else its defaults."""
    if cfg.model.name == name:
        return cfg.model
    Params = params_class(name)
    if cfg.model.name == "auto" and hasattr(Params, "for_presets"):  # model auto's presets choose its settings
        return Params.for_presets(cfg.model.presets)
    return Params()


@dataclass
class Splits:
    target: str
    task: Any
    features: list
    raw: dict[str, pd.DataFrame]  # train / val / test rows as read
    y: dict[str, np.ndarray]  # encoded targets per split
    preparation: dict = field(default_factory=dict)  # what data.clean removed and data.balance changed
    candidates: list[str] = field(default_factory=list)  # the learners to train (model: auto may give several)


@dataclass
class Prepared(Splits):
    preprocessor: Any = None
    enc: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model inputs per split
    rows: dict[str, int] = field(default_factory=dict)  # rows per split after cleaning, before resampling


def split_data(cfg: Config) -> Splits:
    """Read, check, de-duplicate, type and split the data (deterministic for a config: evaluate replays it)."""
    from forgeml.data.clean import duplicate_rows
    from forgeml.data.schema import check_target
    from forgeml.features import infer_features
    from forgeml.data.sources import read_source
    from forgeml.data.split import check_enough_rows, parse_times, split_indices

    df, implied_target = read_source(cfg.data.source, cfg.data.sep, cfg.data.encoding)
    reading = df.attrs.get("reading")  # how the file was read and each column's values parsed (forgeml.data.values)
    target = cfg.data.target or implied_target
    rows_read = len(df)
    df = check_target(df, target)
    preparation = {"missing_target": rows_read - len(df)} if len(df) < rows_read else {}
    if reading:
        preparation["reading"] = reading
    split = cfg.data.split
    for key in ("group_col", "time_col"):
        col = getattr(split, key)
        if col and col not in df.columns:
            raise DataError(f"split.{key} {col!r} is not a column of the data; columns: {list(df.columns)}")
        if col and col == target:
            raise DataError(f"split.{key} {col!r} is the target; choose another column")
    if cfg.data.clean.deduplicate:
        dup = duplicate_rows(df)
        if dup.any():
            df = df.loc[~dup].reset_index(drop=True)
        preparation["duplicates"] = int(dup.sum())
    task_name = cfg.task.name if cfg.task.name != "auto" else infer_task(df[target])
    TASKS.get(task_name).check_target(df[target])
    doubt = TASKS.get(task_name).target_doubts(df[target]) if cfg.task.name == "auto" else None
    if doubt:
        raise DataError(doubt)
    # the group/time column orders or groups rows; as an input it would be an ID (memorized) or a leak
    split_cols = {c: "ignore" for c in (split.group_col, split.time_col) if c}
    features = infer_features(df, target, {**split_cols, **cfg.data.features})
    task = fit_task(task_name, df[target])
    y_all = task.encode(df[target])
    groups = df[split.group_col].astype(str).to_numpy() if split.group_col else None
    times = parse_times(df[split.time_col]) if split.time_col else None
    check_enough_rows(len(y_all), split)
    idx = dict(zip(("train", "val", "test"), split_indices(y_all, "stratify" in task.tags, split, groups, times)))
    raw = {s: df.iloc[i].reset_index(drop=True) for s, i in idx.items()}
    y = {s: y_all[i] for s, i in idx.items()}
    features = leave_out(features, raw["train"], y["train"], task, set(cfg.data.features), preparation, split.seed)
    return Splits(target, task, features, raw, y, preparation)


def leave_out(features: list, train: pd.DataFrame, y_train: np.ndarray, task, named: set, preparation: dict,
              seed: int) -> list:
    """The inferred features minus those that must not be features (row numbers, IDs, constants, single-column leaks:
    forgeml.features.exclusions, found on the training rows); a column data.features names is kept. What is left out,
    and why, goes into ``preparation`` (the manifest's data.preparation)."""
    from forgeml.features.exclusions import excluded_columns

    found = excluded_columns(train, features, y_train, "labels" in task.tags, named, seed)
    if kept := [e for e in found if e.get("kept")]:
        preparation["leak_suspects_kept"] = kept
    out = [e for e in found if not e.get("kept")]
    if not out:
        return features
    preparation["excluded_columns"] = out
    gone = {e["column"] for e in out}
    left = [f for f in features if f.name not in gone]
    if not left:
        why = "; ".join(f"{e['column']!r}: {e['reason']}, {e['detail']}" for e in out)
        raise DataError(f"every input column must be left out ({why}); check the target column, or keep a column by "
                        f"naming it with its type in data.features (--set data.features.{out[0]['column']}={out[0]['type']})")
    return left


def prepare(cfg: Config, splits: Splits, text_tokenizer: str = "words", say: Say = lambda m: None) -> Prepared:
    """Clean the training split, fit the preprocessing on it only, encode every split, then rebalance the training
    inputs (data.balance). ``text_tokenizer``: what the learner's text inputs need ("words" or "minilm")."""
    from forgeml.data import balance
    from forgeml.data.clean import quantile_bounds, training_rows_to_drop
    from forgeml.features import smote_roles
    from forgeml.features.preprocess import Preprocessor
    from forgeml.features.numeric import numeric_frame
    clean = cfg.data.clean
    numeric = [f.name for f in splits.features if f.type == "numeric"]
    categorical = [f.name for f in splits.features if f.type == "categorical"]
    train_rows = splits.raw["train"]
    values = numeric_frame(train_rows, numeric) if numeric else np.zeros((len(train_rows), 0), np.float32)
    bounds = quantile_bounds(values, clean.outliers.quantiles) if numeric and clean.outliers.method != "none" else None
    drops = training_rows_to_drop(train_rows, values, categorical, clean, bounds)
    if drops:
        keep = ~np.logical_or.reduce(list(drops.values()))
        if not keep.any():
            raise DataError(f"data.clean drops every training row ({', '.join(drops)}); relax data.clean.missing/outliers")
        splits.raw["train"], splits.y["train"] = train_rows.loc[keep].reset_index(drop=True), splits.y["train"][keep]
        splits.preparation["training_rows_dropped"] = {why: int(m.sum()) for why, m in drops.items()}

    privacy = cfg.train.privacy
    if privacy is not None and (unknown := sorted(set(privacy.bounds) - set(numeric))):
        raise ConfigError(f"train.privacy.bounds names {', '.join(map(repr, unknown))}, which "
                          f"{'is not a numeric feature' if len(unknown) == 1 else 'are not numeric features'}; "
                          f"numeric features: {', '.join(numeric) or 'none'}")
    pre = Preprocessor.fit(splits.raw["train"], splits.features, cfg.data, text_tokenizer=text_tokenizer, clip_bounds=bounds,
                           privacy=privacy)
    if privacy is not None:  # what the preprocessing learned from the private rows, said and recorded
        from forgeml.features.private import record

        splits.preparation["private_preprocessing"], notices = record(pre.state, privacy, splits.raw["train"])
        for line in notices:
            say(f"[yellow]{line}[/]")
    enc = {s: pre.transform(rows) for s, rows in splits.raw.items()}
    n = {s: len(rows) for s, rows in splits.raw.items()}
    feats = splits.features
    say(f"[dim]{sum(n.values())} rows -> train {n['train']} / val {n['val']} / test {n['test']}; task {splits.task.name}[/]")
    from rich.markup import escape

    from forgeml.features.notes import describe

    lines, notes = describe(cfg.data.source, feats, pre.state, splits.preparation.get("reading"), splits.target)
    if notes:  # stored in the run: the manifest's data.preparation.reading
        splits.preparation.setdefault("reading", {})["notes"] = notes
    for line in lines:
        say(f"[dim]{escape(line)}[/]")
    if set(splits.preparation) - {"reading"}:
        say(f"[dim]cleaning: {cleaning_line(splits.preparation)}[/]")

    bal = cfg.data.balance
    roles = smote_roles(pre.state)  # how SMOTE treats each model input, as its feature type declares
    balance.check(bal, splits.task, roles)
    if bal.method in balance.RESAMPLING:
        before = np.bincount(splits.y["train"], minlength=splits.task.out_dim)
        enc["train"], splits.y["train"], index, report = balance.resample(enc["train"], splits.y["train"], bal,
                                                                          splits.task.labels, roles, say)
        if index is not None:  # the raw rows follow (the text baseline reads them)
            splits.raw["train"] = splits.raw["train"].iloc[index].reset_index(drop=True)
        after = np.bincount(splits.y["train"], minlength=splits.task.out_dim)
        splits.preparation["balance"] = {"method": bal.method, "train_class_counts_before": before.tolist(),
                                      "train_class_counts_after": after.tolist(), **report}
        say(f"[dim]balance ({bal.method}): training class counts {before.tolist()} -> {after.tolist()}[/]")
    return Prepared(**vars(splits), preprocessor=pre, enc=enc, rows=n)


def cleaning_line(prep: dict) -> str:
    parts = []
    if prep.get("missing_target"):
        parts.append(f"{prep['missing_target']} rows without a target value dropped")
    if prep.get("excluded_columns"):
        parts.append(f"{len(prep['excluded_columns'])} column(s) left out as features (above)")
    if prep.get("duplicates"):
        parts.append(f"{prep['duplicates']} duplicate rows removed before splitting")
    for why, n in prep.get("training_rows_dropped", {}).items():
        parts.append(f"{n} training rows dropped ({why})")
    return "; ".join(parts) or "nothing to remove"
