"""The authors' configuration of the LISA layers and of their SASRec wiring, pinned on cases
small enough to compute from the definitions (B = 1 or 2 codebooks, W = 2 codewords,
D = 2, L = 3, identity metric and projections), against the project's configuration."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from harness.cli import main
from harness.seqrec.sasrec import SASRec, make_attention_layer
from impls.attention.lisa_layers import (
    AUTHORS,
    PROJECT,
    LISABase,
    LISAConfig,
    LISAMini,
    LISASoft,
    lisa_config,
)
from impls.attention.lisa_quantizer import ResidualQuantizer

F64 = torch.float64
TAU = 0.7
GAMMA = 0.5
X = torch.tensor([[[2.0, 1.0], [0.0, 3.0], [1.0, -1.0]]], dtype=F64)  # (1, L=3, D=2)
C = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)  # W = 2 codewords of D = 2


def _small(cls, config, **kwargs):
    """cls with B = 1, W = 2, D = 2: codebook C, metric and q/k/v projections identity."""
    layer = cls(2, num_codebooks=1, num_codewords=2, gamma=GAMMA, config=config, **kwargs)
    layer = layer.double()
    with torch.no_grad():
        layer.quantizer.codebooks.copy_(C[None])
        layer.quantizer.metric.copy_(torch.eye(2, dtype=F64))
        for w in (layer.w_query, layer.w_key, layer.w_value):
            w.copy_(torch.eye(2, dtype=F64)[None])
    return layer


def _softmax(v):
    e = [math.exp(t / TAU) for t in v]
    return [t / sum(e) for t in e]


def _attend(keys, scores):
    """out_l = sum_w a[l, w] C[w], a[l] ∝ H_l(w) exp(scores[l][w]), H_l = sum_{j<=l}
    GAMMA^(l-j) keys[j] (causal; B = 1; Vc = C)."""
    out = []
    for l in range(len(keys)):
        hist = [sum(GAMMA ** (l - j) * keys[j][w] for j in range(l + 1)) for w in range(2)]
        weights = [hist[w] * math.exp(scores[l][w]) for w in range(2)]
        a = [w / sum(weights) for w in weights]
        out.append([a[0] * C[0, d].item() + a[1] * C[1, d].item() for d in range(2)])
    return torch.tensor([out], dtype=F64)


def test_presets_and_overrides():
    assert lisa_config() == AUTHORS and lisa_config("project") == PROJECT
    assert AUTHORS == LISAConfig()
    changed = lisa_config("authors", query_code_gradient=True)
    assert changed.query_code_gradient and changed.soft_residual == AUTHORS.soft_residual
    with pytest.raises(ValueError, match="unknown LISA config flag"):
        lisa_config("authors", nope=True)
    with pytest.raises(ValueError, match="must be one of"):
        lisa_config("paper")
    with pytest.raises(ValueError, match="soft_query"):
        LISAConfig(soft_query="raw")
    with pytest.raises(ValueError, match="must be a bool"):
        LISAConfig(soft_residual="yes")
    with pytest.raises(ValueError, match="item_init must be one of"):
        LISAConfig(item_init="zeros")
    assert LISABase(4, num_codebooks=1, num_codewords=2).config == AUTHORS  # the default


def test_soft_query_scores_are_the_row_of_its_own_argmax_code():
    """Logits = x C^T = x, codes u = (0, 1, 0), keys are the soft codes p_l; the authors'
    query l scores T[u_l] = C[u_l] C^T / sqrt(2), the project's x_l C^T / sqrt(2)."""
    probs = [_softmax(row) for row in X[0].tolist()]
    codes = [0, 1, 0]
    rows = [[float(C[u] @ C[w]) / math.sqrt(2) for w in range(2)] for u in codes]
    projected = [[float(X[0, l] @ C[w]) / math.sqrt(2) for w in range(2)] for l in range(3)]
    with torch.no_grad():
        authors = _small(LISASoft, "authors")(X)
        project = _small(LISASoft, "project")(X)
    torch.testing.assert_close(authors, _attend(probs, rows), rtol=0, atol=1e-12)
    torch.testing.assert_close(project, _attend(probs, projected), rtol=0, atol=1e-12)
    assert (authors - project).abs().max() > 1e-3


def test_soft_residual_subtracts_the_soft_mixture():
    """B = 2: r_2 = x - p_1 C_1 (authors) or x - C_1[u_1] (project); x_hat sums the same."""
    c2 = 0.5 * C
    x = torch.tensor([[2.0, 1.0]], dtype=F64)
    p1 = _softmax([2.0, 1.0])  # logits x C_1^T = x
    soft_r2 = [2.0 - p1[0], 1.0 - p1[1]]
    p2 = _softmax([0.5 * soft_r2[0], 0.5 * soft_r2[1]])  # logits r_2 C_2^T
    for soft in (True, False):
        quant = ResidualQuantizer(2, 2, 2, TAU, soft_residual=soft).double()
        with torch.no_grad():
            quant.codebooks.copy_(torch.stack([C, c2]))
        out = quant(x)
        if soft:
            expected_p2 = p2
            expected = [p1[d] + 0.5 * p2[d] for d in range(2)]  # p_1 C_1 + p_2 C_2
        else:  # r_2 = x - C_1[0] = (1, 1): logits (0.5, 0.5), a tie, code 0
            expected_p2 = [0.5, 0.5]
            expected = [1.5, 0.0]  # C_1[0] + C_2[0]
        torch.testing.assert_close(out.probs[0, 1], torch.tensor(expected_p2, dtype=F64))
        torch.testing.assert_close(out.reconstruction[0], torch.tensor(expected, dtype=F64))
        assert out.codes[0, 0] == 0


def test_soft_regulariser_with_padding():
    """Position 1 padded. Authors: 1e-2 * (||x_0 - p_0 C||^2 + ||x_2 - p_2 C||^2) / 2;
    project: mean over all 6 entries of (x - C[u])^2, the padded row included."""
    mask = torch.tensor([[False, True, False]])
    probs = [_softmax(row) for row in X[0].tolist()]
    soft_error = [sum((X[0, l, d].item() - probs[l][d]) ** 2 for d in range(2)) for l in (0, 2)]
    authors = _small(LISASoft, "authors")
    authors(X, key_padding_mask=mask)
    assert authors.regularizer.item() == pytest.approx(1e-2 * sum(soft_error) / 2, rel=1e-12)
    hard = C[[0, 1, 0]]
    project = _small(LISASoft, "project")
    project(X, key_padding_mask=mask)
    expected = ((X[0] - hard) ** 2).mean().item()  # (1 + 1 + 0 + 4 + 0 + 1) / 6
    assert project.regularizer.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(7 / 6)


def _dense_base(layer, x, query_gradient: bool):
    """LISA-Base from the definition (B = 1): keys straight-through one-hots, queries the
    one-hot of their own code, straight-through only when ``query_gradient``."""
    quant = layer.quantizer(x)
    p = quant.probs[0, :, 0]  # (L, W)
    hard = torch.nn.functional.one_hot(quant.codes[0, :, 0], 2).to(F64)
    st = hard + p - p.detach()
    queries = st if query_gradient else hard
    cb = layer.quantizer.codebooks[0]
    qc, kc, vc = (cb @ w[0] for w in (layer.w_query, layer.w_key, layer.w_value))
    table = qc @ kc.T / math.sqrt(2)
    rows = []
    for l in range(x.shape[1]):
        hist = sum(GAMMA ** (l - j) * st[j] for j in range(l + 1))
        weights = hist * torch.exp(queries[l] @ table)
        rows.append((weights / weights.sum()) @ vc)
    return torch.stack(rows)[None]


@pytest.mark.parametrize("cls", [LISABase, LISAMini])
def test_query_code_is_a_detached_index_in_the_authors_configuration(cls):
    weight = torch.tensor([[[1.0, -2.0], [0.5, 1.5], [-1.0, 0.25]]], dtype=F64)
    grads, outs = {}, {}
    for name, query_gradient in (("authors", False), ("project", True)):
        layer = _small(cls, name)
        with torch.no_grad():  # some mixing so that every gradient is non-trivial
            layer.w_query.add_(torch.tensor([[[0.0, 0.3], [-0.2, 0.0]]], dtype=F64))
        params = (layer.quantizer.codebooks, layer.quantizer.metric, layer.w_query)
        x = X.clone().requires_grad_(True)
        out = layer(x)
        got = torch.autograd.grad((out * weight).sum(), (x, *params))
        x2 = X.clone().requires_grad_(True)
        ref = _dense_base(layer, x2, query_gradient)
        want = torch.autograd.grad((ref * weight).sum(), (x2, *params))
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        grads[name], outs[name] = got[0], out.detach()
    torch.testing.assert_close(outs["authors"], outs["project"], rtol=0, atol=0)  # same values
    assert (grads["authors"] - grads["project"]).abs().max() > 1e-3  # different gradients


def test_query_code_gradient_flag_also_applies_to_the_code_query_of_soft():
    weight = torch.tensor([[[1.0, -2.0], [0.5, 1.5], [-1.0, 0.25]]], dtype=F64)
    grads = []
    for config in (lisa_config("authors", query_code_gradient=True), AUTHORS):
        layer = _small(LISASoft, config)
        x = X.clone().requires_grad_(True)
        grads.append(torch.autograd.grad((layer(x) * weight).sum(), x)[0])
    assert (grads[0] - grads[1]).abs().max() > 1e-6


def _sasrec(method, config, d=2, n_items=5, dropout=0.0):
    torch.manual_seed(0)
    layer = make_attention_layer(method, d, lisa_config=config, num_codebooks=1)
    return SASRec(n_items, layer, d_model=d, max_len=4, dropout=dropout).double()


@pytest.mark.parametrize("method", ["lisa-base", "lisa-soft", "lisa-mini"])
def test_authors_targets_are_not_divided_by_sqrt_d(method):
    ids = torch.tensor([[1, 3], [4, 4]])
    for config in ("authors", "project"):
        model = _sasrec(method, config)
        emb = model.item_emb(ids) * model.input_scale
        if method == "lisa-mini":
            quantiser = model.attention.target_quantizer
        elif method == "lisa-base" and config == "authors":
            quantiser = model.attention.quantizer
        else:
            quantiser = None
        target = emb if quantiser is None else quantiser(emb).reconstruction
        if config == "project":
            target = target / model.input_scale
        torch.testing.assert_close(model.item_vectors(ids), target, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["lisa-base", "lisa-soft", "lisa-mini"])
def test_authors_wiring_quantises_the_clean_input_and_streams_the_reconstruction(method):
    model = _sasrec(method, "authors", dropout=0.5)
    seq = torch.tensor([[0, 2, 5, 1]])
    seen = {}
    model.attention.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    model.train()
    model(seq)
    clean = model.item_emb(seq) * model.input_scale
    torch.testing.assert_close(seen["x"], clean, rtol=0, atol=0)  # not dropped out
    model.eval()
    with torch.no_grad():
        h = model(seq)
        x_hat = model.attention.reconstruction * (seq != 0)[..., None]
        a = model.attention(clean, causal=True, key_padding_mask=seq == 0)
        pos = model.pos_emb(torch.arange(4))
        want = model.norm1(x_hat + pos + a)
        want = model.norm2(want + model.ffn(want)) * (seq != 0)[..., None]
    torch.testing.assert_close(h, want, rtol=0, atol=1e-12)
    project = _sasrec(method, "project").eval()
    with torch.no_grad():
        e = project.item_emb(seq) * project.input_scale
        a = project.attention(e, causal=True, key_padding_mask=seq == 0)
        want = project.norm1(e + project.pos_emb(torch.arange(4)) + a)
        want = project.norm2(want + project.ffn(want)) * (seq != 0)[..., None]
        torch.testing.assert_close(project(seq), want, rtol=0, atol=1e-12)


def test_authors_initial_scores_are_sqrt_d_times_larger():
    """The authors' targets stay at the sequence's scale: with N(0, 1/D) embeddings
    (``item_init="normal"``) the initial scores have standard deviation ~sqrt(D) (the
    project's ~1)."""
    seq = torch.randint(1, 401, (8, 12), generator=torch.Generator().manual_seed(2))
    cand = torch.randint(1, 401, (8, 12, 20), generator=torch.Generator().manual_seed(3))
    sd = {}
    for name, config in (
        ("authors", lisa_config("authors", item_init="normal")),
        ("project", "project"),
    ):
        torch.manual_seed(0)
        layer = make_attention_layer("lisa-base", 128, lisa_config=config)
        model = SASRec(400, layer, d_model=128, max_len=12).eval()
        with torch.no_grad():
            sd[name] = model.score(model(seq), cand).std().item()
    assert 0.3 < sd["project"] < 3.0
    assert sd["authors"] > 4 * sd["project"], sd


@pytest.mark.parametrize("method", ["lisa-base", "lisa-soft", "lisa-mini"])
def test_authors_item_embeddings_are_xavier_normal(method):
    """Authors: E (n + 1, D) ~ Xavier-normal, std sqrt(2 / (n + 1 + D)); project: N(0, 1/D);
    the padding row is zero in both. Non-LISA layers always get N(0, 1/D)."""
    n, d = 3000, 64
    stds = {}
    for config in ("authors", "project"):
        torch.manual_seed(0)
        model = SASRec(n, make_attention_layer(method, d, lisa_config=config), d_model=d, max_len=8)
        weight = model.item_emb.weight.detach()
        assert torch.count_nonzero(weight[0]) == 0
        stds[config] = weight[1:].std().item()
    assert stds["authors"] == pytest.approx(math.sqrt(2 / (n + 1 + d)), rel=0.03)
    assert stds["project"] == pytest.approx(d**-0.5, rel=0.03)
    torch.manual_seed(0)
    peer = SASRec(n, make_attention_layer("sdpa", d, lisa_config="authors"), d_model=d, max_len=8)
    assert peer.item_emb.weight[1:].std().item() == pytest.approx(d**-0.5, rel=0.03)


def test_seqrec_command_records_the_lisa_configuration(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(16):
        for t in range(6):
            lines.append(f"u{u}\ti{int(torch.randint(0, 30, (1,), generator=gen))}\t1\t{t}")
    inter = tmp_path / "tiny.inter"
    inter.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run.json"
    args = [
        "seqrec", "--method", "lisa-soft", "--inter", str(inter), "--negatives", "5",
        "--epochs", "1", "--dim", "8", "--max-len", "6", "--no-progress",
        "--output", str(out), "--lisa-config", "project", "--lisa-set", "soft_query=code",
    ]  # fmt: skip
    assert main(args) == 0
    assert "LISA config project with soft_query=code" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    run = doc["runs"][0]
    assert run["config"]["lisa_config"] == "project"
    provenance = doc["provenance"]  # what produced the file: options, machine, code
    assert provenance["options"]["lisa_set"] == ["soft_query=code"]
    assert provenance["machine"]["torch"] == torch.__version__
    assert set(provenance["source"]) == {"version", "commit", "dirty"}
    assert run["config"]["lisa_options"] == {"soft_query": "code"}
    assert run["lisa_config"] == {**dataclasses.asdict(PROJECT), "soft_query": "code"}
    assert main([*args[:-4], "--lisa-set", "nope=1"]) == 2
    assert "unknown LISA config flag" in capsys.readouterr().err
