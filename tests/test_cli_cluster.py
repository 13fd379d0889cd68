"""The cluster engines: a local 2-worker cluster started by the run itself gives the
sequential verdicts and bounds, into the same results file format, and resumes."""

from __future__ import annotations

import logging

import pytest

from relax.cli import main
from tests.test_cli_runs import listing, rows_of  # noqa: F401 (fixture)


def _same_rows_and_resume(listing, tmp_path, engine):  # noqa: F811
    one, cluster = tmp_path / "one.csv", tmp_path / f"{engine}.csv"
    base = ["verify", "--instances", str(listing), "--method", "crown"]
    assert main([*base, "--output", str(one)]) == 0
    assert main([*base, "--output", str(cluster), "--engine", engine, "--workers", "2"]) == 0
    first, second = rows_of(one), rows_of(cluster)
    assert len(second) == 6 and first.keys() == second.keys()
    for key, row in first.items():
        assert (row["verdict"], row["bound"]) == (second[key]["verdict"], second[key]["bound"])
    lines = cluster.read_text().splitlines()
    cluster.write_text("\n".join(lines[:3]) + "\n")
    assert main([*base, "--output", str(cluster), "--engine", engine, "--workers", "2",
                 "--resume"]) == 0
    assert cluster.read_text().splitlines()[:3] == lines[:3] and len(rows_of(cluster)) == 6


def test_local_ray_cluster_gives_the_sequential_rows(listing, tmp_path):  # noqa: F811
    pytest.importorskip("ray", reason="the cluster extra is not installed "
                                      "(pip install 'relax[cluster]')")
    _same_rows_and_resume(listing, tmp_path, "ray")


def test_local_dask_cluster_gives_the_sequential_rows(listing, tmp_path):  # noqa: F811
    pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed")
    _same_rows_and_resume(listing, tmp_path, "dask")


def test_an_existing_dask_cluster_by_address(listing, tmp_path):  # noqa: F811
    """--cluster ADDRESS: the run uses a scheduler someone else started (here: the test)."""
    distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed")
    out = tmp_path / "r.csv"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        assert main(["verify", "--instances", str(listing), "--method", "ibp", "--output",
                     str(out), "--engine", "dask", "--cluster", cluster.scheduler_address]) == 0
        assert len(cluster.scheduler.workers) == 2  # still up: the run did not close it
    rows = rows_of(out)
    assert len(rows) == 6 and all(r["verdict"] in {"holds", "violated", "unknown"}
                                  for r in rows.values())
