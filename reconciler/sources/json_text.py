"""JSON text read from a file the reconciler is given or keeps (a saved plan, the state
directory's inventory, credential fingerprints and journal).

Python's json module fails on two kinds of text that are not syntax errors: arrays or
objects nested deeper than the interpreter's recursion limit (a RecursionError, which no
caller expects of a parser) and a number of more than 4,300 digits (a ValueError whose
message advises a call to `sys.set_int_max_str_digits`, which means nothing to a user).
`loads` turns both into `TooComplex`, a ValueError that says what is wrong with the text;
a syntax error stays a `json.JSONDecodeError`, which locates itself.
"""

from __future__ import annotations

import json
from typing import Any

NESTED_TOO_DEEPLY = "arrays or objects nested too deeply to read"
NUMBER_TOO_LONG = "a number of more than 4,300 digits, too long to read"


class TooComplex(ValueError):
    """Text that is JSON in form, but past what the parser reads: the message says why."""


def loads(text: str, decoder: json.JSONDecoder | None = None) -> Any:
    """The value `text` holds, read by `decoder` (one with hooks of its own, as a cloud's
    answer is read: `providers.transport`) or by `json.loads`; `json.JSONDecodeError` for
    text that is not JSON, and `TooComplex` for JSON nested too deeply or holding a number
    too long to read. A hook's own error goes on as it is."""
    try:
        return json.loads(text) if decoder is None else decoder.decode(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:  # the parser descends once per nested array or object
        raise TooComplex(NESTED_TOO_DEEPLY) from None
    except ValueError as exc:
        if type(exc) is not ValueError:  # a hook's error, of a class of its own
            raise
        # int(): the interpreter's limit on the digits of a number
        raise TooComplex(NUMBER_TOO_LONG) from None
