"""Reference architectures built from sepconv layers."""

from .small_cnn import SmallCNN, small_cnn

__all__ = ["SmallCNN", "small_cnn"]
