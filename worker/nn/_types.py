"""Array type aliases shared by the engine's modules."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
FloatDType = np.dtype[Any]
