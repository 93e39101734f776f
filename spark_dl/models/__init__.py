"""The built-in network zoo, registered by name for :class:`spark_dl.model_spec.ModelSpec`."""

from __future__ import annotations

#: Built-in network names and the import path of the class each one names.
REGISTRY: dict[str, str] = {
    "mlp": "spark_dl.models.mlp:MLP",
    "cnn": "spark_dl.models.cnn:CNN",
    "lstm": "spark_dl.models.lstm:LSTMNet",
    "transformer": "spark_dl.models.transformer:TransformerEncoderNet",
    "autoencoder": "spark_dl.models.autoencoder:AutoEncoder",
    "ncf": "spark_dl.models.recommenders:NCF",
    "two_tower": "spark_dl.models.recommenders:TwoTower",
    "hf_encoder": "spark_dl.models.hf:HFEncoderNet",
}
