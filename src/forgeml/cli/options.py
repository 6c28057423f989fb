"""Options shared by several commands, each declared once (an `Annotated` type that a command's parameter uses).

A command writes `epochs: Epochs = None`; the flag's name, short form and help live here only. Options that mean
something different in one command (serve's --precision, evaluate's --data) stay with that command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

# ----- where the config comes from
Config = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags (and --set) override its values")]
Set = Annotated[Optional[List[str]], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="set any config key by its dotted path, the value read as YAML (repeatable): --set train.lr=0.01 "
         "--set model.hidden=[64,64]. Applied last: defaults < --config file < other flags < --set")]

# ----- data
Data = Annotated[Optional[str], typer.Option("--data", "-d", help="csv/parquet/jsonl file, image folder, or bundled:NAME")]
Target = Annotated[Optional[str], typer.Option("--target", "-t", help="column to predict")]
Sep = Annotated[Optional[str], typer.Option(
    "--sep", help="CSV/TSV delimiter (default: sniffed): one character, or comma | semicolon | tab | pipe")]
Encoding = Annotated[Optional[str], typer.Option(
    "--encoding", help="CSV/TSV text encoding (default: detected: UTF-8, BOM, else Windows-1252/Latin-1), e.g. utf-16, latin-1")]
Task = Annotated[Optional[str], typer.Option("--task", help="auto | classification | regression | anomaly | clustering | "
                                                           "forecasting | generation "
                                                           "(`forgeml tasks` lists the families)")]
Label = Annotated[Optional[str], typer.Option(
    "--label", help="anomaly, clustering: a column used only to evaluate (never to fit); anomaly: its minority value "
                    "is the anomaly")]
K = Annotated[Optional[str], typer.Option("--k", help="clustering: number of clusters, or auto (the best silhouette "
                                                     "over 2..task.k_max, default 10)")]
Horizon = Annotated[Optional[int], typer.Option("--horizon", help="forecasting: points to forecast (default: one season, "
                                                                "e.g. 12 for monthly series)")]
Conditional = Annotated[bool, typer.Option(
    "--conditional", help="generation: one distribution per class (task.conditional); --label draws a class")]
IdCol = Annotated[Optional[str], typer.Option("--id-col", help="forecasting: the column naming each series of a long table")]
Positive = Annotated[Optional[str], typer.Option("--positive", help="anomaly: the --label value that marks an anomaly")]
Contamination = Annotated[Optional[float], typer.Option(
    "--contamination", help="anomaly: share of validation rows the threshold flags (default 0.05; 0 < c <= 0.5)")]
TargetFpr = Annotated[Optional[float], typer.Option(
    "--target-fpr", help="anomaly: set the threshold to flag this share of normal validation rows instead")]
Balance = Annotated[Optional[str], typer.Option(
    "--balance", help="class imbalance: none | class_weights | oversample | undersample | smote | generative | focal")]
Threshold = Annotated[Optional[str], typer.Option(
    "--threshold", help="binary tasks: tune the decision threshold on validation: f1 | recall "
                        "(data.balance.target_recall, default 0.8)")]
GroupCol = Annotated[Optional[str], typer.Option(
    "--group-col", help="rows sharing this column's value stay in one split (not a feature)")]
TimeCol = Annotated[Optional[str], typer.Option(
    "--time-col", help="split by time: latest rows are the test split (not a feature); forecasting: the time column")]
Dedup = Annotated[bool, typer.Option("--dedup", help="drop exact duplicate rows before splitting")]
Impute = Annotated[Optional[str], typer.Option(
    "--impute", help="numeric gaps: mean | median | most_frequent | constant | drop")]
MissingIndicator = Annotated[bool, typer.Option(
    "--missing-indicator", help="add a 0/1 <column>_missing input per numeric column with gaps")]
Scale = Annotated[Optional[str], typer.Option("--scale", help="numeric scaling: standard | minmax | robust | none")]
Outliers = Annotated[Optional[str], typer.Option(
    "--outliers", help="numeric outliers beyond the 1%/99% training quantiles: none | clip | drop")]

# ----- model and training
Model = Annotated[Optional[str], typer.Option("--model", "-m", help="auto | mlp | cnn | text | minilm | lightgbm | catboost | ensemble")]
Presets = Annotated[Optional[str], typer.Option("--presets", help="model auto on tables: fast (mlp vs lightgbm) | medium "
                                                                  "(default: a bagged ensemble of boosted trees) | best")]
TimeLimit = Annotated[Optional[float], typer.Option("--time-limit", help="seconds training may take (train.time_limit)")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="training epochs")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="batch size")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="learning rate")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="training seed")]
Precision = Annotated[Optional[str], typer.Option("--precision", help="auto | fp32 | bf16 | fp16")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps")]
Epsilon = Annotated[Optional[float], typer.Option(
    "--epsilon", help="train with differential privacy (DP-SGD, Opacus): the privacy budget epsilon, e.g. 3 "
                      "(smaller is more private)")]
Delta = Annotated[Optional[float], typer.Option("--delta", help="DP delta (default min(1e-5, 0.1/training rows))")]
MaxGradNorm = Annotated[Optional[float], typer.Option(
    "--max-grad-norm", help="DP per-row gradient clipping norm (default 1.0)")]

# ----- the run
Name = Annotated[Optional[str], typer.Option(
    "--name", "-n", help="run name: runs/<name>/ (default: from the data's name)")]
RunsDir = Annotated[Optional[str], typer.Option("--runs-dir", help="folder of run folders (default runs)")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace an existing run of the same name")]
TrackingUri = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default sqlite:///runs/mlflow.db; 'none' disables)")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or log lines")]
Run = Annotated[str, typer.Argument(help="run folder, e.g. runs/quickstart")]
