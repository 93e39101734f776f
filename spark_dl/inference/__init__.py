"""Scoring: Arrow-batched UDFs and the per-worker model cache."""
