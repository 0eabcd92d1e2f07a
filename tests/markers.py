"""Test markers that depend on this machine."""

import pytest

from ddpgkit.runtime import cpu_has_bf16

# bf16 is refused on CPUs without bfloat16 instructions (runtime.check_precision); its tests run where it runs
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")
