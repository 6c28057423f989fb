"""What a federated run writes besides the run folder's usual files: the "privacy" figures of per-client DP-SGD,
the rounds plot (``plots/federated_rounds.png``) and the report's "Federated learning" section."""
from __future__ import annotations

from typing import Optional

PLOT = "federated_rounds.png"


def privacy_report(privacy, clients: list[dict], replaced: list[dict]) -> dict:
    """metrics.json "privacy" for a federated run: each client is its own DP-SGD mechanism over its own rows, so the
    guarantee is per client (record-level for that client's data); the figures are the worst client's."""
    return {"epsilon": max(c["epsilon"] for c in clients), "delta": privacy.delta,
            "noise_multiplier": min(c["noise_multiplier"] for c in clients), "max_grad_norm": privacy.max_grad_norm,
            "target_epsilon": privacy.epsilon, "accountant": privacy.accountant,
            "steps": max(c["steps"] for c in clients), "sample_rate": max(c["sample_rate"] for c in clients),
            "replaced_layers": replaced, "scope": "per client: DP-SGD on each client's rows, all rounds accounted"}


def round_metric(task) -> str:
    """The validation metric plotted per round: accuracy for families with labels, else RMSE."""
    return "val_accuracy" if "labels" in task.tags else "val_rmse"


def plot_rounds(summary: dict, task, path) -> None:
    """The rounds plot of a federated run's summary (metrics.json "federated")."""
    key = round_metric(task)
    central = summary["central"]
    central_value = None
    if central is not None:
        central_value = central["val"].get(key.removeprefix("val_"))
    federated_rounds(summary["rounds"], key, path, central_value,
                     title=f"{summary['options']['strategy']}, {summary['options']['clients']} clients, "
                           f"{summary['partition']['method']}"
                           f"{' alpha ' + str(summary['options']['alpha']) if summary['partition']['method'] == 'dirichlet' else ''}",
                     kept_round=summary["kept_round"])


def federated_rounds(rounds: list[dict], key: str, path, central: Optional[float] = None, title: str = "",
                     kept_round: Optional[int] = None):
    """The global model's validation metric and loss after each round, the centralized model's value as a line."""
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    x = [r["round"] for r in rounds]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(x, [r[key] for r in rounds], marker="o", ms=3, label="federated (global model)")
    if central is not None:
        axes[0].axhline(central, color="tab:red", ls="--", lw=1.2, label=f"centralized ({central:.4f})")
    axes[0].set_xlabel("round"), axes[0].set_title(key.replace("_", " ") + (f" ({title})" if title else ""), fontsize=10)
    axes[1].plot(x, [r["val_loss"] for r in rounds], marker="o", ms=3, label="validation loss (global model)")
    if all("client_train_loss" in r for r in rounds):
        axes[1].plot(x, [r["client_train_loss"] for r in rounds], marker="o", ms=3, label="clients' training loss")
    axes[1].set_xlabel("round"), axes[1].set_title("loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        if kept_round is not None and kept_round > 0:
            ax.axvline(kept_round, color="grey", ls=":", lw=1, label=f"kept round {kept_round}" if ax is axes[0] else None)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def report_section(run_dir, metrics: dict) -> list[str]:
    """The report's "Federated learning" section: federated vs centralized, the partition, the rounds plot."""
    from forgeml import artifacts
    from forgeml.evaluate.html import img, table
    from forgeml.tasks import summary_keys

    fed = metrics["federated"]
    o = fed["options"]
    task = artifacts.read_manifest(run_dir)["task"]
    keys = [k for k in summary_keys(task) if metrics["test"].get(k) is not None]
    rows = [[f"{fed['model']} federated ({o['strategy']}, kept round {fed['kept_round']})", *[metrics["test"].get(k) for k in keys]]]
    if fed.get("central"):
        rows.append([f"{fed['model']} centralized ({fed['central']['epochs']} epochs)", *[fed["central"]["test"].get(k) for k in keys]])
    if metrics.get("baseline"):
        rows.append([f"baseline: {metrics['baseline']['name']}", *[metrics["baseline"]["test"].get(k) for k in keys]])
    part = fed["partition"]
    classes = list(part["clients"][0]["class_counts"]) if part["clients"] else []
    parts = [
        "<h2>Federated learning</h2>",
        f"<p class=note>{o['clients']} clients, {o['rounds']} rounds x {o['local_epochs']} local epoch(s), "
        f"strategy {o['strategy']}{' (mu ' + str(o['mu']) + ')' if o['strategy'] == 'fedprox' else ''}, partition "
        f"{part['method']}{' (alpha ' + str(o['alpha']) + ')' if part['method'] == 'dirichlet' else ''}, engine "
        f"{fed['engine']}, {fed['seconds']:.1f} s. The centralized model is the same network trained on the pooled "
        "training split for rounds x local epochs epochs. Preprocessing was fitted on the pooled training split.</p>",
        "<h3>Test metrics: federated vs centralized</h3>",
        table(["model", *keys], rows),
        "<h3>Partition (training rows per client)</h3>",
        table(["client", "rows", "label skew (TV distance)", *classes],
               [[c["client"], c["rows"], c["label_skew"], *c["class_counts"].values()] for c in part["clients"]]),
    ]
    if metrics.get("privacy"):
        parts.append("<p class=note>Differential privacy here is per client: every client ran DP-SGD on its own rows, "
                     "with its noise calibrated for all rounds, and the figures in the Differential privacy section are "
                     "the worst client's. The centralized comparison spent the same budget on the pooled rows.</p>")
    plot = run_dir / "plots" / PLOT
    if plot.is_file():
        parts.append(img(plot))
    return parts
