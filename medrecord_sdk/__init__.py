"""MedRecord SDK: patient-controlled medical records on Ethereum."""

__version__ = "0.1.0"
__all__ = ["__version__"]
