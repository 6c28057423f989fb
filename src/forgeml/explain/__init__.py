"""Explanations of a trained run, with Captum: Grad-CAM and Integrated Gradients for images, token attributions for
text, permutation importance and per-row Integrated Gradients / LIME for tables.

Every attribution is reported per raw input the user knows (a table column, a word, a pixel), never per internal
tensor index. ``forgeml.api.explain`` (``forgeml explain RUN``) writes them as files a person can look at.

    methods.py       which methods apply to which run, and the defaults
    inputs.py        what to explain: the run's test split, a file, or JSON rows (checked against the schema)
    attributions.py  the Captum glue (LayerGradCam, IntegratedGradients / LayerIntegratedGradients, Lime)
    permutation.py   global permutation importance on labelled rows
    local.py         per-instance explanations as JSON-able records (shared by the CLI and the server)
    render.py        PNG heat-map grids, highlighted text HTML, importance plots and CSV tables
    run.py           `forgeml explain`: choose, compute, write files and explanations.json, update the report
    summary.py       the terminal summary (Rich tables)
    service.py       the server's POST /v1/models/{name}/explain (models loaded lazily from their runs)
    anomaly.py       anomaly runs: each column's share of a row's score (reconstruction error, per-row permutation)
    anomaly_run.py   `forgeml explain` on an anomaly run: the most anomalous test rows, files
    anomaly_render.py  their plots, terminal summary and report section
"""
