"""What TensorBoard gets from a run: scalars that change, confusion images."""

import struct

import numpy as np
from tensorboardX.proto import event_pb2

from ferjax.run.metric_writer import MetricWriter, confusion_image
from ferjax.run.run_dir import RunDir


def read_events(directory) -> list[event_pb2.Event]:
  """Every event of the TFRecord files TensorBoard reads in ``directory``."""
  events = []
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      offset += 12  # The length and its CRC.
      events.append(event_pb2.Event.FromString(data[offset:offset + length]))
      offset += length + 4  # The record and its CRC.
  return events


def test_tensorboard_scalars_and_confusion_image(tmp_path):
  writer = MetricWriter(tmp_path / "metrics.jsonl", tmp_path / "tb")
  cm = [[8, 2, 0], [1, 9, 0], [0, 5, 5]]
  writer.write(10, "test", {"accuracy": 0.733, "num_examples": 30,
                            "confusion_matrix": cm,
                            "per_class_accuracy": {"a": 0.8}})
  writer.close()
  values = {v.tag: v for e in read_events(tmp_path / "tb")
            for v in e.summary.value}
  assert set(values) == {"test/accuracy", "test/confusion_matrix"}
  assert values["test/accuracy"].simple_value == np.float32(0.733)
  image = values["test/confusion_matrix"].image
  assert (image.height, image.width, image.colorspace) == (48, 48, 3)
  assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_image_shades_by_the_true_class():
  image = confusion_image([[8, 2], [0, 10]])
  assert image.shape == (32, 32, 3) and image.dtype == np.uint8
  # Inside the cells (off the diagonal's frame): 80% darker than 20%, 0% white.
  assert image[8, 8].sum() < image[8, 24].sum() < image[24, 8].sum()
  assert tuple(image[24, 8]) == (247, 251, 255)


def test_hparams_are_the_config_fields_and_final_metrics(tmp_path):
  from tensorboardX.proto import plugin_hparams_pb2
  writer = MetricWriter(tmp_path / "metrics.jsonl", tmp_path / "tb")
  writer.hparams({"seed": 1, "optimizer": {"learning_rate": 0.1},
                  "input": {"mean": None, "image_size": [32, 32]}},
                 {"test/accuracy": 0.9, "test/num_examples": 30.0}, 20)
  writer.close()
  # In the run's own events, so that TensorBoard names the session by it.
  assert not [p for p in (tmp_path / "tb").iterdir() if p.is_dir()]
  values = [v for e in read_events(tmp_path / "tb")
            for v in e.summary.value]
  start = [plugin_hparams_pb2.HParamsPluginData.FromString(
      v.metadata.plugin_data.content).session_start_info for v in values
           if v.tag == "_hparams_/session_start_info"]
  (info,) = start
  assert {k: (v.number_value or v.string_value)
          for k, v in info.hparams.items()} == {
              "seed": 1, "optimizer.learning_rate": 0.1,
              "input.mean": "null", "input.image_size": "[32, 32]"}
  scalars = {v.tag: v.simple_value for v in values if v.HasField(
      "simple_value")}
  assert scalars == {"hparams/test/accuracy": np.float32(0.9)}


def test_events_go_in_the_run_folder_and_an_old_run_keeps_its_own(tmp_path):
  """TensorBoard names a run by the folder of its events: a sweep's trials
  appear as their names, not ``NAME/tensorboard``."""
  new, old = RunDir(tmp_path / "new"), RunDir(tmp_path / "old")
  new.path.mkdir()
  (old.path / "tensorboard").mkdir(parents=True)
  for run in (new, old):
    writer = run.metric_writer()
    writer.write(1, "test", {"accuracy": 0.5})
    writer.close()
  assert [v.tag for e in read_events(new.path) for v in e.summary.value] == [
      "test/accuracy"]
  assert not list(old.path.glob("events.out.tfevents.*"))
  assert [v.tag for e in read_events(old.path / "tensorboard")
          for v in e.summary.value] == ["test/accuracy"]
