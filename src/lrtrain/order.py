"""The order of the rows: which are held out for validation, and each epoch's minibatches.

Both come from seeded permutations that can be evaluated at any row, not from a shuffled array
of all N indices. One process therefore holds only a few batches of indices at a time,
and under torchrun each rank finds the places of its own rows alone, in time and memory
proportional to its rows: the order is the same whatever the number of processes.

The permutation is a Feistel network on the bit-strings of the smallest power of two ≥ N
(six rounds, each mixing one half through a multiply-xorshift hash keyed from the seed),
walked in cycles until it lands back in range(N): a bijection, and its inverse is as cheap.
A network on few bits cannot reach every order with equal chance, so up to SMALL rows the
permutation is numpy's, drawn whole.

Measured side by side on 2 cores (benchmarks/bench.py --only order): an epoch of 20M rows in
batches of 1024 takes one process about as long as numpy's permutation (0.75–1.2× across
runs), and one rank of 8 0.3–0.5× of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from lrtrain.parallel import Shard

CHUNK = 1 << 16  # indices computed at a time: a few arrays of this many stay in cache
SMALL = 1 << 16  # up to this many rows, a permutation is a table drawn whole (every order equally likely)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's multipliers
_SHIFT = np.uint64(29)
_NO_KEYS = np.zeros(0, dtype=np.uint64)


class Permutation:
    """A seeded bijection of range(n): `forward(i)` is the row at position i, `inverse(row)` its position."""

    ROUNDS = 6

    def __init__(self, n: int, seed: int | list[int]) -> None:
        self.n = n
        self.table: np.ndarray | None = np.random.default_rng(seed).permutation(n) if n <= SMALL else None
        bits = max(int(n - 1).bit_length(), 2)
        self.left_bits, self.right_bits = (bits + 1) // 2, bits // 2
        self.keys = np.random.SeedSequence(seed).generate_state(self.ROUNDS, np.uint64) if n > SMALL else _NO_KEYS

    def forward(self, positions: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return np.asarray(self.table[positions])
        return self._walked(positions, self._encrypt)

    def inverse(self, rows: np.ndarray) -> np.ndarray:
        if self.table is not None:
            places = np.empty(self.n, dtype=np.int64)
            places[self.table] = np.arange(self.n)
            return np.asarray(places[rows])
        return self._walked(rows, self._decrypt)

    def _walked(self, values: np.ndarray, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Apply a bijection of the power-of-two range until each value is back below n (cycle walking)."""
        x = step(np.asarray(values, dtype=np.uint64))
        outside = np.flatnonzero(x >= self.n)
        while outside.size:
            x[outside] = step(x[outside])
            outside = outside[x[outside] >= self.n]
        return x.astype(np.int64)

    @staticmethod
    def _mix(half: np.ndarray, key: np.uint64, width: int) -> np.ndarray:
        """A keyed hash of `half`, `width` bits wide (the high bits of the product, the best mixed)."""
        h = (half ^ key) * _M1
        h ^= h >> _SHIFT
        h *= _M2
        return h >> np.uint64(64 - width)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        a, b = self.left_bits, self.right_bits
        left, right = x >> np.uint64(b), x & np.uint64((1 << b) - 1)
        for key in self.keys:  # (a bits, b bits) → (b bits, a bits)
            left, right = right, left ^ self._mix(right, key, a)
            a, b = b, a
        return (left << np.uint64(b)) | right

    def _decrypt(self, x: np.ndarray) -> np.ndarray:
        a, b = self.left_bits, self.right_bits  # an even number of rounds ends at the widths it began with
        left, right = x >> np.uint64(b), x & np.uint64((1 << b) - 1)
        for key in self.keys[::-1]:
            a, b = b, a
            left, right = right ^ self._mix(left, key, a), left
        return (left << np.uint64(b)) | right


def held_out(n: int, n_val: int, seed: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Of the rows start..stop of n, those that train and those held out for validation, each ascending.

    Row i is held out when its place in a seeded permutation of range(n) is below n_val: exactly
    n_val rows in all, every such choice equally likely.
    """
    draw = Permutation(n, [seed, 1])  # a bijection: its values at the rows are as random as places would be
    train, val = [], []
    for lo in range(start, stop, CHUNK):
        rows = np.arange(lo, min(lo + CHUNK, stop))
        held = draw.forward(rows) < n_val
        train.append(rows[~held])
        val.append(rows[held])
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(train) if train else empty), (np.concatenate(val) if val else empty)


def batches(
    n: int, batch_size: int | None, shuffle: bool, seed: int, epoch: int, shard: Shard
) -> Iterator[tuple[int, slice | np.ndarray]]:
    """One epoch's minibatches over the n training rows: (the global batch size, this rank's rows of the batch).

    Rows are indices into the rank's own block (shard.start..shard.stop of the training rows;
    all of them in one process). Every rank gets the same number of batches, even those of
    which it holds no row. Shuffled batches are positions kB..(k+1)B of the epoch's seeded
    permutation: one process computes the rows of a few batches at a time; a rank of several
    finds the positions of its own rows once per epoch and groups them by batch.
    """
    if batch_size is None or batch_size >= n:
        yield n, shard.owned(slice(None))
        return
    starts = range(0, n, batch_size)
    if not shuffle:
        for lo in starts:
            yield min(batch_size, n - lo), shard.owned(slice(lo, lo + batch_size))
        return
    order = Permutation(n, [seed, 2, epoch])
    if shard.world == 1:  # the rows of whole batches, at least CHUNK places at a time (small calls cost more)
        span = max(1, CHUNK // batch_size) * batch_size
        for first in range(0, n, span):
            rows = order.forward(np.arange(first, min(first + span, n)))
            for lo in range(0, len(rows), batch_size):
                yield min(batch_size, len(rows) - lo), rows[lo : lo + batch_size]
        return
    stop = min(shard.stop, n)
    places = np.concatenate(
        [order.inverse(np.arange(lo, min(lo + CHUNK, stop))) for lo in range(shard.start, stop, CHUNK)]
        or [np.zeros(0, dtype=np.int64)]
    )
    mine = np.argsort(places)  # this rank's rows (local indices) in the epoch's order; places are distinct
    bounds = np.searchsorted(places[mine], np.append(np.arange(0, n, batch_size), n))
    for k, lo in enumerate(starts):
        yield min(batch_size, n - lo), mine[bounds[k] : bounds[k + 1]]
