"""Pretrained Hugging Face models as Spark ML stages (needs ``spark-dl[hf]``)."""

from spark_dl.pretrained.stages import HFTokenizer, TextEmbedder

__all__ = ["HFTokenizer", "TextEmbedder"]
