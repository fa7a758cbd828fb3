"""bitsandbytes' packed CPU path for 4-bit layers: the library behaviour the trainer depends on, and the guard."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
bnb = pytest.importorskip("bitsandbytes")

from vibeml.trainer.bnb_compat import guard_cpu_4bit_packing  # noqa: E402


def _packs_on_this_cpu() -> bool:
    import bitsandbytes.functional as F

    has = getattr(F, "has_avx512bf16", None)
    return bool(has and has())


def _layer(in_features: int, out_features: int) -> Any:
    """A bitsandbytes 4-bit NF4 layer on the CPU, quantised, in eval mode (as when sampling after training)."""
    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(in_features, out_features, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(
        torch.randn(out_features, in_features) * 0.02, requires_grad=False, quant_type="nf4"
    )
    layer = layer.to("cpu")
    layer.weight = layer.weight.to("cpu")  # quantises
    return layer.eval()


def _run(layer: Any, in_features: int) -> Any:
    with torch.inference_mode():
        return layer(torch.randn(2, in_features))


needs_packed_path = pytest.mark.skipif(
    not hasattr(getattr(bnb, "functional", None), "_convert_weight_packed_for_cpu") or not _packs_on_this_cpu(),
    reason="this bitsandbytes or CPU has no packed 4-bit CPU kernel (bitsandbytes >= 0.49 on AVX512-BF16)",
)


@needs_packed_path
def test_bitsandbytes_packed_cpu_4bit_kernel_asserts_output_width_divisible_by_32() -> None:
    """bitsandbytes >= 0.49 (0.50.2 locked): a no-grad eval forward on the CPU repacks a 4-bit layer for its
    AVX512-BF16 kernel and asserts `N must be divisible by block_n` (32). This is why the qlora script crashed
    in its final sample() on the old demo model (MLP width 688) — and what the guard below keeps off."""
    with pytest.raises(AssertionError, match="divisible by block_n"):
        _run(_layer(64, 48), 64)
    assert _run(_layer(64, 64), 64).shape == (2, 64)  # widths it divides take the packed kernel fine


@needs_packed_path
def test_guard_keeps_the_packed_kernel_off_only_the_layers_it_cannot_take() -> None:
    model = torch.nn.Sequential(_layer(64, 48), torch.nn.Identity(), _layer(64, 64))
    assert guard_cpu_4bit_packing(model) == 1
    assert not model[0].support_avx512bf16_for_cpu and model[2].support_avx512bf16_for_cpu
    weight = bnb.functional.dequantize_4bit(model[0].weight.data, model[0].weight.quant_state)
    x = torch.randn(2, 64)
    with torch.inference_mode():
        out = model[0](x)
    assert out.shape == (2, 48) and torch.allclose(out, x @ weight.T, atol=1e-4)  # the generic 4-bit path
    assert guard_cpu_4bit_packing(model) == 0  # idempotent


def test_guard_is_a_no_op_without_4bit_layers() -> None:
    assert guard_cpu_4bit_packing(torch.nn.Sequential(torch.nn.Linear(3, 5))) == 0
