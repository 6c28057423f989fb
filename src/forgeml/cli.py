"""Command line: parse, call forgeml.api, print. No logic lives here; heavy imports happen inside commands."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="forgeml: from raw data to a trained, evaluated, tracked model on the compute you have.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

QUIET = typer.Option(False, "--quiet", "-q", help="no progress bars or log lines")
TRACKING = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default sqlite:///runs/mlflow.db; 'none' disables)")
# options shared by train and cv
DATA = typer.Option(None, "--data", "-d", help="csv/parquet/jsonl file, image folder, or bundled:NAME")
TARGET = typer.Option(None, "--target", "-t", help="column to predict")
CONFIG = typer.Option(None, "--config", "-c", help="YAML config; flags override its values")
TASK = typer.Option(None, help="auto | classification | regression")
MODEL = typer.Option(None, "--model", "-m", help="auto | mlp | cnn | text | minilm | lightgbm")
EPOCHS = typer.Option(None, help="training epochs")
RUNS_DIR = typer.Option(None, help="folder of run folders (default runs)")
BALANCE = typer.Option(None, "--balance", help="class imbalance: none | class_weights | oversample | undersample | smote | focal")
THRESHOLD = typer.Option(None, "--threshold", help="binary tasks: tune the decision threshold on validation: f1 | recall "
                         "(data.balance.target_recall, default 0.8)")
GROUP_COL = typer.Option(None, "--group-col", help="rows sharing this column's value stay in one split (not a feature)")
TIME_COL = typer.Option(None, "--time-col", help="split by time: latest rows are the test split (not a feature)")
DEDUP = typer.Option(False, "--dedup", help="drop exact duplicate rows before splitting")
IMPUTE = typer.Option(None, "--impute", help="numeric gaps: mean | median | most_frequent | constant | drop")
MISSING_INDICATOR = typer.Option(False, "--missing-indicator", help="add a 0/1 <column>_missing input per numeric column with gaps")
SCALE = typer.Option(None, "--scale", help="numeric scaling: standard | minmax | robust | none")
OUTLIERS = typer.Option(None, "--outliers", help="numeric outliers beyond the 1%/99% training quantiles: none | clip | drop")


def _stdout():
    from rich.console import Console

    # piped or redirected output has no terminal width; don't squeeze tables to Rich's 80-column default
    return Console(width=None if sys.stdout.isatty() else 120)


def _metric_table(title: str, rows: list[tuple[str, dict]], keys: list[str]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model", no_wrap=True)
    for k in keys:
        table.add_column(k, justify="right")
    for name, m in rows:
        table.add_row(name, *("–" if m.get(k) is None else f"{m[k]:.4f}" for k in keys))
    return table


def _print_result(result) -> None:
    from forgeml.evaluate.metrics import SUMMARY_KEYS

    m = result.metrics
    task = result.manifest["task"]
    keys = [k for k in SUMMARY_KEYS[task] if m["test"].get(k) is not None]
    rows = [(f"{m['model']} (chosen)", m["test"]), (f"baseline: {m['baseline']['name']}", m["baseline"]["test"])]
    con = _stdout()
    con.print(_metric_table(f"test metrics ({m['test']['n']} rows)", rows, keys))
    con.print(f"run:    {result.run_dir}")
    con.print(f"report: {result.run_dir / 'report.html'}")
    uri = result.manifest["tracking"]["uri"]
    if uri:
        con.print(f"MLflow: mlflow ui --backend-store-uri {uri}")


@app.command()
def quickstart(
    runs_dir: str = typer.Option("runs", help="where run folders go"),
    tracking_uri: Optional[str] = TRACKING,
    quiet: bool = QUIET,
):
    """Train, evaluate and report a CNN on the bundled digits images, end to end."""
    from forgeml import api

    _print_result(api.quickstart(runs_dir=runs_dir, quiet=quiet, tracking_uri=tracking_uri))


@app.command()
def train(
    data: Optional[str] = DATA,
    target: Optional[str] = TARGET,
    config: Optional[Path] = CONFIG,
    task: Optional[str] = TASK,
    model: Optional[str] = MODEL,
    name: Optional[str] = typer.Option(None, "--name", "-n", help="run name: runs/<name>/"),
    epochs: Optional[int] = EPOCHS,
    batch_size: Optional[int] = typer.Option(None, help="batch size"),
    lr: Optional[float] = typer.Option(None, help="learning rate"),
    seed: Optional[int] = typer.Option(None, help="training seed"),
    precision: Optional[str] = typer.Option(None, help="auto | fp32 | bf16 | fp16"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    balance: Optional[str] = BALANCE,
    threshold: Optional[str] = THRESHOLD,
    group_col: Optional[str] = GROUP_COL,
    time_col: Optional[str] = TIME_COL,
    dedup: bool = DEDUP,
    impute: Optional[str] = IMPUTE,
    missing_indicator: bool = MISSING_INDICATOR,
    scale: Optional[str] = SCALE,
    outliers: Optional[str] = OUTLIERS,
    runs_dir: Optional[str] = RUNS_DIR,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run of the same name"),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="train with differential privacy (DP-SGD, Opacus): "
                                            "the privacy budget epsilon, e.g. 3 (smaller is more private)"),
    delta: Optional[float] = typer.Option(None, "--delta", help="DP delta (default min(1e-5, 0.1/training rows))"),
    max_grad_norm: Optional[float] = typer.Option(None, "--max-grad-norm", help="DP per-row gradient clipping norm (default 1.0)"),
    tracking_uri: Optional[str] = TRACKING,
    quiet: bool = QUIET,
):
    """Train a model on a data file; prints the config it chose, the test metrics and the report's path."""
    from forgeml import api
    from forgeml.config import merge
    from forgeml.errors import ConfigError

    base = _base_config(config, model)
    overrides = {
        "name": name or (None if base.get("name") else _default_name(data)),
        "task": task,
        "runs_dir": runs_dir,
        "data": _data_options(data, target, balance, threshold, group_col, time_col, dedup, impute, missing_indicator,
                              scale, outliers),
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "precision": precision, "device": device,
                  "privacy": {"epsilon": epsilon, "delta": delta, "max_grad_norm": max_grad_norm}},
        "tracking": {"uri": tracking_uri},
    }
    cfg_dict = merge(base, overrides)
    if (delta is not None or max_grad_norm is not None) and (cfg_dict.get("train", {}).get("privacy") or {}).get("epsilon") is None:
        raise ConfigError("--delta and --max-grad-norm set up differential privacy; give its budget with --epsilon E")
    if resume and not cfg_dict.get("name"):
        raise ConfigError("--resume needs the name of the run to continue: forgeml train --name NAME --resume")
    if resume and "data" not in base and data is None:
        cfg_dict.setdefault("data", {"source": "(from the run)"})
    if not cfg_dict.get("data", {}).get("source"):
        raise ConfigError("give the data with --data PATH (or data.source in --config)")
    _print_result(api.train(cfg_dict, resume=resume, overwrite=overwrite, quiet=quiet,
                            source=f"{config} + options" if config else "options"))


def _base_config(config: Optional[Path], model: Optional[str]) -> dict:
    """The --config file as a dict, with --model applied (another model: the file's model keys belong to the old one)."""
    from forgeml.config import load_config

    base = load_config(config) if config else {}
    if model and base.get("model", {}).get("name") != model:
        base = {**base, "model": {"name": model}}
    return base


def _data_options(data, target, balance, threshold, group_col, time_col, dedup, impute, missing_indicator, scale,
                  outliers) -> dict:
    """The data section from flags (None: not given, the config file's value stays)."""
    return {"source": data, "target": target,
            "balance": {"method": balance, "threshold": threshold},
            "split": {"group_col": group_col, "time_col": time_col},
            "clean": {"deduplicate": dedup or None, "scale": scale, "outliers": {"method": outliers},
                      "missing": {"numeric": impute, "indicator": missing_indicator or None}}}


def _default_name(data: Optional[str]) -> Optional[str]:
    if not data:
        return None
    import re

    stem = Path(data.split(":", 1)[1] if data.startswith("bundled:") else data.rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "run"


@app.command()
def evaluate(
    run: str = typer.Argument(..., help="run folder, e.g. runs/quickstart"),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="labelled data (default: the run's own test split)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="also write the metrics as JSON here"),
):
    """Score a trained run on labelled data and print the metrics."""
    from forgeml import api
    from forgeml.evaluate.metrics import SUMMARY_KEYS

    m = api.evaluate(run, data, output)
    task = "classification" if "accuracy" in m else "regression"
    keys = [k for k in SUMMARY_KEYS[task] if m.get(k) is not None]
    _stdout().print(_metric_table(f"{m['data']} ({m['n']} rows)", [(Path(run).name, m)], keys))


@app.command()
def predict(
    run: str = typer.Argument(..., help="run folder, e.g. runs/quickstart"),
    inputs: str = typer.Argument(..., help="csv/parquet/jsonl file or a folder of images"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="csv/parquet/jsonl; default: CSV on stdout"),
):
    """Predict with a trained run: one row per input with the prediction and class probabilities."""
    from forgeml import api

    result = api.predict(run, inputs, output)
    if output:
        typer.echo(f"wrote {len(result)} predictions to {output}", err=True)
    else:
        result.to_csv(sys.stdout, index=False)


@app.command()
def export(
    run: str = typer.Argument(..., help="run folder, e.g. runs/quickstart"),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="where to write it (default RUN/model.onnx)"),
):
    """Export a trained run as ONNX that runs with onnxruntime alone; its inputs are documented in the manifest."""
    from forgeml import api

    from forgeml.artifacts import run_dir_of

    info = api.export(run, format, output)
    con = _stdout()
    path = output or run_dir_of(run) / info["file"]
    opsets = ", ".join(f"{domain} {version}" for domain, version in info["opset"].items())
    con.print(f"wrote {path} ({info['size_bytes'] / 1e6:.2f} MB; opsets {opsets}); runs with onnxruntime alone")
    shape = lambda s: "[" + ", ".join(map(str, s["shape"])) + "]"  # noqa: E731
    for spec in info["inputs"]:
        con.print(f"  input  {spec['name']} {spec['dtype']} {shape(spec)}: {', '.join(spec['columns'])}", highlight=False, markup=False)
        con.print(f"         {spec['how']}", highlight=False, markup=False, style="dim")
    for spec in info["outputs"]:
        labels = f": {', '.join(map(str, spec['labels']))}" if spec.get("labels") else ""
        con.print(f"  output {spec['name']} {spec['dtype']} {shape(spec)}{labels}", highlight=False, markup=False)
    if "parity" in info:
        p = info["parity"]
        con.print(f"parity with the trained model on {p['rows']} test rows: max |difference| = {p['max_abs_diff']:.2e}")
    else:
        con.print("parity not checked: the run's data could not be read again (it moved or changed)")


@app.command()
def compress(
    run: str = typer.Argument(..., help="run folder, e.g. runs/quickstart"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: ONNX Runtime static (QDQ) and/or dynamic quantization"),
    prune: Optional[str] = typer.Option(None, "--prune", help="ratio of channels/neurons to remove, e.g. 0.5; "
                                        "several (0.25,0.5,0.75) sweep"),
    distill: bool = typer.Option(False, "--distill", help="train a smaller student on the model's soft targets"),
    student: Optional[str] = typer.Option(None, "--student", help="student for --distill: text, mlp or cnn, with options "
                                          "as NAME:key=value,... (e.g. text:embeddings=minilm,hidden=128)"),
    calibration: Optional[int] = typer.Option(None, help="training rows used to calibrate static int8 ranges "
                                              "(default 256, or the whole split if smaller)"),
    fine_tune_epochs: int = typer.Option(5, help="recovery epochs after pruning"),
    distill_epochs: Optional[int] = typer.Option(None, help="student epochs (default: the run's train.epochs)"),
    temperature: float = typer.Option(4.0, help="distillation temperature T"),
    alpha: float = typer.Option(0.7, help="weight of the soft (teacher) loss; 1 - alpha goes to the hard labels"),
    augment: int = typer.Option(0, help="text data: perturbed copies of each training text labelled by the teacher"),
    threads: Optional[int] = typer.Option(None, help="threads for inference while measuring (default: all cores)"),
    quiet: bool = QUIET,
):
    """Make a trained model smaller and faster; writes every variant, compression.json, a plot and a report section."""
    from forgeml import api
    from forgeml.errors import ConfigError

    try:
        ratios = [float(r) for r in prune.split(",")] if prune else []
    except ValueError:
        raise ConfigError(f"--prune takes a ratio or comma-separated ratios such as 0.5 or 0.25,0.5,0.75; got {prune!r}") from None
    result = api.compress(run, quiet=quiet, quantize=quantize, prune=ratios, distill=distill, student=student,
                          calibration=calibration, fine_tune_epochs=fine_tune_epochs, distill_epochs=distill_epochs,
                          temperature=temperature, alpha=alpha, augment=augment, threads=threads)
    _stdout().print(_compression_table(result))
    from forgeml.artifacts import run_dir_of

    run_dir = run_dir_of(run)
    typer.echo(f"wrote {run_dir / 'compression.json'}, {run_dir / 'plots' / 'compression.png'} and the report section", err=True)


def _compression_table(result: dict):
    from rich.table import Table

    metric = "test_" + result["metric"]
    base = next(v for v in result["variants"] if v["variant"] == "fp32")
    table = Table(title=f"compression of {result['run']} ({result['test_rows']} test rows, {result['threads']} threads)")
    for col in ("variant", "size MB", "smaller", result["metric"], "p50 ms", "p95 ms", "faster", "rows/s @64"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in result["variants"]:
        table.add_row(v["variant"], f"{v['size_bytes'] / 1e6:.3f}", f"{base['size_bytes'] / v['size_bytes']:.2f}x",
                      f"{v[metric]:.4f}", f"{v['latency_ms_p50']:.3f}", f"{v['latency_ms_p95']:.3f}",
                      f"{base['latency_ms_p50'] / v['latency_ms_p50']:.2f}x", f"{v['throughput_per_s']:.0f}")
    return table


@app.command()
def serve(
    runs: List[str] = typer.Argument(..., help="runs to serve: RUN, NAME=RUN or NAME:VERSION=RUN (several versions of a name)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 for all interfaces)"),
    port: int = typer.Option(8000, help="port"),
    workers: int = typer.Option(1, help="server processes (each loads every model)"),
    max_batch: int = typer.Option(64, help="most rows per ONNX Runtime call when batching concurrent requests"),
    max_wait_ms: float = typer.Option(5.0, help="longest wait for more requests to join a batch"),
    precision: str = typer.Option("auto", help="auto (int8 when forgeml compress made one) | fp32 | int8"),
    default: Optional[List[str]] = typer.Option(None, "--default", help="NAME:VERSION served at /v1/models/NAME/predict"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="require this key (X-API-Key or Bearer); "
                                          "default: $FORGEML_API_KEY if set"),
    max_body_mb: float = typer.Option(8.0, help="largest request body (413 above)"),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime threads per model (default: all cores)"),
    ray: bool = typer.Option(False, "--ray", help="deploy on Ray Serve (extra [cluster])"),
    replicas: int = typer.Option(1, help="Ray Serve replicas (with --ray)"),
):
    """Serve runs over HTTP: predict, models, health, Prometheus metrics, OpenAPI docs and a web page."""
    from forgeml.errors import ConfigError
    from forgeml.serve.run import serve as run_server

    if ray and workers != 1:
        raise ConfigError("--workers is for uvicorn processes; with --ray use --replicas")
    if replicas != 1 and not ray:
        raise ConfigError("--replicas needs --ray (use --workers N for several processes without Ray)")

    run_server(runs, host=host, port=port, workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
               precision=precision, default=default, api_key=api_key, max_body_mb=max_body_mb, threads=threads,
               ray=ray, replicas=replicas)


@app.command()
def profile(
    data: str = typer.Argument(..., help="csv/tsv/parquet/jsonl file or bundled:NAME"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="column to predict: adds class balance, association and leakage checks"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML report (default <data stem>.profile.html)"),
    quiet: bool = QUIET,
):
    """Check a table before training: types, missing values, duplicates, outliers, class balance, leakage suspects."""
    from forgeml.data.profile import profile_source
    from forgeml.evaluate.profile_report import default_report_path, print_summary, progress, write_report

    with progress(quiet) as step:
        result = profile_source(data, target, step=step)
        step("writing the HTML report")
        path = write_report(result, out or default_report_path(data))
    con = _stdout()
    print_summary(result, con)
    con.print(f"report: {path}", highlight=False)


@app.command()
def cv(
    data: Optional[str] = DATA,
    target: Optional[str] = TARGET,
    folds: int = typer.Option(5, "--folds", "-k", help="number of folds (each is the test split once)"),
    config: Optional[Path] = CONFIG,
    task: Optional[str] = TASK,
    model: Optional[str] = MODEL,
    name: Optional[str] = typer.Option(None, "--name", "-n", help="runs/<name>/ holds fold-1 ... fold-K (default <data>-cv)"),
    epochs: Optional[int] = EPOCHS,
    balance: Optional[str] = BALANCE,
    threshold: Optional[str] = THRESHOLD,
    group_col: Optional[str] = GROUP_COL,
    time_col: Optional[str] = TIME_COL,
    dedup: bool = DEDUP,
    impute: Optional[str] = IMPUTE,
    missing_indicator: bool = MISSING_INDICATOR,
    scale: Optional[str] = SCALE,
    outliers: Optional[str] = OUTLIERS,
    runs_dir: Optional[str] = RUNS_DIR,
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier cross-validation of the same name"),
    tracking_uri: Optional[str] = TRACKING,
    quiet: bool = QUIET,
):
    """K-fold cross-validation: trains one run per fold and reports each metric's mean and standard deviation
    (stratified folds for classification; group folds with --group-col; expanding time folds with --time-col)."""
    from forgeml import api
    from forgeml.config import merge
    from forgeml.errors import ConfigError

    base = _base_config(config, model)
    default = _default_name(data)
    cfg_dict = merge(base, {
        "name": name or (None if base.get("name") else default and f"{default}-cv"),
        "task": task, "runs_dir": runs_dir, "train": {"epochs": epochs}, "tracking": {"uri": tracking_uri},
        "data": _data_options(data, target, balance, threshold, group_col, time_col, dedup, impute, missing_indicator,
                              scale, outliers),
    })
    if not cfg_dict.get("data", {}).get("source"):
        raise ConfigError("give the data with --data PATH (or data.source in --config)")
    result = api.cross_validate(cfg_dict, folds=folds, overwrite=overwrite, quiet=quiet,
                                source=f"{config} + options" if config else "options")
    _stdout().print(_cv_table(result))
    cv_dir = Path(result["per_fold"][0]["run"]).parent
    _stdout().print(f"folds:  {cv_dir}/fold-1 ... fold-{result['folds']}\nsummary: {cv_dir / 'cv.json'}, plot: {cv_dir / 'cv.png'}")


def _cv_table(result: dict):
    from rich.table import Table

    keys = result["metric_keys"]
    table = Table(title=f"{result['folds']}-fold cross-validation (test split of each fold)")
    table.add_column("fold", no_wrap=True)
    for k in keys:
        table.add_column(k, justify="right")
    for f in result["per_fold"]:
        table.add_row(f"{f['fold']} ({f['model']}, {f['rows']['test']} rows)", *(f"{f['test'][k]:.4f}" for k in keys))
    table.add_section()
    base = result["baseline"]
    for label, summary in (("model", result["model"]), (f"baseline ({base['name']})", base)):
        table.add_row(f"{label}: mean", *(f"{summary[k]['mean']:.4f}" for k in keys))
        table.add_row(f"{label}: std", *(f"{summary[k]['std']:.4f}" for k in keys), style="dim")
    return table


@app.command()
def explain(
    run: str = typer.Argument(..., help="run folder, e.g. runs/quickstart"),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="csv/parquet/jsonl file, image or folder of images, "
                                        "or one JSON row such as '{\"age\": 40, ...}' (default: the run's test split)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the files (default RUN/explanations)"),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="gradcam | ig | lime | permutation "
                                         "(default: what fits the run)"),
    rows: int = typer.Option(6, help="tables/text without --input: rows explained one by one"),
    per_class: int = typer.Option(3, help="images without --input: test examples per class in the grid"),
    repeats: int = typer.Option(5, help="permutation importance: shuffles per column"),
    steps: int = typer.Option(50, help="Integrated Gradients: integration steps"),
    samples: Optional[int] = typer.Option(None, help="LIME: perturbed samples per instance"),
    explain_class: Optional[str] = typer.Option(None, "--class", help="explain this class's probability (default: the predicted class)"),
    quiet: bool = QUIET,
):
    """Explain a trained model: heat-maps over images, highlighted text, column importance for tables."""
    from forgeml import api
    from forgeml.explain.summary import renderables

    result = api.explain(run, input, method, out, quiet=quiet, rows=rows, per_class=per_class, repeats=repeats,
                         steps=steps, samples=samples, explain_class=explain_class)
    con = _stdout()
    for item in renderables(result):
        con.print(item)


@app.command()
def federate(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="csv/parquet/jsonl file, image folder, or bundled:NAME"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="column to predict"),
    clients: int = typer.Option(5, "--clients", help="simulated clients the training split is divided among"),
    rounds: int = typer.Option(10, "--rounds", help="federated rounds (server sends weights, clients train, server averages)"),
    partition: str = typer.Option("iid", "--partition", help="iid (balanced) | dirichlet (label skew set by --alpha)"),
    alpha: float = typer.Option(0.5, "--alpha", help="Dirichlet concentration: 0.1 very skewed, 100 nearly IID"),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg | fedprox"),
    mu: float = typer.Option(0.1, "--mu", help="FedProx proximal weight: adds mu/2 * ||w - w_global||^2 to each client's loss"),
    local_epochs: int = typer.Option(1, "--local-epochs", help="passes over its own rows each client makes per round"),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="DP-SGD on every client: the privacy budget each "
                                            "client may spend over all rounds (train.privacy.epsilon)"),
    delta: Optional[float] = typer.Option(None, "--delta", help="DP delta (default min(1e-5, 0.1/training rows))"),
    max_grad_norm: Optional[float] = typer.Option(None, "--max-grad-norm", help="DP per-row gradient clipping norm (default 1.0)"),
    engine: str = typer.Option("local", "--engine", help="local: clients run in this process, one after another | "
                               "simulation: Flower's Ray-based Simulation Engine (needs ray)"),
    central: bool = typer.Option(True, "--central/--no-central", help="also train the model centrally with the same "
                                 "budget (rounds x local epochs) for the comparison"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (data, model, train); flags override it"),
    task: Optional[str] = typer.Option(None, help="auto | classification | regression"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="auto | mlp | cnn | text | minilm (not lightgbm)"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="run name: runs/<name>/ (default <data>-federated)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size on each client"),
    lr: Optional[float] = typer.Option(None, help="learning rate on each client"),
    seed: Optional[int] = typer.Option(None, help="training seed"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    runs_dir: Optional[str] = typer.Option(None, help="folder of run folders (default runs)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run of the same name"),
    tracking_uri: Optional[str] = TRACKING,
    quiet: bool = QUIET,
):
    """Federated learning with Flower: split the training data across simulated clients, train, compare with central."""
    from forgeml import api
    from forgeml.config import merge
    from forgeml.errors import ConfigError

    base = _base_config(config, model)
    default = _default_name(data)
    overrides = {
        "name": name or (None if base.get("name") else (f"{default}-federated" if default else None)),
        "task": task,
        "runs_dir": runs_dir,
        "data": {"source": data, "target": target},
        "train": {"batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
                  "privacy": {"epsilon": epsilon, "delta": delta, "max_grad_norm": max_grad_norm}},
        "tracking": {"uri": tracking_uri},
    }
    cfg_dict = merge(base, overrides)
    if (delta is not None or max_grad_norm is not None) and (cfg_dict.get("train", {}).get("privacy") or {}).get("epsilon") is None:
        raise ConfigError("--delta and --max-grad-norm set up DP-SGD on every client; give its budget with --epsilon E")
    if not cfg_dict.get("data", {}).get("source"):
        raise ConfigError("give the data with --data PATH (or data.source in --config)")
    result = api.federate(cfg_dict, overwrite=overwrite, quiet=quiet, source=f"{config} + options" if config else "options",
                          clients=clients, rounds=rounds, partition=partition, alpha=alpha, strategy=strategy, mu=mu,
                          local_epochs=local_epochs, engine=engine, central=central)
    _print_federated(result)


def _print_federated(result) -> None:
    from forgeml.evaluate.metrics import SUMMARY_KEYS

    m = result.metrics
    fed = m["federated"]
    keys = [k for k in SUMMARY_KEYS[result.manifest["task"]] if m["test"].get(k) is not None]
    rows = [(f"{fed['model']} federated ({fed['options']['strategy']})", m["test"])]
    if fed.get("central"):
        rows.append((f"{fed['model']} centralized", fed["central"]["test"]))
    rows.append((f"baseline: {m['baseline']['name']}", m["baseline"]["test"]))
    con = _stdout()
    con.print(_metric_table(f"test metrics ({m['test']['n']} rows)", rows, keys))
    con.print(f"run:    {result.run_dir}")
    con.print(f"report: {result.run_dir / 'report.html'}")
    con.print(f"plot:   {result.run_dir / 'plots' / 'federated_rounds.png'}")


@app.command("datasets")
def datasets():
    """List the bundled real data sets (use as --data bundled:NAME)."""
    from forgeml.data.bundled import BUNDLED

    for name, (desc, _) in sorted(BUNDLED.items()):
        typer.echo(f"bundled:{name:<14} {desc}")


def main(argv: Optional[List[str]] = None) -> None:
    """Typer handles usage errors itself (exit 2 with usage); forgeml's own errors become one line + exit 2."""
    from forgeml.errors import ForgeMLError

    try:
        app(args=argv, prog_name="forgeml")
    except ForgeMLError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
