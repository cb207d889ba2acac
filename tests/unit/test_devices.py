"""GPU and precision choices, on a CPU-only machine: the pure rules, and that nothing changes
when no GPU is visible."""

from pathlib import Path

import pytest

from lookalike.similarity.config import ConfigError, TrainConfig
from lookalike.spark import gpu_confs
from lookalike.training import devices
from lookalike.training.search import gpu_resource_profile

AVX2 = frozenset({"sse4_2", "avx2", "fma"})
BF16 = AVX2 | {"avx512f", "avx512_bf16"}


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 amx_bf16\nbugs\t: none\n")
    assert devices.cpu_flags(info) == {"fpu", "sse4_2", "avx2", "amx_bf16"}
    assert devices.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("requested", "gpus", "flags", "policy"),
    [
        ("float32", 1, BF16, "float32"),  # the default never changes
        ("mixed", 1, AVX2, "mixed_float16"),  # a GPU: float16 with loss scaling
        ("mixed", 0, BF16, "mixed_bfloat16"),  # a CPU with native bfloat16
        ("mixed", 0, AVX2 | {"amx_bf16"}, "mixed_bfloat16"),
        ("mixed", 0, AVX2, "float32"),  # emulated bfloat16 measured 6x slower: not chosen
        ("mixed_bfloat16", 0, AVX2, "mixed_bfloat16"),  # forced
        ("mixed_float16", 0, AVX2, "mixed_float16"),
    ],
)
def test_precision_resolves_by_device(requested, gpus, flags, policy):
    assert devices.resolve_precision(requested, gpus, flags) == policy


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="precision"):
        devices.resolve_precision("half", 0, AVX2)


@pytest.mark.parametrize(
    ("local_rank", "visible", "assigned", "index"),
    [
        (0, 0, (), None),  # CPU only
        (1, 4, (), 1),  # by local rank
        (5, 4, (), 1),  # more ranks than GPUs: round-robin
        (0, 4, ("3",), 3),  # Spark's assignment wins
        (2, 4, ("7",), 2),  # an assignment this process cannot see: local rank
    ],
)
def test_each_process_takes_one_gpu(local_rank, visible, assigned, index):
    assert devices.gpu_index(local_rank, visible, assigned) == index


def test_a_cpu_only_host_pins_nothing_and_trains_in_float32():
    assert devices.pin_gpu(0) is None
    assert devices.training_policy("float32") == "float32"


def test_gpu_requests_reach_spark_only_when_asked():
    assert gpu_confs(0) == {}
    assert gpu_confs(1) == {"spark.task.resource.gpu.amount": "1"}
    assert gpu_confs(0.5) == {"spark.task.resource.gpu.amount": "0.5"}
    assert gpu_resource_profile(0) is None
    profile = gpu_resource_profile(1)
    assert profile.taskResources["gpu"].amount == 1.0
