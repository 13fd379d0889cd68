"""Running instance lists: the results file (:mod:`relax.runs.records`), local
execution in one or several processes (:mod:`relax.runs.local`) and on a
distributed engine (:mod:`relax.runs.cluster`)."""

from relax.runs.local import RunPlan, run_plan
from relax.runs.records import ResultsFile, run_metadata

__all__ = ["RunPlan", "run_plan", "ResultsFile", "run_metadata"]
