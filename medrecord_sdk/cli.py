"""The `medrecord` command line: a thin shell over the SDK."""

from __future__ import annotations

import click
from rich.console import Console

from . import __version__


@click.group()
@click.version_option(__version__, prog_name="medrecord")
def main() -> None:
    """MedRecord: patient-controlled medical records on Ethereum."""


@main.command()
def demo() -> None:
    """Run the whole MedRecord story on the embedded chain and local store."""
    from ._demo import run_demo

    run_demo(Console())
