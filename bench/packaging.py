"""Packaging figures: wheel size, install time, import time of ``medrecord_sdk.client``
without the ``embedded`` extra, ``medrecord --help``, and the pytest plugin's start-up cost.

    python bench/packaging.py [--repeat N]

Runs ``tools/wheel_check.py`` (which builds the wheel and installs it in a clean venv outside
the checkout, checking it on the way) with more repetitions, and prints its figures. Targets
(issue 16, on a quiet 2-core machine): import under 0.5 s, ``--help`` under 0.5 s, the plugin
under 50 ms. Timings are the best of N fresh processes; the import figure is printed with its
floor, ``import web3`` alone, which the SDK cannot go below while it uses web3.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    return subprocess.call(  # noqa: S603 (our own script)
        [sys.executable, str(REPO / "tools" / "wheel_check.py"), "--repeat", str(options.repeat)]
    )


if __name__ == "__main__":
    sys.exit(main())
