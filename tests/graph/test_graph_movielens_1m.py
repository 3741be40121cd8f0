"""The MovieLens-1M typed-graph loader, on tiny atomic files written by the test (the real
files are fetched at set-up and never read by tests unless present)."""

from __future__ import annotations

import pytest
import torch
from checksum_records import write_record

from harness.datasets.movielens_1m import load_movielens_1m

INTER = """user_id:token\titem_id:token\trating:float\ttimestamp:float
1m_1\tToy Story (1995)\t5\t978300760
1m_1\tJumanji (1995)\t3\t978302109
1m_2\tToy Story (1995)\t4\t978300000
1m_3\tHeat (1995)\t2\t978300001
1m_3\tToy Story (1995)\t2\t978300002
1m_3\tToy Story (1995)\t5\t978300003
"""
ITEM = """item_id:token\tmovie_title:token\trelease_year:float\tgenre:token
Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy
Jumanji (1995)\tJumanji\t1995\tAdventure Children's Fantasy
Heat (1995)\tHeat\t1995\tAction Crime Thriller
"""
USER = """user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token
1m_1\t1\tF\t10\t48067
1m_2\t56\tM\t16\t70072
1m_3\t25\tM\t10\t55117
"""


@pytest.fixture
def tiny_ml1m(tmp_path):
    for suffix, text in (("inter", INTER), ("item", ITEM), ("user", USER)):
        (tmp_path / f"ml-1m.{suffix}").write_text(text)
    write_record(tmp_path, "ml-1m")
    return tmp_path


def edges(graph, relation):
    csr = graph.relations[relation]
    dst = torch.repeat_interleave(torch.arange(csr.indptr.numel() - 1), csr.indptr.diff())
    return sorted(zip(csr.indices.tolist(), dst.tolist(), strict=True))


def test_typed_graph_nodes_relations_and_labels(tiny_ml1m):
    task = load_movielens_1m(tiny_ml1m, holdout_fraction=0.0)
    g = task.graph
    assert g.num_nodes == {"user": 3, "movie": 3, "genre": 8, "age": 3, "occupation": 2}
    assert task.labels.tolist() == [0, 1, 1] and task.num_classes == 2  # F, M, M
    assert "gender" not in g.num_nodes  # the label's relation is left out
    rates = ("user", "rates", "movie")
    assert set(edges(g, rates)) == {(0, 0), (0, 1), (1, 0), (2, 2), (2, 0)}
    assert len(edges(g, rates)) == 6  # the repeated rating is a parallel edge
    assert len(edges(g, ("movie", "rev_rates", "user"))) == 6
    assert len(edges(g, ("movie", "has_genre", "genre"))) == 9
    occupations = edges(g, ("user", "has_occupation", "occupation"))
    assert occupations == [(0, 0), (1, 1), (2, 0)]  # users 1 and 3 share occupation 10


def test_label_choice_and_holdout(tiny_ml1m):
    task = load_movielens_1m(tiny_ml1m, label="occupation", holdout_fraction=0.5, seed=1)
    assert task.num_classes == 2 and "occupation" not in task.graph.num_nodes
    assert "gender" in task.graph.num_nodes
    assert task.heldout_pos.shape == (2, 3) and task.heldout_neg.shape == (2, 3)
    assert task.graph.relations[("user", "rates", "movie")].indices.numel() == 3
    pos = set(map(tuple, task.heldout_pos.t().tolist()))
    assert not pos & set(map(tuple, task.heldout_neg.t().tolist()))


def test_loader_errors(tiny_ml1m, tmp_path):
    with pytest.raises(ValueError, match="label must be one of"):
        load_movielens_1m(tiny_ml1m, label="zip")
    with pytest.raises(ValueError, match="holdout_fraction"):
        load_movielens_1m(tiny_ml1m, holdout_fraction=1.0)
    with pytest.raises(FileNotFoundError):
        load_movielens_1m(tmp_path / "missing")
    (tiny_ml1m / "ml-1m.inter").write_text(INTER + "1m_9\tHeat (1995)\t1\t1\n")
    write_record(tiny_ml1m, "ml-1m")
    with pytest.raises(ValueError, match="missing from the user/item files"):
        load_movielens_1m(tiny_ml1m)


def test_real_files_when_present():
    from harness.datasets.cache import data_dir

    root = data_dir() / "ml-1m"  # where `python -m harness fetch-data ml-1m` writes
    if not (root / "ml-1m.inter").is_file():
        pytest.skip(
            f"real MovieLens-1M files absent from {root} (run `python -m harness fetch-data "
            f"ml-1m`; LISA_BENCH_DATA moves the cache)"
        )
    task = load_movielens_1m(root, holdout_fraction=0.0)
    assert task.graph.num_nodes["user"] == 6040 and task.graph.num_nodes["genre"] == 18
    assert task.graph.relations[("user", "rates", "movie")].indices.numel() == 1_000_209
