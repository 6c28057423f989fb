"""Commands on a trained run (evaluate, predict, export, compress, explain, serve) and on data (profile, datasets)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from forgeml.cli import options as opt
from forgeml.cli.printing import compression_table, metric_table, print_export, stdout


def evaluate(
    run: opt.Run,
    data: Optional[str] = typer.Option(None, "--data", "-d", help="labelled data (default: the run's own test split)"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="also write the metrics as JSON here (-: stdout)"),
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
):
    """Score a trained run on labelled data and print the metrics. A CSV/TSV --data file is read as training read its
    data (the --sep/--encoding training was given, else sniffed) unless --sep/--encoding say otherwise."""
    from forgeml import api
    from forgeml.tasks import summary_keys

    m = api.evaluate(run, data, output, sep=sep, encoding=encoding)
    if m.get("warning"):
        typer.echo(f"warning: {m['warning']}", err=True)
    keys = [k for k in summary_keys(m["task"]) if m.get(k) is not None]
    stdout().print(metric_table(f"{m['data']} ({m['n']} rows)", [(Path(run).name, m)], keys))


def predict(
    run: opt.Run,
    inputs: Optional[str] = typer.Argument(None, help="csv/parquet/jsonl file or a folder of images (or --data)"),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="the same as INPUTS; forecasting: the history"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="csv/parquet/jsonl (- or none: CSV on stdout)"),
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
):
    """Predict with a trained run: one row per input with the prediction and class probabilities (forecasting: the
    next horizon points of each series in the history, with intervals). A CSV/TSV file is read as training read its
    data (the --sep/--encoding training was given, else sniffed) unless --sep/--encoding say otherwise."""
    from forgeml import api
    from forgeml.errors import ConfigError

    if (inputs is None) == (data is None):
        raise ConfigError("give the rows to predict once: forgeml predict RUN FILE (or --data FILE)")
    inputs = inputs or data

    result = api.predict(run, inputs, output, sep=sep, encoding=encoding)
    if output:
        typer.echo(f"wrote {len(result)} predictions to {'standard output' if str(output) == '-' else output}", err=True)
    else:
        result.to_csv(sys.stdout, index=False)


def export(
    run: opt.Run,
    format: str = typer.Option("onnx", "--format", "-f", help="onnx"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="where to write it (default RUN/model.onnx); a "
                                         "symlink is written through; files the model needs (a text vocabulary) go beside it"),
):
    """Export a trained run as ONNX that runs with onnxruntime alone; its inputs are documented in the manifest."""
    from forgeml import api
    from forgeml.artifacts import run_dir_of

    info = api.export(run, format, output)
    print_export(info, output or run_dir_of(run) / info["file"])


def compress(
    run: opt.Run,
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
    tune_distill: bool = typer.Option(False, "--tune-distill", help="choose the temperature and alpha on validation: "
                                      "a student per pair of T 1, 2, 4, 8 and alpha 0.5, 0.7, 0.9 (and the given ones)"),
    augment: int = typer.Option(0, help="text data: perturbed copies of each training text labelled by the teacher"),
    transfer: Optional[str] = typer.Option(None, help="a file of unlabelled in-domain rows (the teacher's input "
                                           "columns) that the teacher labels for the student"),
    threads: Optional[int] = typer.Option(None, help="threads for inference while measuring (default: all cores)"),
    quiet: opt.Quiet = False,
):
    """Make a trained model smaller and faster; writes every variant, compression.json, a plot and a report section."""
    from forgeml import api
    from forgeml.artifacts import run_dir_of
    from forgeml.errors import ConfigError

    try:
        ratios = [float(r) for r in prune.split(",")] if prune else []
    except ValueError:
        raise ConfigError(f"--prune takes a ratio or comma-separated ratios such as 0.5 or 0.25,0.5,0.75; got {prune!r}") from None
    result = api.compress(run, quiet=quiet, quantize=quantize, prune=ratios, distill=distill, student=student,
                          calibration=calibration, fine_tune_epochs=fine_tune_epochs, distill_epochs=distill_epochs,
                          temperature=temperature, alpha=alpha, augment=augment, transfer=transfer, threads=threads,
                          tune=tune_distill)
    stdout().print(compression_table(result))
    for warning in result.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    run_dir = run_dir_of(run)
    typer.echo(f"wrote {run_dir / 'compression.json'}, {run_dir / 'plots' / 'compression.png'} and the report section", err=True)


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


def profile(
    data: str = typer.Argument(..., help="csv/tsv/parquet/jsonl file or bundled:NAME"),
    target: opt.Target = None,
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML report (default <data stem>.profile.html)"),
    quiet: opt.Quiet = False,
):
    """Check a table before training: types, missing values, duplicates, outliers, class balance, leakage suspects
    (class balance, association and leakage checks need --target)."""
    from forgeml.profile.analyze import profile_source
    from forgeml.profile.report import default_report_path, print_summary, progress, write_report

    with progress(quiet) as step:
        result = profile_source(data, target, step=step, sep=sep, encoding=encoding)
        step("writing the HTML report")
        path = write_report(result, out or default_report_path(data))
    con = stdout()
    print_summary(result, con)
    con.print(f"report: {path}", highlight=False)


def explain(
    run: opt.Run,
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
    quiet: opt.Quiet = False,
):
    """Explain a trained model: heat-maps over images, highlighted text, column importance for tables."""
    from forgeml import api
    from forgeml.explain.summary import renderables

    result = api.explain(run, input, method, out, quiet=quiet, rows=rows, per_class=per_class, repeats=repeats,
                         steps=steps, samples=samples, explain_class=explain_class)
    con = stdout()
    for item in renderables(result):
        con.print(item)


def datasets():
    """List the bundled real data sets (use as --data bundled:NAME)."""
    from forgeml.data.bundled import BUNDLED

    for name, (desc, _) in sorted(BUNDLED.items()):
        typer.echo(f"bundled:{name:<14} {desc}")


def tasks():
    """List the task families, the models each can train (with their tags), the feature types and the engines."""
    from forgeml.core import ENGINES, FEATURES, LEARNERS, TASKS

    out = stdout()
    out.print("[bold]task families[/] (--task NAME; auto picks classification or regression from the target)")
    for name, family in TASKS.items():
        out.print(f"  {name:<15} tags: {', '.join(sorted(family.tags))}")
    out.print("[bold]models[/] (--model NAME)")
    for name, learner in LEARNERS.items():
        out.print(f"  {name:<17} inputs: {', '.join(sorted(learner.accepts)):<32} tags: {', '.join(sorted(learner.tags))}")
    out.print("[bold]feature types[/] (inferred per column; data.features.COLUMN: TYPE overrides)")
    for name, ftype in FEATURES.items():
        out.print(f"  {name:<15} tags: {', '.join(sorted(ftype.tags)) or '-'}")
    out.print("[bold]engines[/] (chosen by the config: train.privacy -> dp-sgd; forgeml train --nproc N -> train.parallel, ddp or fsdp)")
    for name, engine in ENGINES.items():
        out.print(f"  {name:<15} tags: {', '.join(sorted(engine.tags))}")
