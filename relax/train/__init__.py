"""Certified training: a small training loop with composable loss terms.

- :mod:`relax.train.loop`: :class:`LossTerm`, :class:`TrainConfig`, :func:`train`;
- :mod:`relax.train.data`, :mod:`relax.train.models`, :mod:`relax.train.export`;
- :mod:`relax.train.evaluate`: clean, PGD and (sound) certified error;
- loss terms: :mod:`~relax.train.standard` (cross-entropy), :mod:`~relax.train.pgd`
  (adversarial training), :mod:`~relax.train.ibp` (Gowal et al. 2018),
  :mod:`~relax.train.crown_ibp` (Zhang et al. 2020), :mod:`~relax.train.singleprop`
  (Boopathy et al. 2021), :mod:`~relax.train.zhu` (Zhu et al. 2020 tightness regularisers),
  :mod:`~relax.train.sdp_cert` (Raghunathan et al. 2018; its lambda_max tracker is the batched
  Lanczos of :mod:`~relax.train.lanczos`), :mod:`~relax.train.crt` (Singla & Feizi 2020).

Training bounds live in :mod:`relax.train.bounds` (differentiable, float32);
certification always goes through relax's sound float64 methods.
"""

from relax.train.loop import LossTerm, TrainConfig, TrainLog, train

__all__ = ["LossTerm", "TrainConfig", "TrainLog", "train"]
