"""The interfaces every task family plugs into, and their registries.

- **Task** (supervised, anomaly, ...): how its data is split and prepared, what one training step computes, how raw
  outputs become predictions, how it is evaluated, which baseline stands beside it.
- **Learner** (a torch network trained by our loop, LightGBM, IsolationForest, ...): fit, raw outputs, save/load
  without pickle, export of its core to ONNX.
- **Engine** (DP-SGD, ...): how the loop's batches are drawn and its optimizer wrapped; without one the loop trains
  locally.

- **FeatureType** (numeric, categorical, text, image): detect the columns it claims, fit its state on the training
  split, turn values into the model's arrays, its ONNX inputs and preprocessing nodes, its request field. The switch on feature type exists once:
  in forgeml.features, one module per type.

Capabilities are **tags** on the implementations (``"prunable" in learner.tags``), never checks on their names. This
module imports nothing else from forgeml, so every package may depend on it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that no implementation registered (the message lists those that did)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> implementation, filled by a decorator in the implementation's own module. ``builtin`` names the modules
    that register the built-in implementations; they are imported on first lookup (plugins import their own)."""

    def __init__(self, kind: str, builtin: Iterable[str] = ()):
        self.kind = kind
        self.builtin = tuple(builtin)
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, **attrs: Any) -> Callable[[T], T]:
        """``@REGISTRY.register("name", tags={...})``: sets ``name`` (and the given attributes) on the class."""

        def deco(obj: T) -> T:
            obj.name = name
            for key, value in attrs.items():
                setattr(obj, key, frozenset(value) if isinstance(value, (set, frozenset)) else value)
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register an instance (the decorator registers classes)."""
        self._items[name] = obj
        return obj

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())

    def tagged(self, tag: str) -> list[str]:
        """The names of the implementations that carry ``tag``."""
        return [name for name, obj in self.items() if tag in getattr(obj, "tags", ())]


# The registries. Each lists the modules that register the built-in implementations (imported on first lookup);
# a plugin registers itself by importing the registry and decorating its class.
TASKS: Registry = Registry("task", builtin=(
    "forgeml.tasks.classification", "forgeml.tasks.regression", "forgeml.tasks.anomaly", "forgeml.tasks.clustering",
    "forgeml.tasks.forecasting", "forgeml.tasks.generation"))
LEARNERS: Registry = Registry("model", builtin=(
    "forgeml.models.mlp", "forgeml.models.cnn", "forgeml.models.text", "forgeml.models.minilm", "forgeml.models.gbdt",
    "forgeml.models.detectors", "forgeml.models.autoencoder", "forgeml.models.deep_svdd", "forgeml.models.tfidf_linear",
    "forgeml.models.pixels_linear", "forgeml.models.gbdt_tfidf", "forgeml.models.kmeans", "forgeml.models.kmeans_embedding",
    "forgeml.models.shallow", "forgeml.models.catboost_trees", "forgeml.models.gbdt_xt", "forgeml.models.ensemble",
    "forgeml.models.forecast_stats", "forgeml.models.forecast_lgbm", "forgeml.models.forecast_nbeats",
    "forgeml.models.forecast_lstm", "forgeml.models.forecast_transformer", "forgeml.models.gan", "forgeml.models.vae"))
ENGINES: Registry = Registry("engine", builtin=("forgeml.privacy.dp", "forgeml.train.distributed"))
FEATURES: Registry = Registry("feature type", builtin=(
    "forgeml.features.numeric", "forgeml.features.categorical", "forgeml.features.text", "forgeml.features.image",
    "forgeml.features.datetime"))


# --------------------------------------------------------------------------------------------- metric direction
LOWER_IS_BETTER = {"loss", "log_loss", "ece", "mae", "rmse", "mse", "mape", "smape", "mase", "fpr", "davies_bouldin",
                  "frechet_distance", "kid"}


def lower_is_better(metric: str) -> bool:
    """Is a lower value of this metric better? ``val_``/``test_`` prefixes are ignored."""
    return metric.removeprefix("val_").removeprefix("test_") in LOWER_IS_BETTER


def better(metric: str, a: float, b: float, min_delta: float = 0.0) -> bool:
    """Is a better than b for this metric (by more than min_delta)? ``val_``/``test_`` prefixes are ignored."""
    if lower_is_better(metric):
        return a < b - min_delta
    return a > b + min_delta


# --------------------------------------------------------------------------------------------- the interfaces
class Task:
    """One task family. ``state`` is what the task fitted on the training split (labels, target scale, threshold...);
    it is JSON and goes into the manifest, so a loaded run rebuilds the task as ``Task(state)``."""

    name: str
    tags: frozenset = frozenset()
    primary_metric: str  # chooses between candidate learners on validation
    needs_target: bool = True
    evaluates_without_target: bool = False  # metrics need no label column (clustering: silhouette)

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def step(self, model, batch: dict) -> Iterator[tuple[str, Any]]:
        """What one training step computes: ``(optimizer_name, loss)`` pairs (one for most tasks, two for a GAN).
        The loop backpropagates each loss and steps that optimizer before asking for the next pair."""
        raise NotImplementedError

    def parameter_groups(self, model) -> dict[str, Any]:
        """Optimizer name -> the module it trains (the loop builds one optimizer and schedule per entry)."""
        return {"model": model}

    def validation_loss(self, raw, y) -> float:
        """The loss on validation outputs (raw network outputs as numpy), logged as val_loss every epoch."""
        raise NotImplementedError

    def outputs(self, raw) -> dict[str, Any]:
        """Raw model outputs -> predictions (``pred`` and task-specific keys such as ``proba`` or ``score``)."""
        raise NotImplementedError

    def metrics(self, y, outputs: dict) -> dict[str, Any]:
        raise NotImplementedError

    def truth(self, rows, target, preprocessor) -> Any:
        """What ``metrics`` compares outputs with for rows to evaluate (forgeml evaluate): the encoded target column by
        default; a family whose metrics need more (clustering: the rows' points) builds it from the rows."""
        return self.encode(rows[target])

    def summary_keys(self) -> list[str]:
        """The metrics shown in tables and stored in the manifest's summary."""
        raise NotImplementedError

    def response_fields(self) -> dict[str, dict]:
        """What a prediction response holds besides the model's name and version: field -> JSON schema (the
        signature's outputs; the server's response model is built from it)."""
        raise NotImplementedError

    # ---- the exported graph and what the server answers (forgeml.export.onnx, forgeml.serve.registry)
    graph_core_output = "core/output"  # the name of a torch learner's output in the graph, before graph_post

    def graph_head(self, raw):
        """What the exported torch core returns from the network's raw output: [N] values by default."""
        return raw if raw.dim() == 1 else raw.squeeze(-1)

    def graph_outputs(self) -> list[dict]:
        """The ONNX graph's outputs as the manifest describes them: name, dtype, shape (and what they mean)."""
        raise NotImplementedError

    def graph_post(self, graph, helper, numpy_helper, inits: list) -> list:
        """ONNX nodes after the learner's core that compute graph_outputs(); replaces graph.output with them and
        appends constants to ``inits`` (onnx.helper and onnx.numpy_helper are passed in: onnx is an extra)."""
        raise NotImplementedError

    def from_graph(self, first) -> dict[str, Any]:
        """The graph's first output (numpy) -> what ``outputs`` gives for the same rows."""
        raise NotImplementedError

    def graph_reference(self, outputs: dict):
        """From ``outputs(raw)``: what the graph's first output should equal (the export's parity check)."""
        raise NotImplementedError

    def response(self, first, finite) -> dict[str, Any]:
        """The graph's first output -> the values of response_fields(); ``finite(values, what)`` returns values or
        raises (the server answers 422 naming the row)."""
        raise NotImplementedError


NUMBER_DATATYPES = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")


class FeatureType:
    """One kind of input column. Its ``state`` (fitted on the training split, JSON) is stored in the manifest's
    preprocessing under the type's name and holds the columns it covers. ``order`` places its inputs among the
    others (the model's input dict and the ONNX graph's inputs follow it). Methods take that state."""

    name: str
    tags: frozenset = frozenset()
    order: int = 100

    # ---- detection (forgeml.features.detect): which columns the type claims when data.features does not name one
    detect_order: int = 50  # the registered types are asked in this order (lowest first); the first claim wins
    max_columns: int | None = None  # columns of this type one model takes (None: any number)

    def detect(self, values) -> bool:
        """Does this type claim a column? ``values``: its non-missing values (a non-empty pandas Series with the
        column's dtype). A column no type claims is ignored; a type that only data.features names claims none."""
        return False

    def fit(self, df, columns: list[str], data_cfg, context: dict) -> dict:
        """The state, from the training rows (``context``: what the task adds, e.g. the text tokenizer)."""
        raise NotImplementedError

    def transform(self, df, state: dict) -> dict[str, Any]:
        """Rows -> the model's input arrays (key -> array with one row per example)."""
        raise NotImplementedError

    def shapes(self, state: dict | None) -> dict[str, Any]:
        """What a model built on this state receives (its part of Preprocessor.input_shapes; state None: absent)."""
        raise NotImplementedError

    def model_inputs(self, state: dict) -> list[str]:
        """The keys of the model's input dict this type fills (the ONNX core's inputs, in order)."""
        raise NotImplementedError

    def raw_inputs(self, state: dict) -> list[dict]:
        """The ONNX graph's inputs as a user feeds them: name, dtype, shape, columns and how to compute them."""
        raise NotImplementedError

    def feeds(self, df, state: dict) -> dict[str, Any]:
        """Rows of a DataFrame -> the raw ONNX inputs."""
        raise NotImplementedError

    def encode(self, rows: list[dict], state: dict) -> dict[str, Any]:
        """JSON instances -> the raw ONNX inputs; a bad value raises forgeml.errors.InputError naming it."""
        raise NotImplementedError

    def load(self, state: dict) -> None:
        """Load what encoding requests needs once (a tokenizer), so a server's first request is not slow."""

    def export_files(self, state: dict) -> dict[str, str]:
        """Files an exported ONNX model's user needs beside it to compute this type's inputs (a vocabulary):
        file name -> text, named in ``raw_inputs``."""
        return {}

    def graph(self, state: dict, g) -> dict[str, str]:
        """Add the ONNX preprocessing nodes (forgeml.features.Graph) from the raw inputs to the model's inputs;
        returns model input key -> the graph tensor holding it."""
        raise NotImplementedError

    def flat(self, state: dict, g, onehot: bool) -> list[str]:
        """Graph tensors [N, k] forming this type's part of one float matrix (trees: codes, detectors: one-hot)."""
        return []

    def example(self, shapes: dict, generator) -> dict[str, Any]:
        """Model inputs of 3 rows to trace the network for export."""
        raise NotImplementedError

    def field(self, state: dict, column: str) -> dict:
        """The request field for one column: its JSON schema and what a client should know (levels, size...)."""
        raise NotImplementedError

    def note(self, state: dict, column: str) -> str | None:
        """Why a column is of this type when that is not obvious (printed after reading, stored in the run)."""
        return None

    # ---- the Open Inference Protocol (forgeml.serve.v2_tensors): each column travels as one tensor. The defaults fit
    # a type with one value per instance, sent as text (BYTES, shape [N] or [N, 1]).
    tensor_datatype: str = "BYTES"  # what the model metadata declares
    tensor_accepts: tuple[str, ...] = ("BYTES",)  # the datatypes a request may send

    def tensor_shape(self, field: dict) -> list[int]:
        """The declared shape of the column's tensor (-1: any size), from its request field (``field``)."""
        return [-1]

    def tensor_values(self, array, datatype: str, shape: list[int], column: str) -> list | None:
        """A request tensor (a flat numpy array of ``datatype``, of ``shape``) -> one value per instance, as a JSON
        instance holds it; a shape the type cannot take raises forgeml.errors.InputError naming the column. None (the
        default): one value per instance, shape [N] or [N, 1], read as such by forgeml.serve.v2_tensors."""
        return None

    # ---- explanations: forgeml.explain asks these, never the type's name. The defaults fit a type whose model input
    # holds one position per raw column; "regions" and "tokens" types implement the hooks marked so.
    explains_as: str = "columns"  # how attributions to its inputs are shown: "columns" (one per raw column, a table),
    #   "tokens" (one per token, when a model reads only such types), "regions" (a heat-map over its input)
    absent_description: str = ""  # "regions"/"tokens": in words, the input that means "nothing there" (IG's baseline)

    def explained_columns(self, state: dict) -> list[tuple[str, list[str]]]:
        """The names a table's attributions are reported under, each with the raw columns it stands for."""
        columns = state.get("columns") or ([state["column"]] if "column" in state else [])
        return [(c, [c]) for c in columns]

    def input_owners(self, state: dict) -> dict[str, list[str]]:
        """Model input key -> the explained name (from explained_columns) owning each position of its second axis;
        a single name owns the whole input (a sequence)."""
        names = [name for name, _ in self.explained_columns(state)]
        return {key: names for key in self.model_inputs(state)}

    def typical_values(self, state: dict) -> dict[str, Any]:
        """Raw column -> its value in the typical row, a table's "feature absent" reference (None: missing)."""
        return {c: None for _, columns in self.explained_columns(state) for c in columns}

    def switched_off(self, state: dict, key: str, centre, like):
        """What LIME puts into model input ``key`` (torch) where its columns are switched off, shaped like ``like``;
        draws use torch's RNG (the caller seeds it). Default: ``centre``, the typical row's encoding."""
        return centre.expand_as(like)

    def absent_input(self, state: dict) -> dict[str, Any]:
        """"regions": model input key -> an array (broadcast over the batch) that means "nothing there"."""
        raise NotImplementedError

    def displayable(self, state: dict, x) -> Any:
        """"regions": model inputs [N, C, H, W] -> pictures in [0, 1] that heat-maps are drawn over."""
        raise NotImplementedError

    def token_positions(self, state: dict, arrays: dict) -> Any:
        """"tokens": [N, L] True where a real token sits in model_inputs(state)[0] (the token ids; 0 is padding)."""
        raise NotImplementedError

    def token_strings(self, df, state: dict, arrays: dict) -> list[list[str | None]]:
        """"tokens": each row's token per position of its ids, as shown (None: a position not shown)."""
        raise NotImplementedError

    # ---- baseline, augmentation, SMOTE: what the run does with this type's inputs (declarations; None: nothing).
    # forgeml.evaluate.baseline, forgeml.data.augment and forgeml.data.balance ask these, never the type's name.
    baseline_block: str | None = None  # its block of the baseline's matrix: "dense" (model inputs flattened; a
    #   linear model), "tfidf" (TF-IDF of its joined raw columns, state["columns"]), "table" (the trees' matrix)
    augment: str | None = None  # what data.augment does to its model inputs: "pixels" (warp, jitter),
    #   "token_ids" (deletion, swaps), "continuous" (noise, mixup)
    smote: str | None = None  # how SMOTE treats its inputs: "continuous" (interpolated) or "nominal" (SMOTENC codes)

    def augment_inputs(self, state: dict) -> dict[str, str]:
        """Model input key -> its augmentation role (``augment`` on every input by default; a type whose inputs
        differ says so, e.g. text: "bracketed_token_ids" keep [CLS]/[SEP], a "token_mask" follows its ids)."""
        return {key: self.augment for key in self.model_inputs(state)} if self.augment else {}


class Learner:
    """A model family. Tags say what it supports (``torch``, ``prunable``, ``quantizable``, ``dp``, ``distillable``...)
    and which feature types it accepts (``accepts``)."""

    name: str
    tags: frozenset = frozenset()
    accepts: frozenset = frozenset()
    Params: type  # its parameters (a pydantic model with ``name: Literal[...]``): config's ``model:`` section
    # forgeml tune's default search space is declared beside them, as ``Params.search_space`` (a ClassVar: config key
    # -> {low, high, log} range or list of choices, e.g. {"model.num_leaves": {"low": 7, "high": 127, "log": True}});
    # a learner without one is tuned only with a space the config gives (tune.space)


class Engine:
    """How the loop trains when it does not train locally (forgeml.train.loop.fit(..., privacy=engine)): ``attach``
    wraps the optimizer once and says how many steps an epoch has, ``batches`` draws one epoch's row indices, and
    the state goes into each checkpoint so a resumed run continues it."""

    name: str
    tags: frozenset = frozenset()

    def check(self) -> None:
        """Refuse settings the engine cannot train with, before the run folder is written (default: none)."""

    def attach(self, model, optimizer, rows: int, batch_size: int, epochs: int) -> tuple[Any, int]:
        raise NotImplementedError

    def batches(self) -> Iterator:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
