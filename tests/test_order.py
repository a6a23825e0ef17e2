"""Row order: the permutations behind the validation split and the minibatches, and their shards."""

from __future__ import annotations

import numpy as np
import pytest

from lrtrain import order
from lrtrain.parallel import SINGLE, Shard, block


@pytest.mark.parametrize("n", [1, 2, 3, 5, 1000, 65536, 65537, 100003, 1 << 20])
@pytest.mark.parametrize("small", [order.SMALL, 0])  # a table drawn whole, or the Feistel network at every size
def test_a_permutation_is_a_bijection_with_its_inverse(n: int, small: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order, "SMALL", small)
    places = order.Permutation(n, [7, 2, 3])
    rows = places.forward(np.arange(n))
    np.testing.assert_array_equal(np.sort(rows), np.arange(n))
    np.testing.assert_array_equal(places.inverse(rows), np.arange(n))


def test_a_permutation_depends_on_its_seed_only() -> None:
    positions = np.arange(1000)
    first, again = order.Permutation(1000, [1, 2]), order.Permutation(1000, [1, 2])
    np.testing.assert_array_equal(first.forward(positions), again.forward(positions))
    assert not np.array_equal(first.forward(positions), order.Permutation(1000, [1, 3]).forward(positions))


def chi_square_ok(counts: np.ndarray) -> bool:
    """Counts spread as evenly as chance spreads them: chi-square within five standard deviations of its mean."""
    expected = counts.sum() / counts.size
    df = counts.size - 1
    return float(((counts - expected) ** 2 / expected).sum()) < df + 5 * np.sqrt(2 * df)


def test_every_row_is_equally_likely_at_every_place_of_a_small_permutation() -> None:
    n, trials = 10, 20_000
    counts = np.zeros((n, n))
    for seed in range(trials):
        counts[np.arange(n), order.Permutation(n, [seed]).forward(np.arange(n))] += 1
    assert chi_square_ok(counts)


def test_a_large_permutation_places_pairs_of_rows_independently() -> None:
    n, trials, bins = order.SMALL + 4465, 5000, 8  # the Feistel network
    pairs = np.zeros((bins, bins))
    for seed in range(trials):
        first, second = order.Permutation(n, [seed]).forward(np.arange(2)) * bins // n
        pairs[first, second] += 1
    assert chi_square_ok(pairs)  # where row 1 goes says nothing of where row 0 went
    big = order.Permutation(1_000_000, [5]).forward(np.arange(1_000_000)).astype(float)
    assert abs(np.corrcoef(big[:-1], big[1:])[0, 1]) < 0.005  # neighbouring places hold unrelated rows
    assert abs(np.corrcoef(np.arange(1_000_000), big)[0, 1]) < 0.005


def test_exactly_n_val_rows_are_held_out_and_blocks_agree_with_the_whole() -> None:
    n, n_val = 100_003, 20_001
    train, val = order.held_out(n, n_val, seed=4, start=0, stop=n)
    assert len(val) == n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    parts = [order.held_out(n, n_val, 4, b.start, b.stop) for b in (block(n, r, 3) for r in range(3))]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), train)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), val)
    assert not np.array_equal(order.held_out(n, n_val, seed=5, start=0, stop=n)[1], val)


def epoch(n: int, batch_size: int | None, shuffle: bool, shard: Shard) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches, as global row indices."""
    out = []
    for m, rows in order.batches(n, batch_size, shuffle, seed=3, epoch=9, shard=shard):
        local = np.arange(min(shard.stop, n) - shard.start)[rows]
        out.append((m, local + shard.start))
    return out


@pytest.mark.parametrize(("batch_size", "shuffle"), [(None, True), (64, False), (64, True), (1, True), (999, True)])
@pytest.mark.parametrize("small", [order.SMALL, 0])
def test_the_ranks_batches_together_are_the_single_process_ones_in_the_same_order(
    batch_size: int | None, shuffle: bool, small: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order, "SMALL", small)
    n = 1001
    single = epoch(n, batch_size, shuffle, SINGLE)
    np.testing.assert_array_equal(np.sort(np.concatenate([rows for _, rows in single])), np.arange(n))
    assert [m for m, _ in single] == [len(rows) for _, rows in single]
    for world in (2, 3):
        ranks = [epoch(n, batch_size, shuffle, block(n, r, world)) for r in range(world)]
        for k, (m, rows) in enumerate(single):
            parts = [rank[k] for rank in ranks]
            assert all(size == m for size, _ in parts)  # every rank knows the global batch size
            together = np.concatenate([part for _, part in parts])
            np.testing.assert_array_equal(np.sort(together), np.sort(rows))
            for _, part in parts:  # each rank's rows keep the batch's own order
                np.testing.assert_array_equal(part, rows[np.isin(rows, part)])
        assert all(len(rank) == len(single) for rank in ranks)


def test_each_epoch_has_its_own_order() -> None:
    first = [rows for _, rows in order.batches(1000, 100, True, seed=3, epoch=1, shard=SINGLE)]
    second = [rows for _, rows in order.batches(1000, 100, True, seed=3, epoch=2, shard=SINGLE)]
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))  # type: ignore[arg-type]
