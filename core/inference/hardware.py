"""What the CPU offers inference: bfloat16 units (AVX512_BF16 / AMX), read from ``/proc/cpuinfo``."""

from __future__ import annotations


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            return fh.read(1 << 16)
    except OSError:
        return ""


def bfloat16_units() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX); elsewhere OpenVINO runs float32."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amx_bf16_supported() -> bool:
    """True when the CPU has AMX bfloat16 tiles (Sapphire Rapids and later), where bfloat16 is several times
    faster than float32; on CPUs with only AVX512_BF16 the gain is small and ``auto`` stays at float32."""
    return "amx_bf16" in cpu_flags()
