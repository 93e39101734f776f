"""Feature stages that shape DataFrames into deep-learning inputs: token ids, sequence
windows, image tensors."""

from spark_dl.feature.image import ImageTensorizer
from spark_dl.feature.sequence import SequenceWindower
from spark_dl.feature.text import PAD_ID, UNK_ID, Vocabulary, VocabularyModel

__all__ = ["ImageTensorizer", "SequenceWindower", "Vocabulary", "VocabularyModel", "PAD_ID", "UNK_ID"]
