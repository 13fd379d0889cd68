"""Typed errors raised by relax.

Every error a user can provoke with bad input is a :class:`RelaxError`; the CLI
turns it into one line on stderr and exit code 2.  Library code never prints.
"""

from __future__ import annotations


class RelaxError(Exception):
    """Base class of every user-facing error in relax."""


class NetworkError(RelaxError):
    """A network cannot be loaded or is malformed (shapes, NaN/Inf weights)."""


class UnsupportedOperatorError(NetworkError):
    """An ONNX node or torch module that the IR cannot represent."""

    def __init__(self, node: str, operator: str, supported: tuple[str, ...], detail: str = ""):
        self.node = node
        self.operator = operator
        self.supported = supported
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"unsupported operator {operator!r} at node {node!r}{extra}; "
            f"supported: {', '.join(sorted(supported))}"
        )


class SpecError(RelaxError):
    """A property is malformed or does not fit the network."""


class VnnlibSyntaxError(SpecError):
    """A VNNLIB file that cannot be parsed; carries the line and column."""

    def __init__(self, message: str, path: str, line: int, column: int):
        self.path = path
        self.line = line
        self.column = column
        super().__init__(f"{path}:{line}:{column}: {message}")


class DataError(RelaxError):
    """Missing or malformed data files (MNIST, instance lists)."""


class UsageError(RelaxError):
    """Bad combination of options (unknown method, bad eps, ...)."""


class UnsupportedNetworkError(UsageError):
    """A method that cannot bound this network soundly refuses it (for example k-ReLU on a
    sigmoid network: its relaxations are those of the ReLU)."""
