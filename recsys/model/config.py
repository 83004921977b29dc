"""Every hyperparameter of the ranking model in one validated, serialisable object.

The config is recorded with each trained model (registry row and artifact), so a model
can always be rebuilt exactly; it is validated up front so that a typo or an impossible
value fails before minutes of training, with a ``ConfigError`` that names the field.
Presets name the configurations the project compares; a JSON/YAML file can start from
a preset (``preset: full``) and override single fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys.errors import ConfigError


class ModelConfig(BaseModel):
    """Hyperparameters of one training run (model shape, regularisation, optimisation, data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="custom", description="Preset name, or 'custom'.")
    # --- model shape ---
    id_dim: int = Field(default=32, ge=1, le=1024, description="Embedding size of user_id / movie_id.")
    side_dim: int = Field(default=8, ge=1, le=256, description="Embedding size of each side feature.")
    bag_dim: int = Field(default=32, ge=1, le=1024, description="Embedding size of history-bag items.")
    dot_dim: int = Field(default=32, ge=0, le=1024, description="Size of the user.movie dot term; 0 = off.")
    hidden_layers: tuple[int, ...] = Field(
        default=(128, 64), description="Widths of the MLP over both towers; () = no MLP."
    )
    use_biases: bool = Field(default=True, description="Global mean + per-user and per-movie bias.")
    use_side_features: bool = Field(
        default=True, description="Gender, occupation, age bucket, zip prefix; title, genres, year."
    )
    title_mode: Literal["tokens", "whole"] = Field(
        default="tokens", description="Title as bag of word tokens, or one lookup of the whole string."
    )
    use_user_bag: bool = Field(default=True, description="User tower reads the movies the user rated.")
    use_movie_bag: bool = Field(default=True, description="Movie tower reads the users who rated it.")
    bag_ratings: bool = Field(default=False, description="Bags are keyed by (item, rating value), not just the item.")
    bag_centered: bool = Field(
        default=False, description="Add bags weighted by the centred rating (how, not only what, was rated)."
    )
    bag_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of history-bag entries hidden per training step."
    )
    bag_norm: Literal["sqrt", "mean"] = Field(
        default="sqrt", description="Bag sum divided by sqrt(n) (as SVD++) or by n."
    )
    # --- regularisation ---
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout on tower outputs and MLP.")
    l2_embedding: float = Field(default=1e-5, ge=0.0, le=1.0, description="L2 on embedding tables.")
    l2_dense: float = Field(default=1e-5, ge=0.0, le=1.0, description="L2 on dense kernels.")
    id_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of training rows whose ids are hidden, so cold-start scoring is trained.",
    )
    # --- optimisation ---
    optimizer: Literal["adam", "adagrad"] = "adam"
    learning_rate: float = Field(default=2e-3, gt=0.0, le=10.0)
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    epochs: int = Field(default=40, ge=1, le=1000)
    early_stopping_patience: int = Field(
        default=3, ge=0, le=100, description="Epochs without validation gain before stopping; 0 = off."
    )
    validation_fraction: float = Field(
        default=0.05, ge=0.0, lt=0.5, description="Share of training ratings held out for validation."
    )
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    ensemble_size: int = Field(
        default=1, ge=1, le=16, description="Models trained with seeds seed, seed+1, ...; predictions averaged."
    )
    clip_predictions: bool = Field(default=True, description="Clip served ratings to the 1-5 scale.")
    # --- the list head (recsys/model/retrieval.py): what orders the published ranking ---
    retrieval_dim: int = Field(
        default=0, ge=0, le=1024, description="Size of the list head's query/candidate vectors; 0 = rank by rating."
    )
    retrieval_min_rating: int = Field(
        default=4, ge=1, le=5, description="Training ratings at or above this are the list head's positives."
    )
    retrieval_bag_dropout: float = Field(
        default=0.5, ge=0.0, lt=1.0, description="Share of the list head's history bag hidden per training step."
    )
    retrieval_l2: float = Field(default=1e-5, ge=0.0, le=1.0, description="L2 on the list head's embeddings.")
    retrieval_epochs: int = Field(default=30, ge=1, le=1000, description="Most epochs of the list head.")
    retrieval_members: int = Field(
        default=1, ge=1, le=16, description="List heads trained with seeds seed, seed+1, ...; scores averaged."
    )
    retrieval_id_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of catalogue movies whose id and bias the list head hides per training step, "
        "so it learns to rank a movie from its features alone (a new movie).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if any(w < 1 or w > 8192 for w in self.hidden_layers):
            raise ValueError("hidden_layers widths must be between 1 and 8192")
        if not self.hidden_layers and self.dot_dim == 0 and not self.use_biases:
            raise ValueError("the model needs at least one of hidden_layers, dot_dim > 0, use_biases")
        if self.early_stopping_patience > 0 and self.validation_fraction == 0:
            raise ValueError("early stopping needs validation_fraction > 0")
        if (self.bag_ratings or self.bag_centered) and not (self.use_user_bag or self.use_movie_bag):
            raise ValueError("bag_ratings and bag_centered need use_user_bag or use_movie_bag")
        return self

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed, validated like a new config."""
        return build_config({**self.model_dump(), **changes})

    def to_json(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


# The recipe of the issue's prototype plus what validation on u1's training slice favoured
# (docs/MODEL.md, "How the hyperparameters were chosen").
_FULL: dict[str, Any] = {
    "name": "full",
    "hidden_layers": (128,),
    "dropout": 0.4,
    "l2_embedding": 1e-4,
    "ensemble_size": 5,
    "id_dropout": 0.1,
    "retrieval_dim": 64,
    "retrieval_members": 3,
    "retrieval_id_dropout": 0.2,
}

# The original design: two towers of side-feature embeddings, concatenated into
# Dense(256)-Dense(64)-Dense(1), Adagrad(0.1), batch 8192, three epochs, nothing else.
_SEED_FAITHFUL: dict[str, Any] = {
    "name": "seed_faithful",
    "id_dim": 32,
    "side_dim": 32,
    "dot_dim": 0,
    "hidden_layers": (256, 64),
    "use_biases": False,
    "title_mode": "whole",
    "use_user_bag": False,
    "use_movie_bag": False,
    "dropout": 0.0,
    "l2_embedding": 0.0,
    "l2_dense": 0.0,
    "optimizer": "adagrad",
    "learning_rate": 0.1,
    "batch_size": 8192,
    "epochs": 3,
    "early_stopping_patience": 0,
    "validation_fraction": 0.0,
    "clip_predictions": False,
}

# Small enough to train in seconds inside the test suite; still every code path.
_TINY: dict[str, Any] = {
    "name": "tiny",
    "id_dim": 4,
    "side_dim": 2,
    "bag_dim": 4,
    "dot_dim": 4,
    "hidden_layers": (8, 4),
    "bag_ratings": True,
    "bag_centered": True,
    "bag_dropout": 0.1,
    "id_dropout": 0.05,
    "ensemble_size": 2,
    "batch_size": 256,
    "epochs": 2,
    "early_stopping_patience": 1,
    "validation_fraction": 0.1,
    "retrieval_dim": 4,
    "retrieval_epochs": 2,
    "retrieval_members": 2,
}

# The smallest model that still has every part (side features, bags, a list head): one pass,
# one member, one head. For checking an installation or a pipeline end to end, not for use.
_SMOKE: dict[str, Any] = {
    **_TINY,
    "name": "smoke",
    "ensemble_size": 1,
    "epochs": 1,
    "batch_size": 1024,
    "retrieval_epochs": 1,
    "retrieval_members": 1,
}

# The plain TFRS ranking model: user and movie ids only, no side features, no history bags.
_IDS_ONLY: dict[str, Any] = {
    "name": "ids_only",
    "use_side_features": False,
    "use_user_bag": False,
    "use_movie_bag": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    "full": _FULL,
    "seed_faithful": _SEED_FAITHFUL,
    "tiny": _TINY,
    "smoke": _SMOKE,
    "ids_only": _IDS_ONLY,
}


def build_config(values: dict[str, Any]) -> ModelConfig:
    """Validate raw values into a config; any problem becomes one ``ConfigError``."""
    try:
        return ModelConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid model config: {problems}") from None
    except TypeError as exc:
        raise ConfigError(f"invalid model config: {exc}") from None


def preset(name: str, **overrides: Any) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return build_config({**PRESETS[name], **overrides})


def load_config(spec: str, **overrides: Any) -> ModelConfig:
    """A preset name, or a JSON/YAML file (optionally ``preset: NAME`` plus overrides)."""
    if spec in PRESETS:
        return preset(spec, **overrides)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"model config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model config {path}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"model config {path} must be a mapping of field: value")
    base = values.pop("preset", None)
    values.setdefault("name", path.stem)
    if base is not None:
        if base not in PRESETS:
            raise ConfigError(f"{path}: unknown preset {base!r}")
        values = {**PRESETS[base], **values}
    return build_config({**values, **overrides})
