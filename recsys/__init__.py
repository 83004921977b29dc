"""movielens-ranker: batch ranking of MovieLens movies with a TFRS model."""

__version__ = "0.1.0"
