"""Synthetic generator and MovieLens+KG loader (on tiny files written here; tests never
download data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from checksum_records import write_record

from harness.datasets import load_movielens_100k_kg, make_synthetic_graph


def test_synthetic_graph_is_seed_deterministic():
    a, b = make_synthetic_graph(2000, seed=3), make_synthetic_graph(2000, seed=3)
    c = make_synthetic_graph(2000, seed=4)
    for rel, csr in a.graph.relations.items():
        assert torch.equal(csr.indices, b.graph.relations[rel].indices)
        assert torch.equal(csr.indptr, b.graph.relations[rel].indptr)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.heldout_neg, b.heldout_neg)
    assert not torch.equal(a.labels, c.labels)


def test_synthetic_graph_structure_degrees_classes_and_holdout():
    task = make_synthetic_graph(20_000, num_classes=4, homophily=0.8, seed=0)
    g = task.graph
    assert len(g.node_types) >= 3 and len(g.relations) >= 6
    assert g.num_edges >= 2 * 0.9 * 20_000 * 0.99
    # every relation has its reverse, so every node type receives messages
    for s, name, d in g.relations:
        assert any(
            r[0] == d and r[2] == s and r[1] != name or (s == d and r[1] != name)
            for r in g.relations
        )
    # heavy-tailed degrees: the busiest 10% of papers hold far more than 10% of the edges
    deg = g.relations[("term", "describes", "paper")].in_degree().double()
    top = deg.sort(descending=True).values[: deg.numel() // 10].sum() / deg.sum()
    assert top > 0.3 and deg.max() > 10 * deg.mean()
    # planted classes: most edges join nodes of one class (chance would be 1/4)
    labels = task.labels
    ei = g.edge_index(("paper", "cites", "paper"))
    assert (labels[ei[0]] == labels[ei[1]]).double().mean() > 0.6
    # splits partition the papers
    ids = torch.cat([task.split[k] for k in ("train", "val", "test")]).sort().values
    assert torch.equal(ids, torch.arange(g.num_nodes["paper"]))
    # held-out edges are removed from the graph (both directions); negatives are non-edges
    writes = g.edge_index(("author", "writes", "paper"))
    n_paper = g.num_nodes["paper"]
    kept = set((writes[0] * n_paper + writes[1]).tolist())
    pos = task.heldout_pos
    assert pos.shape[1] > 0 and task.heldout_neg.shape == pos.shape
    neg_keys = set((task.heldout_neg[0] * n_paper + task.heldout_neg[1]).tolist())
    assert not neg_keys & kept and not neg_keys & set((pos[0] * n_paper + pos[1]).tolist())
    assert (
        g.relations[("author", "writes", "paper")].num_edges
        == g.relations[("paper", "written_by", "author")].num_edges
    )


@pytest.mark.parametrize(
    "kwargs", [dict(num_edges=10), dict(num_classes=1), dict(homophily=2.0), dict(alpha=1.0)]
)
def test_synthetic_graph_bad_arguments(kwargs):
    args = dict(num_edges=1000) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_synthetic_graph(**args)


def test_planted_type_imbalance_sets_each_relations_size_and_homophily():
    from harness.datasets.builtin_graphs import load_builtin_graph
    from harness.datasets.synthetic_graph import IMBALANCED

    task = load_builtin_graph("synthetic-imbalanced", edges=40_000, seed=0)
    g, labels = task.graph, task.labels
    assert task.name == "synthetic-imbalanced-40000"
    shares, homs = IMBALANCED["relation_shares"], IMBALANCED["relation_homophily"]
    for src, name, dst in [r for r in g.relations if r[1] in shares]:
        ei = g.edge_index((src, name, dst))
        total = 40_000 * (0.9 if name == "writes" else 1.0)  # 10% of writes held out
        assert abs(ei.shape[1] - shares[name] * total) <= 0.02 * total, name
        if src == "paper":  # cites: paper -> paper, both ends labelled
            same = (labels[ei[0]] == labels[ei[1]]).double().mean()
            # homophily h plus chance agreement (1 - h) / 4
            assert abs(same - (homs[name] + (1 - homs[name]) / 4)) < 0.03
    # the default graph is unchanged by the new arguments
    a = make_synthetic_graph(2000, seed=3)
    b = make_synthetic_graph(2000, seed=3, relation_shares={}, relation_homophily=None)
    for rel in a.graph.relations:
        assert torch.equal(a.graph.edge_index(rel), b.graph.edge_index(rel))
    with pytest.raises(ValueError, match="relation_shares: unknown relation 'likes'"):
        make_synthetic_graph(1000, relation_shares={"likes": 0.1})
    with pytest.raises(ValueError, match=r"relation_homophily\['cites'\] must be a number"):
        make_synthetic_graph(1000, relation_homophily={"cites": 1.5})


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def tiny_ml(tmp_path):
    _write(
        tmp_path / "ml-100k.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
        ["1\t24\tM\ttechnician\t85711", "2\t53\tF\tother\t94043", "3\t23\tM\twriter\t32067"],
    )
    _write(
        tmp_path / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
        ["10\tA Film\t1995\tDrama", "20\tB Film\t1996\tComedy Drama", "30\tC Film\t1997\tAction"],
    )
    _write(
        tmp_path / "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        ["1\t10\t3\t1", "1\t20\t4\t2", "2\t20\t5\t3", "3\t30\t1\t4", "2\t10\t2\t5", "3\t10\t2\t6"],
    )
    _write(
        tmp_path / "ml-100k.link",
        "item_id:token\tentity_id:token",
        ["10\tm.a", "20\tm.b", "30\tm.c"],
    )
    _write(
        tmp_path / "ml-100k.kg",
        "head_id:token\trelation_id:token\ttail_id:token",
        [
            "m.a\tfilm.film.actor\tm.p1",
            "m.b\tfilm.film.actor\tm.p1",
            "m.b\tfilm.film.directed_by\tm.p2",
            "m.a\tfilm.film.genre\tm.g1",
            "m.p1\tfilm.actor.film\tm.a",
            "m.a\tfilm.film.sequel\tm.b",
            "m.a\tfilm.film.sequel\tm.zzz",
            "m.unlinked\tfilm.film.actor\tm.p3",
            "m.c\tfilm.film.actor\tm.p1",
        ],
    )
    write_record(tmp_path, "ml-100k")
    return tmp_path


def test_movielens_loader_builds_the_typed_graph(tiny_ml):
    task = load_movielens_100k_kg(tiny_ml, holdout_fraction=0.0)
    g = task.graph
    assert g.num_nodes["user"] == 3 and g.num_nodes["movie"] == 3
    assert g.num_nodes["person"] == 2 and g.num_nodes["genre"] == 1  # p3 only via an unlinked film
    assert g.relations[("user", "rates", "movie")].num_edges == 6
    ei = g.edge_index(("user", "rates", "movie"))
    assert sorted(map(tuple, ei.t().tolist())) == sorted(
        [(0, 0), (0, 1), (1, 1), (2, 2), (1, 0), (2, 0)]
    )
    assert g.edge_index(("person", "rev_actor", "movie")).t().tolist() == [[0, 0], [0, 1], [0, 2]]
    # person p1 (actor) and p2 (director) share one person type
    assert g.edge_index(("movie", "directed_by", "person")).t().tolist() == [[1, 1]]
    assert g.edge_index(("movie", "sequel", "movie")).t().tolist() == [[0, 1]]  # m.zzz dropped
    assert ("movie", "film", "movie") not in g.relations  # reverse relation film.actor.film skipped
    assert task.labels.tolist() == [0, 1, 0] and task.num_classes == 2


def test_movielens_loader_holds_out_ratings_and_works_without_kg(tiny_ml):
    (tiny_ml / "ml-100k.kg").unlink()
    task = load_movielens_100k_kg(tiny_ml, holdout_fraction=0.5, seed=1)
    assert set(task.graph.node_types) == {"user", "movie"}
    assert task.graph.relations[("user", "rates", "movie")].num_edges == 3
    assert task.heldout_pos.shape == (2, 3) and task.heldout_neg.shape == (2, 3)
    all_pairs = {(0, 0), (0, 1), (1, 1), (2, 2), (1, 0), (2, 0)}
    assert not set(map(tuple, task.heldout_neg.t().tolist())) & all_pairs


def test_movielens_loader_errors(tmp_path, tiny_ml):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens_100k_kg(tmp_path / "missing")
    (tiny_ml / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\n1\t99\n", encoding="utf-8"
    )
    write_record(tiny_ml, "ml-100k")
    with pytest.raises(ValueError, match="missing from the user/item files"):
        load_movielens_100k_kg(tiny_ml)
    (tiny_ml / "ml-100k.inter").write_text("user:token\titem_id:token\n1\t10\n", encoding="utf-8")
    write_record(tiny_ml, "ml-100k")
    with pytest.raises(ValueError, match="no column 'user_id'"):
        load_movielens_100k_kg(tiny_ml)


def test_movielens_real_files_when_present():
    from harness.datasets.cache import data_dir

    root = data_dir() / "ml-100k"  # where `python -m harness fetch-data ml-100k` writes
    if not (root / "ml-100k.inter").is_file():
        pytest.skip(
            f"real MovieLens-100K files absent from {root} (run `python -m harness fetch-data "
            f"ml-100k`; LISA_BENCH_DATA moves the cache)"
        )
    task = load_movielens_100k_kg(root)
    assert task.graph.num_nodes["user"] == 943 and task.graph.num_nodes["movie"] == 1682
    total = task.graph.relations[("user", "rates", "movie")].num_edges + task.heldout_pos.shape[1]
    assert total == 100_000
