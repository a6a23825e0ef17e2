"""lrtrain: train, compare and serve linear-regression models from the command line."""

__version__ = "0.1.0"
