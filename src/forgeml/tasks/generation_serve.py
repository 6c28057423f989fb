"""A generation run served and exported.

``POST /v1/models/NAME/generate`` takes ``{"n": 8, "label": "3", "seed": 0}`` (label: conditional models only; seed:
optional) and answers the images as base64 PNG files with the class each was drawn for. The run's own network
answers (forgeml.serve.own_runs), so a served image is the one ``forgeml generate`` draws for the same seed.

``forgeml export RUN`` writes the generator (GAN) or decoder (VAE) as ONNX: inputs ``z`` float32 [batch, latent]
(standard normal noise) and, for a conditional model, ``label`` int64 [batch] (the class's index in the manifest's
``target.classes``); output ``image`` float32 [batch, C, H, W], pixels in [0, 1]. Checked against the network on
fixed noise.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from forgeml.errors import DataError, ForgeMLError

MAX_SERVED = 256  # images per request
CHECK_DRAWS = 16


def answer(run, body) -> dict:
    """The response to a generate request; DataError (the server's 422) for a body it cannot draw from."""
    from forgeml.evaluate.image_grids import png_bytes, to_uint8

    if not isinstance(body, dict) or set(body) - {"n", "label", "seed"}:
        raise DataError('the body must be an object {"n": 8, "label": ..., "seed": ...} (label: conditional models '
                        "only; seed: optional)")
    n, label, seed = body.get("n", 1), body.get("label"), body.get("seed")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SERVED:
        raise DataError(f"'n' must be a whole number from 1 to {MAX_SERVED}, got {n!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise DataError(f"'seed' must be a whole number >= 0, got {seed!r}")
    try:
        pixels, names, seed = run.generate(n, label, seed)
    except ForgeMLError as exc:  # an unknown label: the same message as the command line's
        raise DataError(str(exc).replace("--label", "'label'").replace("-n", "'n'")) from None
    images = [base64.b64encode(png_bytes(img)).decode() for img in to_uint8(pixels)]
    return {"images": images, "labels": names, "seed": seed, "shape": run.shape}


def schemas(run) -> tuple[dict, dict]:
    """The JSON schemas of the request and the response (for /docs)."""
    props = {f["name"]: {**f["schema"], "description": f["description"]} for f in run.task.request_fields()}
    props["n"]["maximum"] = MAX_SERVED
    request = {"type": "object", "title": "images to draw", "additionalProperties": False, "properties": props}
    response = {"type": "object", "title": "the drawn images",
                "properties": {"model": {"type": "string"}, "version": {"type": "string"}, "seed": {"type": "integer"},
                               "shape": {"type": "array", "items": {"type": "integer"}, "description": "C, H, W"},
                               **run.task.response_fields()}}
    return request, response


class Exported:
    """The network from noise (and class) to pixels in [0, 1], as the ONNX graph computes it."""

    @staticmethod
    def module(network):
        import torch

        class Core(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = network

            def forward(self, z, label=None):
                return self.net.to_pixels(self.net.generate(z, label))

        return Core().eval()


def export(run, path: Path, check: bool = True) -> dict:
    import torch

    from forgeml.artifacts import atomic_write_bytes
    from forgeml.errors import require
    from forgeml.models.torch_onnx import export_quietly

    require("onnxscript", "export", "forgeml export (torch's ONNX exporter needs it)")
    net = run.network
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, net.latent_dim, generator=gen)
    batch = torch.export.Dim("batch", min=1)
    args, names, dims = (z,), ["z"], ({0: batch},)
    if net.classes:
        args, names, dims = (z, torch.arange(3) % net.classes), ["z", "label"], ({0: batch}, {0: batch})
    proto = export_quietly(Exported.module(net), args, names, ["image"], dims)
    atomic_write_bytes(path, proto.SerializeToString())
    c, h, w = run.shape
    inputs = [{"name": "z", "dtype": "float32", "shape": ["batch", net.latent_dim], "how": "standard normal noise"}]
    if net.classes:
        inputs.append({"name": "label", "dtype": "int64", "shape": ["batch"], "labels": run.task.classes,
                       "how": "the class to draw: its index in labels (manifest target.classes)"})
    info = {"file": path.name, "size_bytes": path.stat().st_size,
            "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import}, "inputs": inputs,
            "outputs": [{"name": "image", "dtype": "float32", "shape": ["batch", c, h, w],
                         "how": "pixels in [0, 1], channels first"}]}
    if check:
        info["parity"] = parity(net, proto.SerializeToString())
    return info


def parity(net, onnx_bytes: bytes) -> dict:
    """max |network - graph| over CHECK_DRAWS images from fixed noise."""
    import torch

    from forgeml.errors import require

    ort = require("onnxruntime", "export", "checking the exported graph")
    z = torch.randn(CHECK_DRAWS, net.latent_dim, generator=torch.Generator().manual_seed(1))
    feeds = {"z": z.numpy()}
    label = None
    if net.classes:
        label = torch.arange(CHECK_DRAWS) % net.classes
        feeds["label"] = label.numpy().astype(np.int64)
    with torch.no_grad():
        want = net.to_pixels(net.generate(z, label)).numpy()
    got = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(["image"], feeds)[0]
    return {"draws": CHECK_DRAWS, "max_abs_diff": float(np.max(np.abs(got - want)))}
