"""The TensorBoard event file rnnlab writes itself (events.py), read back by TensorBoard's own reader, which
checks both CRCs of every record."""

import struct

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_crc
from torch.utils.tensorboard.summary import image

from rnnlab.training.events import EventFile, masked_crc32c, record


@pytest.mark.parametrize("data", [b"", b"123456789", bytes(range(256)) * 3])
def test_the_checksum_is_tensorboards(data):
    assert masked_crc32c(data) == tensorboard_crc(data)


def test_a_record_is_length_crc_data_crc():
    framed = record(b"abc")
    assert struct.unpack("<Q", framed[:8]) == (3,)
    assert struct.unpack("<I", framed[8:12]) == (masked_crc32c(framed[:8]),)
    assert framed[12:15] == b"abc" and struct.unpack("<I", framed[15:]) == (masked_crc32c(b"abc"),)


def test_tensorboard_reads_scalars_and_images_back(tmp_path):
    events = EventFile(tmp_path / "tb", flush_s=3600)
    for step in range(1, 51):
        events.scalars("train", {"loss": 1 / step, "lr": 0.01, "skipped": False, "nan": float("nan")}, step)
    pixels = np.zeros((6, 8, 3), dtype=np.uint8)
    pixels[:, :4, 0] = 255
    events.summary(image("diagnostics/grad_flow", pixels, dataformats="HWC"), 50)
    events.close()
    read = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert sorted(read.Tags()["scalars"]) == ["train/loss", "train/lr"]  # no booleans, nothing non-finite
    losses = read.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, 51))
    assert [e.value for e in losses] == pytest.approx([1 / s for s in range(1, 51)], rel=1e-6)
    (img,) = read.Images("diagnostics/grad_flow")
    assert (img.step, img.width, img.height) == (50, 8, 6)


def test_values_wait_in_memory_until_the_flush(tmp_path):
    events = EventFile(tmp_path / "tb", flush_s=3600)
    events.scalars("train", {"loss": 1.0}, 1)
    assert events.path is None  # no file before the first flush
    events.flush()
    assert events.path is not None
    header = events.path.stat().st_size
    events.scalars("train", {"loss": 0.5}, 2)
    assert events.path.stat().st_size == header
    events.flush()
    assert events.path.stat().st_size > header
    assert [e.step for e in EventAccumulator(str(tmp_path / "tb")).Reload().Scalars("train/loss")] == [1, 2]
    events.close()


def test_an_event_file_dropped_unclosed_still_gets_its_values(tmp_path):
    events = EventFile(tmp_path / "tb", flush_s=3600)
    events.scalars("train", {"loss": 1.0}, 1)
    events.scalars("train", {"loss": 0.5}, 2)
    del events
    assert [e.step for e in EventAccumulator(str(tmp_path / "tb")).Reload().Scalars("train/loss")] == [1, 2]


def test_a_flush_at_most_flush_s_apart(tmp_path):
    events = EventFile(tmp_path / "tb", flush_s=0.0)  # every value flushed as it comes
    events.scalars("train", {"loss": 1.0}, 1)
    assert [e.step for e in EventAccumulator(str(tmp_path / "tb")).Reload().Scalars("train/loss")] == [1]
    events.close()


def test_two_files_in_the_same_second_get_different_names(tmp_path):
    a, b = EventFile(tmp_path), EventFile(tmp_path)
    a.scalars("x", {"v": 1}, 1), b.scalars("x", {"v": 2}, 1)
    a.close(), b.close()
    assert a.path != b.path and len(list(tmp_path.glob("events.out.tfevents.*"))) == 2


def test_values_left_out_and_values_changed_later(tmp_path):
    events = EventFile(tmp_path / "tb", flush_s=3600)
    row = {"step": 3, "loss": 0.5, "time_s": 1.2}
    events.scalars("train", row, 3, leave_out=frozenset({"step", "time_s"}))
    row["loss"] = 9.0  # after it was logged: the value logged stays
    events.close()
    read = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert read.Tags()["scalars"] == ["train/loss"] and read.Scalars("train/loss")[0].value == 0.5
