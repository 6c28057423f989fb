"""Playbook entries serving-under-load and lora: each row is what its run measured (the server's own batch metrics,
each training run's metrics.json and config), and the verdict is the claim recomputed from the rows. Timings on a
shared machine are noisy, so --fast checks that the verdict follows the rows, not that the claim holds."""
import json

import pytest


def _metrics(folder, run):
    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def _config(folder, run):
    import yaml

    return yaml.safe_load((folder / "runs" / run / "config.yaml").read_text())


# ------------------------------------------------------------------------------------------------ serving-under-load
def test_serving_rows_are_each_setting_at_each_concurrency_and_the_verdict_what_they_say(ran):
    from forgeml.playbook.serving_load import LEVELS, SETTINGS

    folder, ev = ran["serving-under-load"]
    assert [(r[0], r[1]) for r in ev.rows] == [(s, c) for s in SETTINGS for c in LEVELS]
    for label, c, requests, errors, batch, rps, p50, p95, p99 in ev.rows:
        assert requests > 0 and errors == 0  # every request answered 200
        assert 0 < p50 <= p95 <= p99 and rps > 0
        if c == 1 or SETTINGS[label] == 1:  # a lone request runs at once; max_batch 1 never merges
            assert batch == 1.0
    rows = {(r[0], r[1]): r for r in ev.rows}
    on, off = (rows[(label, max(LEVELS))] for label in SETTINGS)
    assert on[4] > 1  # at 32 clients the batcher really merged requests
    assert ev.supported == (on[5] > off[5] and on[8] < off[8])
    for mb in SETTINGS.values():  # both servers started, and wrote no traceback
        assert "Traceback" not in (folder / f"server-{mb}.log").read_text()
    manifest = json.loads((folder / "runs" / "cancer" / "manifest.json").read_text())
    assert manifest["model"]["name"] == "mlp" and (folder / "runs" / "cancer" / "model.onnx").is_file()


def test_the_server_is_stopped_even_when_the_load_fails(ran, monkeypatch):
    from forgeml.playbook import serving_load

    folder, _ = ran["serving-under-load"]
    started = []
    start = serving_load.start_server

    def recording(*args, **kw):
        proc, port = start(*args, **kw)
        started.append((proc, port))
        return proc, port

    async def broken(*args, **kw):
        raise RuntimeError("the client fell over")

    monkeypatch.setattr(serving_load, "start_server", recording)
    monkeypatch.setattr(serving_load, "load", broken)
    with pytest.raises(RuntimeError, match="fell over"):
        serving_load.measure(folder / "runs" / "cancer", 64, [b"{}"], (1,), 1, folder / "stopped.log")
    (proc, port), = started
    assert proc.poll() is not None  # terminated, not left listening
    with pytest.raises(OSError):
        serving_load.http_get(port, "/readyz")


def test_batch_rows_reads_the_servers_histogram(monkeypatch):
    from forgeml.playbook import serving_load

    text = ('# HELP forgeml_batch_size rows per call\nforgeml_batch_size_bucket{le="1.0",model="cancer"} 3.0\n'
            'forgeml_batch_size_count{model="cancer"} 7.0\nforgeml_batch_size_sum{model="cancer"} 45.0\n'
            'forgeml_batch_size_sum{model="other"} 99.0\n')
    monkeypatch.setattr(serving_load, "http_get", lambda port, path: (200, text))
    assert serving_load.batch_rows(0) == (45.0, 7.0)


# ------------------------------------------------------------------------------------------------ lora
def test_lora_rows_are_its_three_runs_and_the_verdict_what_they_say(ran):
    from forgeml.playbook.finetune import SPLIT, VARIANTS, state_mib

    folder, ev = ran["lora"]
    assert [r[0] for r in ev.rows] == list(VARIANTS)
    for k, (label, lr, trained, n, mib, seconds, acc, auc) in enumerate(ev.rows):
        m, cfg = _metrics(folder, f"lora-{k}"), _config(folder, f"lora-{k}")
        model, want_lr = VARIANTS[label]
        assert cfg["model"]["name"] == "minilm" and cfg["train"]["lr"] == lr == want_lr
        assert cfg["model"]["freeze_encoder"] == model.get("freeze_encoder", False)
        assert (cfg["model"]["lora"] is None) == ("lora" not in model)
        assert cfg["train"]["epochs"] == 1 and len(m["history"]) == 1  # the same single epoch for all
        assert cfg["data"]["max_text_tokens"] == 16 and cfg["data"]["split"]["test"] == SPLIT["test"]  # --fast
        assert [trained, n] == [m["training"]["trainable_parameters"], m["training"]["parameters"]]
        assert seconds == round(m["history"][0]["seconds"], 2)
        assert [acc, auc] == [round(m["test"]["accuracy"], 4), round(m["test"]["roc_auc"], 4)]
        assert mib == round(state_mib(n, trained), 1)
    frozen, lora, full = ev.rows
    hidden, layers = 384, 6
    assert frozen[2] == hidden * 2 + 2  # only the head: 384 -> 2
    assert lora[2] == layers * 2 * (8 * hidden * 2) + frozen[2]  # rank-8 A and B on query and value, plus the head
    assert full[2] == full[3] == frozen[3] and lora[3] == frozen[3] + lora[2] - frozen[2]
    assert ev.supported == (lora[2] / full[2] < 0.01 and lora[5] < full[5] and full[6] - lora[6] <= 0.03
                            and frozen[6] < lora[6])
    # the three trained on the same rows and split: the same test rows
    assert len({_metrics(folder, f"lora-{k}")["test"]["n"] for k in range(3)}) == 1
