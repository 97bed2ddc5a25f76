"""The `medrecord` command line."""

import click


@click.group()
def main() -> None:
    """MedRecord: patient-controlled medical records on Ethereum."""
