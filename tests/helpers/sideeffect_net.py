"""A module whose import has a side effect (it records itself), as untrusted code would."""

from __future__ import annotations

import os

from torch import nn

IMPORTED_MARKER = os.environ.get("SPARK_DL_SIDE_EFFECT_MARKER")
if IMPORTED_MARKER:
    open(IMPORTED_MARKER, "w").close()


class Net(nn.Linear):
    """A valid network, so only the import itself is the danger."""
