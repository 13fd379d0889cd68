"""Ramps for eps and loss weights as a function of training progress in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Ramp"]


@dataclass(frozen=True)
class Ramp:
    """``start`` until ``begin``, linear to ``end`` at ``finish``, then ``end``."""

    start: float
    end: float
    begin: float = 0.0
    finish: float = 0.5

    def __call__(self, progress: float) -> float:
        if self.finish <= self.begin:
            return self.end if progress >= self.begin else self.start
        t = min(max((progress - self.begin) / (self.finish - self.begin), 0.0), 1.0)
        return self.start + t * (self.end - self.start)

    @classmethod
    def constant(cls, value: float) -> "Ramp":
        return cls(value, value)
