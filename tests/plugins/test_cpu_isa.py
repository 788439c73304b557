"""The one CPU ISA detection (plugins/common/cpuIsa.h) as every op's test shim reports it: the same level for the ops on
cpuIsa(), MatMulW8/W4's cpuIsaVnni() at most that, and both what the kernel's CPU flags (/proc/cpuinfo) imply."""
from __future__ import annotations

from pathlib import Path

import pytest
from continuous_gaussian_attention_inputs import cga_isa
from kernel_shim import matmul_w8_isa, matmul_wf16_isa
from ltm_update_inputs import ltm_isa

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> set[str]:
    """The first CPU's flags in /proc/cpuinfo; skips where there is none (not Linux on x86)."""
    if not CPUINFO.exists():
        pytest.skip("no /proc/cpuinfo: the CPU's flags are unknown")
    for line in CPUINFO.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo has no 'flags' line (not x86)")


def expected_levels(flags: set[str]) -> tuple[int, int]:
    """(cpuIsa(), cpuIsaVnni()) as cpuIsa.h defines the levels: 1 = AVX2 + FMA + F16C, 2 = that + AVX512F/BW/VL,
    and cpuIsaVnni()'s 2 also AVX512DQ and AVX512_VNNI."""
    level = 0
    if {"avx2", "fma", "f16c"} <= flags:
        level = 2 if {"avx512f", "avx512bw", "avx512vl"} <= flags else 1
    vnni = level if level < 2 or {"avx512dq", "avx512_vnni"} <= flags else 1
    return level, vnni


def test_every_op_reports_the_one_detection():
    level, vnni = expected_levels(cpu_flags())
    assert (ltm_isa(), cga_isa(), matmul_wf16_isa()) == (level, level, level)
    assert matmul_w8_isa() == vnni
