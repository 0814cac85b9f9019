"""Summarise a sweep: python -m aejax.sweep_summary RUNS_DIR [--x=beta] [--metrics=a,b].

Thin: `aejax.studies.sweep_summary` does the work (CSV, markdown table, plots).
"""
import sys

from aejax.studies.sweep_summary import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
