"""The experiment config: pydantic models mirroring the code's structure, loaded from YAML or CLI flags.

Every field has a default, so ``forgeml train --data X --target y`` works without a file. The model section is a
learner's ``name`` and its own parameters, whose class lives beside the learner (forgeml.config.models).
"""
from forgeml.config.base import FeatureType, Strict  # noqa: F401
from forgeml.config.data import (  # noqa: F401
    AugmentConfig, BalanceConfig, CleanConfig, DataConfig, ImageAugment, MissingConfig, OutlierConfig, SplitConfig,
    TableAugment, TextAugment, TextCleanConfig)
from forgeml.config.experiment import Config, TaskConfig, build_config, load_config, merge, run_config  # noqa: F401
from forgeml.config.models import AutoParams, ModelConfig, all_params, params_class  # noqa: F401
from forgeml.config.train import EarlyStopping, PrivacyConfig, TrackingConfig, TrainConfig  # noqa: F401
from forgeml.config.tune import Range, TuneConfig  # noqa: F401
