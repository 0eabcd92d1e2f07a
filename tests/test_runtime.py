"""What the runtime knows about this machine: CPU features for bf16, the device, the thread policy."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.errors import ConfigError
from ddpgkit.runtime import check_precision, cpu_description, cpu_has_bf16, cpu_summary, resolve_device

from tests.clihelp import assert_one_line_error, run_cli

CPU = torch.device("cpu")


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions():
    avx2_only = frozenset({"sse4_2", "avx", "avx2", "fma"})  # the AMD EPYC of issue 9
    with pytest.raises(ConfigError, match="precision bf16 needs a CPU with bfloat16 instructions.*use fp32"):
        check_precision("bf16", CPU, avx2_only)
    for flags in ({"avx512f", "avx512_bf16"}, {"amx_bf16", "amx_tile"}, {"asimd", "bf16"}):  # x86 AVX-512/AMX, Arm
        check_precision("bf16", CPU, frozenset(flags))
    check_precision("fp32", CPU, avx2_only)
    check_precision("bf16", torch.device("cuda"), avx2_only)  # GPUs are not judged by the host CPU


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="Linux only")
def test_cpu_flags_are_read_from_proc_cpuinfo():
    text = Path("/proc/cpuinfo").read_text()
    line = next(ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features"))
    model, flags = cpu_description()
    assert flags == frozenset(line.split(":", 1)[1].split())
    assert model in text or model == (platform.processor() or platform.machine())
    assert model in cpu_summary()
    assert cpu_has_bf16() == any(f in flags for f in ("avx512_bf16", "amx_bf16", "bf16"))


def test_bf16_on_this_machine_runs_or_says_why_in_one_line(tmp_path, capsys):
    args = ["train", "ddpgkit/Mirror-v0", "--precision", "bf16", "--steps", "60", "--learning-starts", "20",
            "--batch-size", "8", "--hidden", "16,16", "--eval-episodes", "2", "--out", tmp_path / "run"]
    if cpu_has_bf16():
        assert DDPG("ddpgkit/Mirror-v0", DDPGConfig(precision="bf16")).config.precision == "bf16"
        assert run_cli(capsys, *args).code == 0
    else:
        with pytest.raises(ConfigError, match="bfloat16 instructions"):
            DDPG("ddpgkit/Mirror-v0", DDPGConfig(precision="bf16"))
        assert_one_line_error(run_cli(capsys, *args), "precision bf16 needs a CPU with bfloat16 instructions")


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


_MALLOC = r"""
import ctypes, json, sys, torch
from ddpgkit.runtime import keep_freed_memory
class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.empty(5 * 2**20)  # 20 MB, like a large group's activations
held = mallinfo2()
del x
freed = mallinfo2()
print(json.dumps({"kept": kept, "mapped": held.hblkhd, "free_in_heap": freed.fordblks}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_serves_large_tensors_from_the_heap_and_keeps_them():
    """glibc's default maps a 20 MB tensor on its own and unmaps it when freed (pages faulted in anew
    on every allocation); after keep_freed_memory (what training sets) it comes from the heap and its
    memory stays there for the next allocation."""
    out = {}
    for mode in ("default", "keep"):
        r = subprocess.run([sys.executable, "-c", _MALLOC, mode], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out[mode] = json.loads(r.stdout)
    mb20 = 20 * 2**20
    assert out["default"]["mapped"] >= mb20  # its own mapping
    assert out["keep"]["kept"] is True and out["keep"]["mapped"] < mb20  # from the heap
    assert out["keep"]["free_in_heap"] >= mb20  # and kept after it was freed
