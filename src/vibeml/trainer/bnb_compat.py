"""bitsandbytes' packed CPU path for 4-bit layers, kept off the layers it cannot handle.

bitsandbytes 0.49 and newer repack a 4-bit layer's weights for a faster CPU kernel the first time the layer
runs without gradients in eval mode (generation, sampling) on a CPU with AVX512-BF16. That repacking asserts
that the layer's output width is a multiple of its row block (32 in 0.50.2: "N must be divisible by block_n")
and reshapes the scales per quantisation block along the input (64), so a model with any other width crashes
at its first generated token after training went well. :func:`guard_cpu_4bit_packing` turns the packed path off
for exactly those layers, which then use bitsandbytes' generic 4-bit CPU path; the rest keep the fast one.
With an older bitsandbytes (no packed path) it does nothing.

It imports nothing of VibeML: ``vibeml script`` copies this module into the scripts it writes.
"""

from typing import Any


def guard_cpu_4bit_packing(model: Any) -> int:
    """Keep bitsandbytes' packed CPU kernel off the 4-bit layers whose shapes it cannot take; returns how many."""
    try:
        import bitsandbytes.functional as bnb_functional
        from bitsandbytes.nn import Linear4bit
    except Exception:  # not installed, or no usable build: nothing is 4-bit then
        return 0
    packer = getattr(bnb_functional, "_convert_weight_packed_for_cpu", None)
    if packer is None:  # a bitsandbytes without the packed CPU path
        return 0
    import inspect

    try:
        row_block = int(inspect.signature(packer).parameters["block_n"].default)
    except (KeyError, TypeError, ValueError):
        row_block = 32
    guarded = 0
    for module in model.modules():
        if not isinstance(module, Linear4bit) or not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        state = getattr(module.weight, "quant_state", None)
        blocksize = int(getattr(state, "blocksize", 64) or 64)
        if module.out_features % row_block or module.in_features % blocksize:
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded
