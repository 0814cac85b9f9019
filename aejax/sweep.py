"""Sweeps: python -m aejax.sweep run|plan|point CONFIG RUNS_DIR key=v1,v2 ... [-- FLAGS].

Thin: `aejax.studies.sweep` does the work (see its docstring; `launch.sh` is the usual entry point).
"""
import sys

from aejax.studies.sweep_cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
