"""LISA's residual quantiser and the LISA-Base/Soft/Mini layers."""

from __future__ import annotations

import pytest
import torch

from impls.attention.lisa import LISABase, LISAMini, LISASoft, ResidualQuantizer

LAYERS = [LISABase, LISASoft, LISAMini]


def test_quantiser_codes_are_residual_argmaxes_and_reconstruction_sums_codewords():
    torch.manual_seed(0)
    quant = ResidualQuantizer(6, num_codebooks=3, num_codewords=5).double()
    with torch.no_grad():
        quant.metric.add_(0.1 * torch.randn(6, 6, dtype=torch.float64))
    x = torch.randn(4, 7, 6, dtype=torch.float64)
    out = quant(x)
    assert out.codes.shape == (4, 7, 3) and out.probs.shape == (4, 7, 3, 5)
    residual = x
    expected = torch.zeros_like(x)
    for b in range(3):
        logits = residual @ quant.metric @ quant.codebooks[b].T
        assert torch.equal(out.codes[..., b], logits.argmax(-1))
        assert torch.allclose(out.probs[..., b, :], torch.softmax(logits / 0.7, -1))
        chosen = quant.codebooks[b][out.codes[..., b]]
        residual = residual - chosen
        expected = expected + chosen
    assert torch.allclose(out.reconstruction, expected, atol=1e-12)
    assert torch.allclose(out.probs.sum(-1), torch.ones(4, 7, 3, dtype=torch.float64))
    one_hot = torch.nn.functional.one_hot(out.codes, 5).to(torch.float64)
    assert torch.allclose(out.one_hot.detach(), one_hot, atol=1e-12, rtol=0)


def test_straight_through_gradient_is_the_gradient_of_the_soft_codes():
    torch.manual_seed(1)
    quant = ResidualQuantizer(4, num_codebooks=1, num_codewords=6).double()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 1, 6, dtype=torch.float64)
    (grad_st,) = torch.autograd.grad((quant(x).one_hot * weights).sum(), x)
    (grad_soft,) = torch.autograd.grad((quant(x).probs * weights).sum(), x)
    assert torch.allclose(grad_st, grad_soft)
    assert grad_st.abs().sum() > 0


def test_quantiser_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_codewords must be an int >= 1"):
        ResidualQuantizer(4, num_codewords=0)
    with pytest.raises(ValueError, match="tau must be a positive number"):
        ResidualQuantizer(4, tau=0)
    with pytest.raises(ValueError, match="last dim D=4"):
        ResidualQuantizer(4)(torch.randn(2, 5))


@pytest.mark.parametrize("layer_cls", LAYERS)
def test_layer_shapes_gradients_and_causality(layer_cls):
    torch.manual_seed(2)
    layer = layer_cls(8, num_codebooks=2, chunk_size=4).double()
    x = torch.randn(2, 13, 8, dtype=torch.float64, requires_grad=True)
    y = layer(x, causal=True)
    assert y.shape == (2, 13, 8) and y.dtype == torch.float64
    y.square().sum().backward()
    for name, p in layer.named_parameters():
        if name.startswith("target_quantizer"):
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    changed = x.detach().clone()
    changed[:, 6:] = torch.randn_like(changed[:, 6:])
    with torch.no_grad():
        before, after = layer(x.detach(), causal=True), layer(changed, causal=True)
    assert torch.equal(before[:, :6], after[:, :6])
    assert not torch.equal(before[:, 6:], after[:, 6:])


@pytest.mark.parametrize("layer_cls", LAYERS)
@pytest.mark.parametrize("causal", [True, False])
def test_layer_padded_positions_change_nothing_elsewhere(layer_cls, causal):
    torch.manual_seed(3)
    layer = layer_cls(8, num_codebooks=2, gamma=0.8).double().eval()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, [1, 4]] = True
    mask[1, 7:] = True
    changed = x.clone()
    changed[mask] = torch.randn_like(changed[mask]) * 4
    with torch.no_grad():
        a = layer(x, causal=causal, key_padding_mask=mask)
        b = layer(changed, causal=causal, key_padding_mask=mask)
    assert torch.allclose(a[~mask], b[~mask], atol=1e-12)


@pytest.mark.parametrize("layer_cls", [LISABase, LISAMini])
def test_straight_through_training_path_equals_the_hard_code_path(layer_cls):
    torch.manual_seed(4)
    layer = layer_cls(8, num_codebooks=3, gamma=0.9).double()
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    with torch.no_grad():
        hard = layer(x)
    soft = layer(x)  # grad mode: straight-through one-hots as soft codes
    assert soft.requires_grad
    assert torch.allclose(soft, hard, atol=1e-10)


def test_soft_regulariser_and_mini_target_codebook():
    soft = LISASoft(8, num_codebooks=2)
    soft(torch.randn(1, 5, 8))
    assert soft.regularizer is not None and soft.regularizer.item() >= 0
    mini = LISAMini(8, num_codebooks=2)
    assert mini.quantizer.num_codewords == 16
    assert mini.target_quantizer.num_codewords == 128
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L, D=8\)"):
        mini(torch.randn(5, 8))
