"""The ``ferjax`` commands, one module each: parse arguments, call the library.

``ferjax.cli`` dispatches ``ferjax <command> ...`` to ``<module>.main(argv)``;
what the commands share is how a failure reaches the user.
"""

import sys
from collections.abc import Callable

from ferjax import config as config_lib
from ferjax import fs_errors


def reporting_errors(command: str, run: Callable[[], int], *,
                     errors: tuple[type[Exception], ...] = ()) -> int:
  """``run()``, with a bad config, input or file reported in one line, 2;
  ``errors``: the command's own exceptions, reported the same way."""
  try:
    return run()
  except (config_lib.ConfigError, FileNotFoundError, ValueError,
          *errors) as e:
    print(f"ferjax {command}: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:
    print(f"ferjax {command}: error: {fs_errors.describe(e)}",
          file=sys.stderr)
    return 2
