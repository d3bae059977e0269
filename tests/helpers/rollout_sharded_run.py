"""Run the Sampler with and without a data x fsdp mesh on 8 fake CPU devices; write a JSON
summary to argv[1] (tests/test_rollout_buckets.py sets XLA_FLAGS before jax is imported)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from rollout_models import make_model, padded_prompts  # noqa: E402

from ppocoder_jax.config import MeshConfig, RolloutConfig  # noqa: E402
from ppocoder_jax.parallel.mesh import make_mesh  # noqa: E402
from ppocoder_jax.rollout import Sampler, SamplingParams  # noqa: E402


def main(out_path: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, params, cfg = make_model(tmp, scale=1.5, variant="v1.0", tied=True, vocab_size=40)
    ids, mask = padded_prompts([5, 9, 2, 7, 3], cfg.vocab_size, seed=4)
    sp = SamplingParams(temperature=0.9, top_k=6)
    key = jax.random.PRNGKey(3)
    rcfg = RolloutConfig(length_buckets=(8, 16))
    kwargs = dict(sampling=sp, max_new_tokens=10, num_samples=2)
    plain = Sampler(cfg, rcfg, batch_multiple=8)(params, ids, mask, key, **kwargs)
    mesh = make_mesh(MeshConfig(data=4, fsdp=2, tensor=1))
    sampler = Sampler(cfg, rcfg, mesh=mesh, batch_multiple=8)
    sharded = sampler(params, ids, mask, key, **kwargs)
    padded = sampler(params, ids, mask, key, return_padded=True, **kwargs)
    shards = padded.tokens.addressable_shards
    res = {
        "devices": jax.device_count(),
        "tokens_equal": bool(np.array_equal(plain.tokens, sharded.tokens)),
        "lengths_equal": bool(np.array_equal(plain.lengths, sharded.lengths)),
        "max_logprob_diff": float(np.abs(np.asarray(plain.logprobs) - sharded.logprobs).max()),
        "max_value_diff": float(np.abs(np.asarray(plain.values) - sharded.values).max()),
        "shards": len({s.device for s in shards}),
        "shard_rows": [int(s.data.shape[0]) for s in shards],
        "sharding": str(padded.tokens.sharding),
    }
    Path(out_path).write_text(json.dumps(res))
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1])
