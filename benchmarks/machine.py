"""A one-line description of the machine a benchmark ran on, for every table."""

from __future__ import annotations

import os
import platform


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def data_root():
    """The shared data: ``$RELAX_DATA`` or ``../shared/data`` beside the checkout."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("RELAX_DATA", repo.parent / "shared" / "data"))
