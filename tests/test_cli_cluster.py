"""The cluster engine: a local 2-worker Dask cluster started by the run itself gives the
sequential verdicts and bounds, into the same results file format, and resumes."""

from __future__ import annotations

import pytest

from relax.cli import main
from tests.test_cli_runs import listing, rows_of  # noqa: F401 (fixture)

pytest.importorskip("dask.distributed", reason="the cluster extra is not installed "
                                               "(pip install 'relax[cluster]')")


def test_local_dask_cluster_gives_the_sequential_rows(listing, tmp_path):  # noqa: F811
    one, cluster = tmp_path / "one.csv", tmp_path / "cluster.csv"
    base = ["verify", "--instances", str(listing), "--method", "crown"]
    assert main([*base, "--output", str(one)]) == 0
    lines = None
    assert main([*base, "--output", str(cluster), "--engine", "dask", "--workers", "2"]) == 0
    first, second = rows_of(one), rows_of(cluster)
    assert len(second) == 6 and first.keys() == second.keys()
    for key, row in first.items():
        assert (row["verdict"], row["bound"]) == (second[key]["verdict"], second[key]["bound"])
    lines = cluster.read_text().splitlines()
    cluster.write_text("\n".join(lines[:3]) + "\n")
    assert main([*base, "--output", str(cluster), "--engine", "dask", "--workers", "2",
                 "--resume"]) == 0
    assert cluster.read_text().splitlines()[:3] == lines[:3] and len(rows_of(cluster)) == 6
