"""The shared defaults: the parallel job count that co-simulation, fault campaigns and sweeps
take when none is given."""

import os

import numpy as np
import pytest

from hwlenet.defaults import resolve_jobs
from hwlenet.errors import HwlenetError
from hwlenet.verify.cosim import bench_processes, run_cosim


@pytest.mark.parametrize("cpus", [{0}, {0, 1}, {1, 3, 5, 7, 9}])
def test_default_is_one_job_per_usable_cpu(monkeypatch, cpus):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cpus), raising=False)
    assert resolve_jobs(None) == len(cpus)


def test_default_without_cpu_affinity_counts_the_cpus(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert resolve_jobs(None) == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert resolve_jobs(None) == 1


@pytest.mark.parametrize("jobs", [1, 3, np.int64(4)])
def test_a_given_count_is_kept(jobs):
    assert resolve_jobs(jobs) == int(jobs) and type(resolve_jobs(jobs)) is int


@pytest.mark.parametrize("jobs", [0, -2, True, 1.5, "2"])
def test_a_bad_count_is_refused(jobs):
    with pytest.raises(HwlenetError, match="jobs must be a positive integer or None"):
        resolve_jobs(jobs)
    with pytest.raises(HwlenetError, match="^workers must be a positive integer or None"):
        resolve_jobs(jobs, "workers")


@pytest.mark.parametrize("simulator,jobs,images,expected", [
    ("verilator", 4, 10, 4), ("verilator", 4, 3, 3), ("icarus", None, 1, 1),
    ("amaranth", 4, 10, 1), ("verilator", None, 10_000, "cpus"),
])
def test_bench_processes(monkeypatch, simulator, jobs, images, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert bench_processes(simulator, jobs, images) == (3 if expected == "cpus" else expected)


def test_cosim_refuses_a_bad_job_count_before_reading_the_folder(tmp_path):
    with pytest.raises(HwlenetError, match="jobs must be"):
        run_cosim(tmp_path / "missing", "verilator", jobs=0)
