"""`python -m models [--json]`: list the registered models."""
import argparse
import json

from .registry import REGISTRY, describe


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()
    for spec in REGISTRY.values():
        record = describe(spec)
        if args.json:
            print(json.dumps(record))
        else:
            w = record["weights"] or "(no weights)"
            params = f"{record['params']:>9,}" if record["params"] is not None else f"{'?':>9}"
            print(f"{record['name']:<16} {record['task']:<12} x{record['scale']}  {params} params  {w}")


if __name__ == "__main__":
    main()
