"""How much more noise the RDP accountant asks for than PRV, for the same (epsilon, delta) budget.

forgeml calibrates DP-SGD's noise with Opacus' ``get_noise_multiplier`` (through
``PrivacyEngine.make_private_with_epsilon``), for the accountant named by ``train.privacy.accountant``. This script
asks the same function for both accountants with the step count and sample rate of benchmarks/privacy_epsilon.py
(bundled:digits, quickstart split: 1,257 training rows, batch 256 -> Opacus' sample rate 1/5 = 0.2, 30 epochs =
150 steps, delta 1e-5) and of the breast-cancer example in docs/privacy.md (batch 64 of 398 training rows -> 1/7,
20 epochs = 140 steps; its prv noise, 2.568 at epsilon 3, is the one that run reports).
No model is trained (about 25 s of CPU, most of it the PRV accountant). docs/privacy.md quotes its output.

    .venv/bin/python examples/privacy_accountants.py [--epsilons 1,3,8]
"""
from __future__ import annotations

import argparse
import math
import warnings

SETTINGS = [  # (name, training rows, batch size, epochs, delta)
    ("bundled:digits (benchmarks/privacy_epsilon.py)", 1257, 256, 30, 1e-5),
    ("bundled:breast_cancer (docs/privacy.md example)", 398, 64, 20, 1e-5),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", default="1,3,8")
    args = ap.parse_args(argv)
    from opacus.accountants.utils import get_noise_multiplier

    print("| data | epsilon | steps | sample rate | noise (prv) | noise (rdp) | rdp / prv |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows, batch, epochs, delta in SETTINGS:
        sample_rate = 1 / math.ceil(rows / batch)  # Opacus' DPDataLoader: 1 / batches per epoch
        for eps in (float(e) for e in args.epsilons.split(",")):
            sigma = {}
            for accountant in ("prv", "rdp"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sigma[accountant] = get_noise_multiplier(target_epsilon=eps, target_delta=delta,
                                                             sample_rate=sample_rate, epochs=epochs,
                                                             accountant=accountant)
            print(f"| {name} | {eps:g} | {epochs * round(1 / sample_rate)} | {sample_rate:.4f} | {sigma['prv']:.3f} | "
                  f"{sigma['rdp']:.3f} | {sigma['rdp'] / sigma['prv']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
