"""Deprecated alias of `python -m evaluate` (same flags), kept for one release: evaluation moved to evaluate/."""
from __future__ import annotations

import sys

NOTE = "note: `python -m train.evaluate` is deprecated and will be removed; use `python -m evaluate` (same flags)"


def main(argv=None) -> int:
    print(NOTE, file=sys.stderr)
    from evaluate.cli import main as evaluate_main  # the one sanctioned train -> evaluate import (this alias)

    return evaluate_main(argv)


if __name__ == "__main__":
    sys.exit(main())
