"""Seeded sampling for training: an item's randomness depends on where it falls in the run,
never on loader workers or on a resume (docs/options.md: ``manual_seed``), which is what makes
a resumed training run exact.

- :class:`SeededItems` draws item ``(index, seed)`` of a data set with the global generators
  seeded by ``seed``, so its random crop and noise are a function of that seed alone;
- :class:`ItemSeeds` pairs the indices of a ``DistributedSampler`` with seeds fixed by
  (seed, epoch, global position) via :func:`item_seed`, and can start part-way into an epoch;
- :func:`per_rank_batch` splits a global batch over the processes.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any, Iterator, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..errors import ArgumentError


class SeededItems(Dataset):
    """Wraps a data set so that item ``(index, seed)`` is drawn with Python, NumPy and torch's
    global generators seeded by ``seed`` (their previous states are put back afterwards): an
    item's random crop and noise depend on its seed alone, not on workers or on resuming."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]) -> Any:
        index, seed = key
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class ItemSeeds(Sampler):
    """This rank's indices for one epoch, from a ``DistributedSampler``, each paired with its item
    seed, minus the first ``skip`` ones (consumed before a resume). :meth:`set_position` picks the
    epoch before each pass, so one loader (with persistent workers) serves the whole run."""

    def __init__(self, base: DistributedSampler, seed: int):
        self.base, self.seed, self.epoch, self.skip = base, seed, 0, 0

    def reseed(self, seed: int) -> None:
        """Use ``seed`` for the order and the items (a resumed run keeps its checkpoint's seed)."""
        self.seed = self.base.seed = seed

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Serve ``epoch`` from its ``skip``-th index of this rank on."""
        self.base.set_epoch(epoch)
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        world, rank = self.base.num_replicas, self.base.rank
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield int(index), item_seed(self.seed, self.epoch, position * world + rank)


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the item at global ``position`` of ``epoch`` (a hash, so neighbouring
    positions and epochs get unrelated seeds)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Each of ``world_size`` processes' share of the global ``batch_size``; an ArgumentError
    (a ValueError) when it does not divide evenly."""
    if batch_size < 1:
        raise ArgumentError(f"expected a positive integer, got {batch_size}", argument="batch_size")
    if batch_size % world_size:
        raise ArgumentError(f"{batch_size} does not split over {world_size} processes; expected a positive "
                            f"multiple of {world_size}", argument="batch_size")
    return batch_size // world_size
