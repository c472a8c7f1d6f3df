"""Run every benchmark module `bench/run_*.py` (or those named), each exposing `main()`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("run_")
    )
    chosen = [n for n in names if not argv or n.removeprefix("run_") in argv or n in argv]
    if argv and not chosen:
        sys.exit(f"error: no benchmark named {argv}; choose from {[n[4:] for n in names]}")
    for name in chosen:
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
