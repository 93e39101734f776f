"""``model="hf:<folder>"``: fine-tune a pretrained encoder inside the torch estimators.

The estimator resolves the Param on the driver: the folder's ``config.json`` becomes the
``hf_encoder`` network's ``config`` kwarg, and its safetensors weights become the
training's initial state (``TrainPlan.init_state``, under the network's ``encoder.``
prefix; the head starts from torch's initialisation). The fitted model records
``model="hf_encoder"`` with the config in ``modelParams``, so it saves as every torch model
does (weights as safetensors, the network as JSON) and loads without the folder.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "hf:"


def is_pretrained(model: str) -> bool:
    """Whether the ``model`` Param names a pretrained folder."""
    return model.startswith(PREFIX)


def resolve(stage: Any) -> tuple[dict[str, Any], bytes]:
    """``(hf_encoder kwargs, initial state)`` for ``stage``'s ``model="hf:<folder>"``,
    read once per folder and kept on the stage."""
    from spark_dl.pretrained.files import (
        CONFIG_FILE,
        WEIGHTS_FILE,
        check_encoder,
        read_files,
    )

    folder = stage.getModel()[len(PREFIX):]
    cached = getattr(stage, "_pretrained", None)
    if cached is None or cached[0] != folder:
        owner = type(stage).__name__
        files = read_files(folder, (CONFIG_FILE, WEIGHTS_FILE), owner, "model")
        config = check_encoder(files, folder, owner)
        cached = (folder, config, _encoder_state(files[CONFIG_FILE], files[WEIGHTS_FILE]))
        stage._pretrained = cached
    # modelParams (pooling, dropout) may change between fits: merged on every call.
    return {**stage.getModelParams(), "config": cached[1]}, cached[2]


def _encoder_state(config: bytes, weights: bytes) -> bytes:
    """The folder's weights renamed for ``HFEncoderNet.encoder``."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from spark_dl.inference.hf import _strip_prefix, build_encoder

    meta = build_encoder(config, meta=True)
    state = _strip_prefix(st_load(weights), meta)
    return st_save({f"encoder.{k}": v.contiguous() for k, v in state.items()})


def fitted_params(stage: Any) -> dict[str, Any]:
    """The Params the fitted model records instead of ``model="hf:<folder>"``."""
    kwargs, _ = resolve(stage)
    return {"model": "hf_encoder", "modelParams": json.dumps(kwargs, sort_keys=True)}


__all__ = ["PREFIX", "fitted_params", "is_pretrained", "resolve"]
