import numpy as np
import pytest
import torch

from ddpgkit.data.buffer import ReplayBuffer


def fill(buf, n, start=0):
    for i in range(start, start + n):
        buf.add(np.full(3, i, np.float32), np.full(2, -i, np.float32), float(i), np.full(3, i + 0.5, np.float32),
                terminated=(i % 3 == 0), truncated=(i % 5 == 0))


def test_fields_round_trip_and_flags_apart():
    buf = ReplayBuffer(10, 3, 2)
    fill(buf, 4)
    rows = buf.split(buf.data[:4])
    assert rows.obs[:, 0].tolist() == [0, 1, 2, 3]
    assert rows.action[:, 1].tolist() == [0, -1, -2, -3]
    assert rows.reward[:, 0].tolist() == [0, 1, 2, 3]
    assert rows.next_obs[:, 2].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert rows.terminated[:, 0].tolist() == [1, 0, 0, 1]
    assert rows.truncated[:, 0].tolist() == [1, 0, 0, 0]


def test_wrap_around_overwrites_oldest():
    buf = ReplayBuffer(5, 3, 2)
    fill(buf, 7)
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.split(buf.data).reward[:, 0].tolist()) == [2, 3, 4, 5, 6]
    assert buf.data[0, 0].item() == 5 and buf.data[1, 0].item() == 6  # rows 0, 1 overwritten


def test_sample_shapes_range_and_uniformity():
    buf = ReplayBuffer(100, 3, 2, seed=1)
    fill(buf, 40)
    b = buf.sample(4000)
    assert b.obs.shape == (4000, 3) and b.action.shape == (4000, 2) and b.reward.shape == (4000, 1)
    assert b.next_obs.shape == (4000, 3) and b.terminated.shape == (4000, 1) and b.truncated.shape == (4000, 1)
    idx = b.reward[:, 0].long()
    assert idx.min() >= 0 and idx.max() < 40  # only filled rows
    counts = torch.bincount(idx, minlength=40).float()
    # uniform: each of 40 rows drawn ~100 times; chi-square with 39 dof stays far below 80
    chi2 = ((counts - 100) ** 2 / 100).sum().item()
    assert chi2 < 80
    torch.testing.assert_close(b.next_obs[:, 0], b.obs[:, 0] + 0.5)  # rows stay intact


def test_same_seed_same_samples_and_state_round_trip():
    a, b = ReplayBuffer(50, 3, 2, seed=7), ReplayBuffer(50, 3, 2, seed=7)
    fill(a, 60)
    fill(b, 60)
    torch.testing.assert_close(a.sample(8).obs, b.sample(8).obs)
    tensors, meta = a.state_dict()
    c = ReplayBuffer(50, 3, 2, seed=0)
    c.load_state_dict(tensors, meta)
    assert (c.pos, c.size) == (a.pos, a.size)
    assert torch.equal(c.data, a.data)
    torch.testing.assert_close(c.sample(16).obs, a.sample(16).obs)  # generator restored too


def test_state_mismatch_and_empty_sample_raise():
    a = ReplayBuffer(10, 3, 2)
    fill(a, 3)
    tensors, meta = a.state_dict()
    with pytest.raises(ValueError, match="does not match"):
        ReplayBuffer(10, 4, 2).load_state_dict(tensors, meta)
    with pytest.raises(ValueError, match="inconsistent"):
        ReplayBuffer(10, 3, 2).load_state_dict(tensors, {**meta, "size": 5})
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(10, 3, 2).sample(1)


@pytest.mark.parametrize("capacity, chunk_rows, n", [(10, 4, 3), (10, 4, 10), (10, 4, 23), (12, 4, 31), (7, 7, 50)])
def test_chunk_write_counts_match_a_count_of_every_write(capacity, chunk_rows, n):
    """chunks() against the definition: count, row by row, the transitions written into each chunk."""
    buf = ReplayBuffer(capacity, 3, 2, chunk_rows=chunk_rows)
    writes = {}
    for t in range(n):
        k = (t % capacity) // chunk_rows  # the row the t-th transition lands in, and its chunk
        writes[k] = writes.get(k, 0) + 1
        fill(buf, 1, start=t)
        assert buf.chunks() == sorted(writes.items())
    for k, _ in buf.chunks():  # a chunk's rows: the filled rows of its range
        lo = k * chunk_rows
        assert torch.equal(buf.chunk(k), buf.data[lo:min(lo + chunk_rows, buf.size)])


def test_rows_restored_chunk_by_chunk_equal_the_whole():
    a = ReplayBuffer(10, 3, 2, seed=3, chunk_rows=4)
    fill(a, 13)
    tensors, meta = a.state_dict(with_data=False)
    assert "data" not in tensors and meta["added"] == 13 and meta["chunk_rows"] == 4
    chunks = {k: a.chunk(k).clone() for k, _ in a.chunks()}
    b = ReplayBuffer(10, 3, 2, seed=0, chunk_rows=4)
    read = []
    b.load_state_dict(tensors, meta, lambda k: read.append(k) or chunks[k])
    assert read == [0, 1, 2] and torch.equal(b.data, a.data) and (b.pos, b.size, b.added) == (3, 10, 13)
    assert b.chunks() == a.chunks()
    with pytest.raises(ValueError, match=r"chunk 1 has shape \(2, 11\)"):  # a chunk with rows missing
        ReplayBuffer(10, 3, 2, chunk_rows=4).load_state_dict(tensors, meta, lambda k: chunks[k][:2] if k else chunks[k])
    with pytest.raises(ValueError, match="inconsistent"):
        ReplayBuffer(10, 3, 2).load_state_dict(tensors, {**meta, "added": 14}, chunks.get)


def test_a_buffer_saved_whole_before_chunks_existed_still_loads():
    """Checkpoint format 1 in its early days: the rows inside training.safetensors as buffer.data, no added and
    chunk_rows. The format's upgrade serves the rows as chunk files and derives the counts."""
    from ddpgkit.storage.schema import upgrade

    a = ReplayBuffer(10, 3, 2, chunk_rows=4)
    fill(a, 12)
    tensors, meta = a.state_dict()
    old = {k: v for k, v in meta.items() if k not in ("added", "chunk_rows")}  # the earlier format
    training = {f"buffer.{k}": v for k, v in tensors.items()}
    meta2, files = upgrade(1, {"training": {"version": 1, "buffer": old}}, {"training": training})
    new = meta2["training"]["buffer"]
    assert "buffer.data" not in files["training"] and new["added"] == 12 and len(new["chunk_files"]) == 1
    b = ReplayBuffer(10, 3, 2)
    b.load_state_dict({"generator": tensors["generator"]}, new,
                      lambda k: files[new["chunk_files"][k].removesuffix(".safetensors")]["rows"])
    assert torch.equal(b.data, a.data) and (b.pos, b.size) == (2, 10) and b.added % 10 == 2
