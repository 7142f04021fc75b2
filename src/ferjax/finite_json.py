"""JSON that strict parsers accept: non-finite numbers are written as null.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON; jq,
JavaScript and most other readers reject the whole file. A metric that is
not a number (a diverged loss) is recorded as ``null`` instead.
"""

import json
import math
from typing import Any


def finite(value: Any) -> Any:
  """``value`` with every NaN or infinite float, at any depth, as None."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [finite(v) for v in value]
  return value


def dumps(value: Any, **kwargs: Any) -> str:
  """``json.dumps`` of ``finite(value)``; never writes NaN or Infinity."""
  return json.dumps(finite(value), allow_nan=False, **kwargs)
