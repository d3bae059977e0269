"""The order PPO draws its training problems in: deterministic, resumable from one integer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DataStream:
    """Deterministic order over the training examples: epoch e is permutation(seed, e)."""

    n: int
    seed: int
    position: int = 0

    def next_indices(self, batch_size: int) -> np.ndarray:
        out = []
        while len(out) < batch_size:
            epoch, offset = divmod(self.position, self.n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            take = min(batch_size - len(out), self.n - offset)
            out.extend(perm[offset : offset + take].tolist())
            self.position += take
        return np.asarray(out)
