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


def run_in_checkout(code, program: str, argv: list[str], timeout: float) -> dict:
    """Run ``program`` (Python source that prints one JSON object last) in a fresh process
    that imports the relax checkout at ``code`` (one thread for torch and BLAS); its
    object, or ``{"error": "..."}`` with the exit status and the last line of stderr."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", program, *map(str, argv)], env=env, check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=str(code))
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        return {"error": f"error {done.returncode}: {tail[0]}"}
