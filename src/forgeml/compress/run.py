"""`forgeml compress RUN`: make the run's model smaller and faster, and measure what each variant costs.

Every variant is written into the run (``model.<variant>.onnx``; torch weights as safetensors where the variant is a
new network) and measured the same way on the run's own test split: size on disk, the task's test metric, batch-1
latency (p50/p95) and batch-64 throughput. ``compression.json`` holds the table, ``plots/compression.png`` the
trade-off, and the report gains a "Compression" section.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np
import torch

from forgeml import artifacts
from forgeml.core import better
from forgeml.compress.measure import speed
from forgeml.errors import ConfigError, DataError

COMPRESSION = "compression.json"


@dataclass
class CompressOptions:
    quantize: Optional[str] = None  # "int8"
    prune: list[float] = field(default_factory=list)  # one ratio, or several for a sweep
    distill: bool = False
    student: Optional[str] = None
    calibration: Optional[int] = None  # training rows for static-quantization ranges (default: 256, or all if fewer)
    fine_tune_epochs: int = 5
    distill_epochs: Optional[int] = None
    temperature: float = 4.0
    alpha: float = 0.7
    augment: int = 0  # perturbed copies of each training text, labelled by the teacher (distillation transfer set)
    transfer: Optional[str] = None  # a file of unlabelled in-domain rows, labelled by the teacher (transfer set)
    tune: bool = False  # choose the temperature and alpha on validation (forgeml.compress.distill.search_grid)
    threads: Optional[int] = None  # onnxruntime/torch threads while measuring (default: the library's own)

    def check(self) -> None:
        if not (self.quantize or self.prune or self.distill):
            raise ConfigError("nothing to do: give --quantize int8, --prune RATIO and/or --distill --student MODEL")
        if self.quantize not in (None, "int8"):
            raise ConfigError(f"unknown --quantize {self.quantize!r}; forgeml quantizes to int8")
        for r in self.prune:
            if not 0 < r < 1:
                raise ConfigError(f"--prune ratio must be strictly between 0 and 1 (0.5 removes half the channels), got {r}")
        if self.calibration is not None and self.calibration < 1:
            raise ConfigError(f"--calibration must be at least 1 row, got {self.calibration}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be > 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"--alpha (the weight of the teacher's soft targets) must be in [0, 1], got {self.alpha}")
        if self.distill_epochs is not None and self.distill_epochs < 1:
            raise ConfigError(f"--distill-epochs must be at least 1, got {self.distill_epochs}")
        if not self.distill and (self.student or self.augment or self.transfer or self.tune):
            raise ConfigError("--student, --augment, --transfer and --tune-distill belong to --distill; add --distill")
        if self.augment < 0:
            raise ConfigError(f"--augment must be >= 0 copies, got {self.augment}")
        if self.fine_tune_epochs < 1:
            raise ConfigError(f"--fine-tune-epochs must be at least 1, got {self.fine_tune_epochs}")


def _metric_name(task) -> str:
    return "accuracy" if "labels" in task.tags else task.primary_metric


def weak_teacher(variants: list[dict], task) -> str | None:
    """A warning when the teacher scores no better on test than the same student trained on the labels alone: a
    student learns from a teacher only what the teacher knows beyond the labels (docs/compression.md, tweets)."""
    by_name = {v["variant"]: v for v in variants}
    metric = "test_" + _metric_name(task)
    teacher, alone = by_name.get("fp32", {}).get(metric), by_name.get("labels-only", {}).get(metric)
    if teacher is None or alone is None or better(metric, teacher, alone):
        return None
    return (f"the teacher ({_metric_name(task)} {teacher:.4f} on test) is no better than the student trained on the "
            f"labels alone ({alone:.4f}): a student learns from its teacher only what the teacher knows beyond the "
            "labels. Train a stronger teacher first, or keep the labels-only student (model.labels_only.onnx), which "
            "is the same size.")


def text_columns(features) -> list[str]:
    """The columns --augment perturbs: those of a type with word sequences (text)."""
    from forgeml.features import tagged

    sequences = set(tagged("sequence"))
    return [f.name for f in features if f.type in sequences]


def compress(run, options: CompressOptions, say: Callable[[str], None] = lambda m: None, quiet: bool = True) -> dict:
    from forgeml.run import load, run_config, summary
    from forgeml.tasks.supervised import split_data
    from forgeml.compress import quantize as quant
    from forgeml.export import onnx as ox

    options.check()
    model = load(run)
    model.require_target("forgeml compress")
    run_dir, manifest, task = model.run_dir, model.manifest, model.task
    name, kind = manifest["model"]["name"], manifest["model"]["kind"]
    # fail before any work on requests the model cannot honour
    if manifest.get("privacy") and (options.prune or options.distill):
        raise ConfigError("this run was trained with differential privacy; --prune and --distill train again on its "
                          "training rows without it, which would void the guarantee (--quantize int8 does not train)")
    q_methods = quant.methods_for(name) if options.quantize else ()
    if options.prune:
        from forgeml.compress.prune import prunable

        if name not in prunable():
            raise ConfigError(f"pruning removes channels/neurons of {', '.join(prunable())} models; this run's model is {name!r}"
                              + (" (use --quantize int8 or --distill instead)" if quant.quantizable(name) else " (use --distill instead)"))
    if options.distill and not options.student:
        raise ConfigError("--distill needs --student MODEL (e.g. text, mlp or cnn)")
    cfg = run_config(run_dir)
    if options.threads:
        torch.set_num_threads(options.threads)
    try:
        splits = split_data(cfg)
    except DataError as exc:
        raise DataError(f"compress needs the run's training data again ({cfg.data.source}): {exc}") from None
    if options.distill:
        from forgeml.compress.distill import student_params

        student = student_params(options.student, task, splits.features)
        if options.augment and not text_columns(splits.features):
            raise ConfigError("--augment makes perturbed copies of text features; this data has none")
        if options.transfer:
            from forgeml.compress.transfer import check_student_reads, read_transfer

            unlabelled = read_transfer(model, options.transfer, splits.features)
            check_student_reads(unlabelled, splits, student, cfg.data, options.transfer)
    expected = manifest.get("data", {}).get("rows")
    actual = {s: len(rows) for s, rows in splits.raw.items()}
    if expected and expected != actual:
        raise DataError(f"the data at {cfg.data.source} changed since training (split sizes {actual}, trained on {expected}); "
                        "compress needs the data the run was trained on")
    if q_methods and "static" in q_methods and (options.calibration or 0) > len(splits.raw["train"]):
        raise ConfigError(f"--calibration {options.calibration} is larger than the training split "
                          f"({len(splits.raw['train'])} rows); use at most that many")
    n_calibration = options.calibration or min(256, len(splits.raw["train"]))

    enc = {s: model.preprocessor.transform(rows) for s, rows in splits.raw.items()}
    y_test = splits.y["test"]
    test_feed = ox.feeds(splits.raw["test"], model.preprocessor)
    variants: list[dict] = []

    def score(outputs: dict) -> dict:
        m = task.metrics(y_test, outputs)
        return {"test_" + _metric_name(task): m[_metric_name(task)], "test_metrics": summary(task.name, m)}

    def measure_onnx(variant: str, path: Path, extra: dict, feed=test_feed) -> dict:
        sess = ox.session(path, options.threads)
        say(f"  measuring {variant} ...")
        entry = {"variant": variant, "file": path.name, "runtime": "onnxruntime", "size_bytes": path.stat().st_size,
                 **score(ox.outputs_of(sess, feed, task)), **speed(lambda f: sess.run(None, f), feed), **extra}
        variants.append(entry)
        return entry

    # ---- the model as trained (torch eager / LightGBM native) and its ONNX export
    say(f"[bold]compress[/] {run_dir} ({name}, {len(splits.raw['test'])} test rows)")
    weights = run_dir / manifest["model"]["file"]
    native = _native_runner(model, kind)
    variants.append({"variant": "fp32", "file": weights.name, "runtime": "torch" if kind == "torch" else "lightgbm",
                     "size_bytes": weights.stat().st_size, **score(task.outputs(model.raw(splits.raw["test"]))),
                     **speed(native, enc["test"]),
                     **({"params": sum(p.numel() for p in model.estimator.parameters())} if kind == "torch" else {})})
    onnx_path = run_dir / "model.onnx"
    export_info = ox.export_run(model, onnx_path, splits.raw["test"].iloc[:256])
    measure_onnx("onnx-fp32", onnx_path, {"parity_max_abs_diff": export_info["parity"]["max_abs_diff"]})
    manifest.setdefault("export", {})["onnx"] = export_info
    manifest_variants = manifest.setdefault("variants", {})

    # ---- int8
    for i, method in enumerate(q_methods):
        variant = "int8" if i == 0 else f"int8-{method}"
        path = run_dir / f"model.{variant}.onnx"
        tic = time.perf_counter()
        calibration = None
        if method == "static":
            rows = np.random.default_rng(0).permutation(len(splits.raw["train"]))[:n_calibration]
            calibration = ox.feeds(splits.raw["train"].iloc[np.sort(rows)], model.preprocessor)
        say(f"  quantizing ({method}{f', {n_calibration} calibration rows' if calibration else ''}) ...")
        quant.quantize(onnx_path, path, method, calibration)
        measure_onnx(variant, path, {"method": method, "seconds": round(time.perf_counter() - tic, 2)})
        manifest_variants[variant] = {"file": path.name, "kind": "onnx", "method": f"int8 {method}"}

    # ---- structured pruning (+ fine-tune), one variant per ratio
    for ratio in options.prune:
        manifest_variants.update(_prune_variant(model, ratio, enc, splits, cfg, options, measure_onnx, say, quiet))

    # ---- distillation into a smaller student
    if options.distill:
        manifest_variants.update(_distill_variant(model, student, enc, splits, cfg, options, measure_onnx, say, quiet,
                                                  unlabelled if options.transfer else None))

    result = {"run": run_dir.name, "model": name, "task": task.name, "metric": _metric_name(task),
              "test_rows": len(splits.raw["test"]), "threads": torch.get_num_threads(), "variants": variants,
              "warnings": [w for w in [weak_teacher(variants, task)] if w],
              "versions": artifacts.library_versions()}
    _write(run_dir, result, manifest)
    return result


def _native_runner(model, kind: str):
    if kind != "torch":  # a learner with its own runtime (LightGBM)
        return lambda arrays: model.learner.raw(model.estimator, arrays, model.task)
    net = model.estimator.eval()

    @torch.no_grad()
    def run(arrays):
        return net({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})

    return run


def _prune_variant(model, ratio, enc, splits, cfg, options, measure_onnx, say, quiet) -> dict:
    from forgeml.models import raw_outputs
    from forgeml.compress import prune as pr
    from forgeml.config import params_class
    from forgeml.export import onnx as ox
    from forgeml.progress import TrainProgress

    m = model.manifest["model"]
    variant = f"pruned-{ratio:g}"
    tic = time.perf_counter()
    example = {k: torch.from_numpy(np.ascontiguousarray(v[:4])) for k, v in enc["train"].items()}
    say(f"  pruning {ratio:.0%} of channels/neurons, then fine-tuning {options.fine_tune_epochs} epochs ...")
    pruned = pr.prune(model.estimator, m["name"], ratio, example)
    data = SimpleNamespace(enc=enc, y=splits.y)
    before = model.task.metrics(splits.y["test"], model.task.outputs(raw_outputs(pruned, m["name"], enc["test"], model.task)))[_metric_name(model.task)]
    pr.fine_tune(pruned, model.task, data, cfg.train, options.fine_tune_epochs, lr_scale=0.5,
                 progress=TrainProgress(variant, quiet))
    pruned = pruned.cpu().eval()  # fine-tuning may have run on a GPU; export and measure on the CPU
    path = model.run_dir / f"model.{variant}.onnx"
    ox.save(ox.build(pruned, "torch", model.task, model.manifest["preprocessing"], m["input_shapes"]), path)
    params = pr.pruned_params(m["name"], params_class(m["name"]).model_validate(m["params"]), pruned)
    weights = model.run_dir / f"model.{variant}.safetensors"
    artifacts.save_tensors(weights, pruned.state_dict(), metadata={"model": m["name"], "variant": variant})
    n_params = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    measure_onnx(variant, path, {"ratio": ratio, "params": n_params(pruned), "params_before": n_params(model.estimator),
                                 f"test_{_metric_name(model.task)}_before_fine_tune": before,
                                 "fine_tune_epochs": options.fine_tune_epochs, "seconds": round(time.perf_counter() - tic, 2)})
    return {variant: {"file": path.name, "kind": "onnx", "weights": weights.name, "model": m["name"],
                      "params": params.model_dump(mode="json") if params is not None else None}}


def _distill_variant(model, student_params, enc, splits, cfg, options, measure_onnx, say, quiet, unlabelled=None) -> dict:
    from forgeml.models import raw_outputs
    from forgeml.compress.distill import distill
    from forgeml.compress.transfer import transfer_rows
    from forgeml.export import onnx as ox
    from forgeml.progress import TrainProgress

    say(f"  teacher ({model.model_name}) outputs on {len(splits.raw['train'])} training rows ...")
    teacher = raw_outputs(model.estimator, model.model_name, enc["train"], model.task)
    transfer = transfer_rows(model, splits, options.augment, unlabelled, cfg.train.seed, say)

    def trained(variant: str, temperature: float, alpha: float):
        say(f"  distilling into a {student_params.name} student (T={temperature:g}, alpha={alpha:g}) ...")
        return distill(teacher, splits, student_params, cfg.data, cfg.train, temperature, alpha,
                       options.distill_epochs, progress=TrainProgress(variant, quiet), transfer=transfer)

    def student(variant: str, temperature: float, alpha: float, file: str, result=None, searched=None):
        """A student trained with this temperature and alpha (or ``result``, one already trained), exported, saved
        and measured: (its result, the measured entry)."""
        tic = time.perf_counter()
        result = result or trained(variant, temperature, alpha)
        net, pre = result.model.cpu().eval(), result.preprocessor
        kept = getattr(result.params, "kept_vocabulary", None)
        if kept:
            say(f"  the student's embedding table keeps {kept:,} rows: the token ids of its transfer set (others read [UNK])")
        path = model.run_dir / f"model.{file}.onnx"
        ox.save(ox.build(net, "torch", model.task, pre.state, pre.input_shapes()), path)
        artifacts.save_tensors(model.run_dir / f"model.{file}.safetensors", net.state_dict(),
                               metadata={"model": result.student, "variant": variant})
        entry = measure_onnx(variant, path, {"student": result.student, "params": sum(p.numel() for p in net.parameters()),
                                             "temperature": temperature, "alpha": alpha, "searched": searched,
                                             "transfer_rows": result.rows,
                                             "epochs_run": len(result.fit.history), "kept_vocabulary": kept,
                                             "seconds": round(time.perf_counter() - tic, 2)},
                             feed=ox.feeds(splits.raw["test"], pre))
        return result, entry

    if options.tune:  # every (T, alpha) of the grid trains a student; the best on validation is the distilled one
        from forgeml.compress.distill import search_grid, validation_score

        tried = []
        for t, a in search_grid(options.temperature, options.alpha):
            got = trained(f"T={t:g} alpha={a:g}", t, a)
            tried.append(({"temperature": t, "alpha": a, **validation_score(got, model.task)}, got))
            say(f"    validation {tried[-1][0]['metric']} {tried[-1][0]['score']:.4f}")
        best, best_result = max(tried, key=lambda r: r[0]["score"] if r[0]["higher_is_better"] else -r[0]["score"])
        say(f"  chosen on validation: T={best['temperature']:g}, alpha={best['alpha']:g} ({best['metric']} {best['score']:.4f})")
        result, distilled = student("distilled", best["temperature"], best["alpha"], "distilled", best_result,
                                    [r for r, _ in tried])
    else:
        result, distilled = student("distilled", options.temperature, options.alpha, "distilled")
    pre, path, weights = result.preprocessor, model.run_dir / "model.distilled.onnx", model.run_dir / "model.distilled.safetensors"
    if options.alpha > 0 or options.tune:  # the ablation: the same student on the labels alone shows what the teacher added
        _, alone = student("labels-only", options.temperature, 0.0, "labels_only")
        metric = "test_" + _metric_name(model.task)
        if distilled.get(metric) is not None and alone.get(metric) is not None:
            say(f"  the teacher's targets added {distilled[metric] - alone[metric]:+.4f} test {_metric_name(model.task)} "
                f"to the student ({distilled[metric]:.4f} distilled vs {alone[metric]:.4f} on the labels alone)")
    return {"distilled": {"file": path.name, "kind": "onnx", "weights": weights.name, "model": result.student,
                          "params": result.params.model_dump(mode="json"), "preprocessing": pre.state,
                          "input_shapes": pre.input_shapes(), "inputs": ox.input_spec(pre.state)}}


def _write(run_dir: Path, result: dict, manifest: dict) -> None:
    """Variants measured by an earlier compress of this run (and still on disk) stay in the table, after the new
    fp32 baselines: `--quantize int8` then `--prune 0.5` ends with both. Each entry says when it was measured."""
    import json
    from datetime import datetime, timezone

    from forgeml.evaluate import plots
    from forgeml.evaluate.report import rerender, write_section

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for v in result["variants"]:
        v.update(measured=now, threads=result["threads"])
    previous = json.loads((run_dir / COMPRESSION).read_text()).get("variants", []) if (run_dir / COMPRESSION).is_file() else []
    fresh = {v["variant"] for v in result["variants"]}
    kept = [v for v in previous if v["variant"] not in fresh and (run_dir / v["file"]).is_file()]
    result["variants"] = result["variants"][:2] + kept + result["variants"][2:]
    manifest["variants"] = {k: v for k, v in manifest.get("variants", {}).items() if (run_dir / v["file"]).is_file()}
    plots.compression(result, run_dir / "plots" / "compression.png")
    artifacts.write_json(run_dir / COMPRESSION, result)
    artifacts.write_json(run_dir / artifacts.MANIFEST, manifest)
    write_section(run_dir, "70-compression", report_section(run_dir))
    rerender(run_dir)


def report_section(run_dir: Path) -> list[str]:
    """The report's \"Compression\" section, from compression.json."""
    import html
    import json

    from forgeml.evaluate.html import img, table

    result = json.loads((run_dir / "compression.json").read_text())
    metric = "test_" + result["metric"]
    base = next(v for v in result["variants"] if v["variant"] == "fp32")
    rows = [[v["variant"], v["runtime"], v["size_bytes"] / 1e6, f"{base['size_bytes'] / v['size_bytes']:.2f}x", v[metric],
             v["latency_ms_p50"], v["latency_ms_p95"], f"{base['latency_ms_p50'] / v['latency_ms_p50']:.2f}x",
             round(v["throughput_per_s"])] for v in result["variants"]]
    parts = ["<h2>Compression</h2>",
             f"<p class=note>test split ({result['test_rows']} rows), {result['threads']} threads; ratios against fp32 "
             f"({html.escape(base['runtime'])}).</p>",
             table(["variant", "runtime", "size (MB)", "smaller", result["metric"], "p50 ms (batch 1)", "p95 ms",
                     "faster (p50)", "rows/s (batch 64)"], rows)]
    plot = run_dir / "plots" / "compression.png"
    if plot.is_file():
        parts.append(img(plot))
    return parts
