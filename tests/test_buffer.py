import numpy as np
import torch

from drlzero.replay.storage import Batch, ReplayStorage


def _fill(buf: ReplayStorage, start: int, n: int, envs: int = 1) -> None:
    for i in range(start, start + n, envs):
        ids = np.arange(i, i + envs)
        buf.add(
            ids[:, None].astype(np.float32),
            ids % 2,
            ids.astype(np.float32),
            (ids[:, None] + 1).astype(np.float32),
            (ids % 3 == 0).astype(np.float32),
        )


def test_ring_buffer_wraps_and_keeps_rows_consistent() -> None:
    buf = ReplayStorage(10, (1,), np.float32, seed=0)
    _fill(buf, 0, 14, envs=2)  # wraps across the end with a 2-env batch
    assert len(buf) == 10 and buf.pos == 4
    assert sorted(buf.rewards.tolist()) == list(range(4, 14))
    batch = buf.sample(256)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (256, 1) and batch.actions.dtype == torch.int64
    # every sampled row is one real transition: next_obs = obs + 1, reward = obs
    torch.testing.assert_close(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    torch.testing.assert_close(batch.rewards, batch.obs[:, 0])
    torch.testing.assert_close(batch.terminated, (batch.obs[:, 0] % 3 == 0).float())


def test_sampling_is_uniform_and_seeded() -> None:
    buf = ReplayStorage(8, (1,), np.float32, seed=3)
    _fill(buf, 0, 8)
    counts = np.bincount(buf.sample(80_000).rewards.long().numpy(), minlength=8)
    assert np.allclose(counts / 80_000, 1 / 8, atol=0.01)
    a = ReplayStorage(8, (1,), np.float32, seed=5)
    b = ReplayStorage(8, (1,), np.float32, seed=5)
    _fill(a, 0, 8)
    _fill(b, 0, 8)
    torch.testing.assert_close(a.sample(32).obs, b.sample(32).obs)


def test_state_round_trip_continues_the_same_samples() -> None:
    a = ReplayStorage(16, (1,), np.float32, seed=1)
    _fill(a, 0, 12)
    a.sample(4)
    tensors, meta = a.state_tensors(), a.state_meta()
    b = ReplayStorage(16, (1,), np.float32, seed=99)
    b.load_state(tensors, meta)
    torch.testing.assert_close(a.sample(64).obs, b.sample(64).obs)
    assert b.pos == a.pos and len(b) == len(a)


def test_uint8_images_stay_uint8() -> None:
    buf = ReplayStorage(4, (2, 2, 3), np.uint8)
    assert buf.obs.dtype == np.uint8 and buf.obs.nbytes == 4 * 12
