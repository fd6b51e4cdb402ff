"""`cornernet_tf.training.state`: which checkpoint a resumed run restores, and what it skips."""

import os

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf import training
from cornernet_tf.training import state as state_lib


def _checkpoints(directory, steps):
    """Saves `ckpt-<step>` for each step, the variable holding the step."""
    variable = tf.Variable(np.zeros(1000, np.float32))
    checkpoint = tf.train.Checkpoint(v=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=None)
    for step in steps:
        variable.assign(np.full(1000, step, np.float32))
        manager.save(checkpoint_number=step)
    return variable, checkpoint


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_the_newest_complete_checkpoint_is_restored_and_the_others_are_named(tmp_path):
    # Before: a lost index of the newest checkpoint (or of the `checkpoint` file)
    # started from scratch over the older ones; a truncated .data ended in an IndexError.
    variable, checkpoint = _checkpoints(tmp_path, [1, 2, 3, 4])
    os.remove(tmp_path / "ckpt-4.index")
    _truncate(tmp_path / "ckpt-3.data-00000-of-00001")
    os.remove(tmp_path / "ckpt-2.data-00000-of-00001")
    os.remove(tmp_path / "checkpoint")
    variable.assign(np.zeros(1000, np.float32))
    restored, skipped = state_lib.restore_newest_complete(checkpoint, str(tmp_path))
    assert restored == str(tmp_path / "ckpt-1")
    assert np.all(variable.numpy() == 1.0)  # nothing of the truncated ckpt-3 remains
    assert [(os.path.basename(p), r.split(" (")[0]) for p, r in skipped] == [
        ("ckpt-4", "ckpt-4.index is missing"),
        ("ckpt-3", "ckpt-3.data-* is damaged or truncated"),
        ("ckpt-2", "ckpt-2.data-* is missing"),
    ]


def test_a_damaged_checkpoint_index_file_does_not_hide_the_checkpoints(tmp_path):
    variable, checkpoint = _checkpoints(tmp_path, [5, 10])
    (tmp_path / "checkpoint").write_text("not a checkpoint state\n")
    assert state_lib.list_checkpoints(str(tmp_path)) == [
        str(tmp_path / "ckpt-10"),
        str(tmp_path / "ckpt-5"),
    ]
    variable.assign(np.zeros(1000, np.float32))
    restored, skipped = state_lib.restore_newest_complete(checkpoint, str(tmp_path))
    assert restored == str(tmp_path / "ckpt-10") and skipped == []
    assert np.all(variable.numpy() == 10.0)


def test_checkpoints_of_which_none_is_complete_are_not_started_over(tmp_path):
    _, checkpoint = _checkpoints(tmp_path, [2])
    os.remove(tmp_path / "ckpt-2.index")
    with pytest.raises(training.SetupError) as error:
        state_lib.restore_newest_complete(checkpoint, str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: no complete checkpoint to resume from ")
    assert "ckpt-2: ckpt-2.index is missing" in message and "--restart" in message
    # Only the `checkpoint` index file left (its checkpoints deleted): still not a fresh start.
    os.remove(tmp_path / "ckpt-2.data-00000-of-00001")
    with pytest.raises(training.SetupError, match="no complete checkpoint"):
        state_lib.restore_newest_complete(checkpoint, str(tmp_path))


def test_an_empty_folder_is_a_fresh_start(tmp_path):
    _, checkpoint = _checkpoints(tmp_path / "other", [])
    assert state_lib.restore_newest_complete(checkpoint, str(tmp_path)) == (None, [])
    assert not state_lib.holds_checkpoints(str(tmp_path))


def test_a_checkpoint_of_another_model_is_a_mismatch_not_skipped(tmp_path):
    _checkpoints(tmp_path, [1])
    other = tf.train.Checkpoint(v=tf.Variable(np.zeros(7, np.float32)))
    with pytest.raises(training.SetupError, match="ckpt-1: this checkpoint does not match"):
        state_lib.restore_newest_complete(other, str(tmp_path))


def test_the_folders_of_unfinished_saves_are_removed(tmp_path):
    # What a save killed before TensorFlow merged its shards leaves behind.
    _checkpoints(tmp_path, [1])
    (tmp_path / "ckpt-2_temp").mkdir()
    (tmp_path / "ckpt-2_temp" / "part-00000-of-00001.index").write_bytes(b"half")
    (tmp_path / "mine_temp").mkdir()
    assert state_lib.remove_partial_checkpoints(str(tmp_path)) == [str(tmp_path / "ckpt-2_temp")]
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint",
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
        "mine_temp",
    ]
