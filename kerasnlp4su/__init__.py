"""kerasnlp4su: the Keras 3 successor of bert4keras."""

__version__ = "0.1.0"
