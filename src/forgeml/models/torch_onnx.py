"""torch.onnx's dynamo exporter, quietly: what forgeml export (forgeml.export.onnx) and a family that writes its own
graph (forecasting: forgeml.tasks.forecast_onnx) both call. The exporter narrates its steps on stdout and warns about
its own internals; forgeml's output stays clean."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings


def export_quietly(module, args: tuple, input_names: list[str], output_names: list[str], dynamic_shapes):
    """``module`` (in eval mode) traced on ``args`` as an onnx.ModelProto, its inputs and outputs so named."""
    import torch

    log = logging.getLogger("torch.onnx")
    level = log.level
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(module, args, None, input_names=input_names, output_names=output_names,
                                        dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False,
                                        verbose=False, optimize=True)
        finally:
            log.setLevel(level)
    return program.model_proto
