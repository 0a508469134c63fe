"""The workbench's version, in a leaf module so any part can name it without importing the
whole kernel (traces, OTLP resources, the served API, checkpoints and wheelhouses carry it)."""

__version__ = "0.1.0"
