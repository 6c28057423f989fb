"""Playbook entry image-generation: conditional VAE and GAN runs on the digits. Each row is what its run's metrics.json
says (the model's test scores beside its Gaussian-mixture baseline), the verdict is the claim recomputed from the
rows, and each plot is the grid `forgeml generate` draws from that run with the entry's seed. At --fast the models
are far from trained, so this checks that the verdict follows the rows, not that the claim holds."""
import numpy as np

from conftest import run_config_yaml as _config, run_manifest as _manifest, run_metrics as _metrics


def test_rows_are_what_the_runs_metrics_say_and_the_verdict_what_the_rows_say(ran):
    from forgeml.playbook.image_generation import CLASS_ACCURACY, MODELS, run_name

    folder, ev = ran["image-generation"]
    assert ev.columns == ["model (conditional)", "test Frechet distance", "mixture's Frechet distance", "test KID",
                          "mixture's KID", "precision", "recall", "class accuracy", "epochs run", "best epoch",
                          "seconds to train"]
    *models, base = ev.rows
    assert [r[0] for r in models] == list(MODELS) == ["vae", "gan"]
    for row in models:
        m = _metrics(folder, run_name(row[0]))
        t, b = m["test"], m["baseline"]["test"]
        assert m["model"] == row[0] and m["baseline"]["name"] == "gaussian_mixture"
        assert row[1:8] == [round(t["frechet_distance"], 4), round(b["frechet_distance"], 4), round(t["kid"], 4),
                            round(b["kid"], 4), round(t["precision"], 4), round(t["recall"], 4),
                            round(t["class_accuracy"], 4)]
        assert row[8] == m["training"]["epochs_run"] == len(m["history"]) <= MODELS[row[0]][0]  # --fast epochs
        assert row[9] == m["training"]["best_epoch"] + 1 <= row[8]
        assert row[10] == round(m["training"]["seconds"], 1) > 0
        assert t["n"] == b["n"] == 270  # one generated image per held-out test digit
    # one split and one scoring classifier for both runs: the same mixtures, scored the same
    vae_base, gan_base = (_metrics(folder, run_name(k))["baseline"]["test"] for k in MODELS)
    assert vae_base == gan_base
    assert base == ["gaussian mixture per class (baseline)", round(vae_base["frechet_distance"], 4), "-",
                    round(vae_base["kid"], 4), "-", round(vae_base["precision"], 4), round(vae_base["recall"], 4),
                    round(vae_base["class_accuracy"], 4), "-", "-", "-"]
    vae = models[0]
    assert ev.supported == (vae[1] < vae[2] and vae[3] < vae[4] and vae[7] >= CLASS_ACCURACY)
    for lang in ("en", "zh"):
        assert f"{vae[1]:.3f}" in ev.finding[lang] and f"{models[1][1]:.3f}" in ev.finding[lang]


def test_the_runs_are_class_conditional_generation_runs_on_the_digits(ran):
    from forgeml.playbook.image_generation import MODELS, PATIENCE, run_name

    folder, _ = ran["image-generation"]
    for model, (fast_epochs, _) in MODELS.items():
        manifest, cfg = _manifest(folder, run_name(model)), _config(folder, run_name(model))
        assert manifest["task"] == "generation" and manifest["model"]["name"] == model
        assert manifest["target"]["conditional"] is True and manifest["target"]["classes"] == [str(d) for d in range(10)]
        assert manifest["target"]["scorer"]["kind"] == "labels"  # class accuracy is measured by a class classifier
        assert manifest["data"]["source"] == "bundled:digits"
        assert manifest["data"]["rows"] == {"train": 1257, "val": 270, "test": 270}  # the 1,257 of the claim
        assert cfg["task"]["name"] == "generation" and cfg["task"]["conditional"] is True
        assert cfg["train"]["epochs"] == fast_epochs and cfg["train"]["threads"] == 1
        assert cfg["train"]["early_stopping"]["patience"] == PATIENCE


def test_each_plot_is_the_grid_forgeml_generate_draws_from_its_run(ran):
    from PIL import Image

    from forgeml import api
    from forgeml.evaluate.image_grids import GAP, MIN_CELL, grid
    from forgeml.playbook.image_generation import MODELS, SAMPLES, SEED, plot_name, run_name

    folder, ev = ran["image-generation"]
    assert ev.plots == [plot_name(k) for k in MODELS]
    cell = 8 * (MIN_CELL // 8) + GAP  # 8x8 digits, enlarged to at least MIN_CELL pixels, and the gap
    for model in MODELS:
        with Image.open(folder / plot_name(model)) as im:
            assert im.format == "PNG" and im.mode == "L"
            assert im.size == (10 * cell + GAP, SAMPLES // 10 * cell + GAP)  # one digit per column, ten rows
            pixels = np.asarray(im)
        drawn, labels, seed = api.load(folder / "runs" / run_name(model)).generate(SAMPLES, seed=SEED)
        assert seed == SEED and labels == [str(i % 10) for i in range(SAMPLES)]
        assert (pixels == grid(drawn, 10)).all()  # the same seed draws the same images
        samples = sorted((folder / "samples" / model).glob("sample_*.png"))
        assert len(samples) == SAMPLES and samples[3].name == "sample_0003_3.png"
