"""movielens-ranker: batch ranking of MovieLens movies with a TFRS model."""

import os

# TFRS 0.7.7 needs Keras 2 (tf-keras); TensorFlow reads this switch once, at its import. Every
# module of the package is imported after this file, so setting it here is the one place.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
