"""What a privacy budget can buy: the error for a budget no amount of noise reaches, with the smallest workable one."""
from __future__ import annotations

import warnings

from forgeml.errors import ConfigError


def too_small(epsilon: float, epochs: int, batches: int, delta: float, accountant: str) -> ConfigError:
    """The error for a budget no amount of noise reaches, with the smallest workable one."""
    rate = 1 / batches
    least, one = smallest_epsilon(rate, epochs, delta, accountant), smallest_epsilon(rate, 1, delta, accountant)
    return ConfigError(f"epsilon {epsilon:g} is too small for {epochs} epochs of {batches} batches: no amount of noise "
                       f"reaches it. The smallest workable epsilon here is about {least:.2g} for {epochs} epochs "
                       f"({one:.2g} for one epoch); raise epsilon, or train fewer epochs / larger batches")


def smallest_epsilon(sample_rate: float, epochs: int, delta: float, accountant: str) -> float:
    """The smallest epsilon Opacus can calibrate noise for: what these steps spend at its largest noise multiplier."""
    from opacus.accountants.utils import MAX_SIGMA, create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(MAX_SIGMA, sample_rate, int(epochs / sample_rate))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=delta))
