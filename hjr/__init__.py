"""hjr: train, evaluate, export and serve 2D hand-joint recognition models."""

__version__ = "0.1.0"
