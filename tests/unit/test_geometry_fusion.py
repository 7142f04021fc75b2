"""Geometry fused into a CNN's head: each example's descriptor travels with
its image through shuffling, sharding, augmentation's flip, eval padding and
test-time views; the mirror table pairs FaceMesh's points; configs that
cannot carry the descriptors are refused; a tiny run trains and evaluates."""

import dataclasses
import functools
import io
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from helpers import tiny_config
from ferjax import cli
from ferjax import config_checks
from ferjax import losses
from ferjax.config import ConfigError
from ferjax.data import geometry_features
from ferjax.data import landmarks as landmarks_data
from ferjax.data import loading
from ferjax.data import synthetic_fer
from ferjax.landmarks import action_units as au
from ferjax.landmarks import crop as crop_lib
from ferjax.landmarks import facemesh
from ferjax.landmarks import topology as t
from ferjax.run.model import load_model, open_run
from ferjax.run.run_dir import RunDir
from ferjax.train import input_pipeline
from ferjax.train import loop
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import Parallel
from ferjax.train.split_evaluator import Evaluator

C = 7


@pytest.fixture(scope="module")
def face_points() -> tuple[np.ndarray, np.ndarray]:
  """FaceMesh's points on a generated face and on its mirror image."""
  grey = synthetic_fer.render_face(np.random.default_rng(0), 3)
  rgb = np.repeat(grey[..., None], 3, axis=2)
  matrix = crop_lib.crop_matrix((8.0, 8.0, 32.0, 32.0))
  crops = np.stack([crop_lib.warp(rgb, matrix),
                    crop_lib.warp(np.ascontiguousarray(rgb[:, ::-1]), matrix)])
  points, _ = facemesh.run(facemesh.load_variables(), crops)
  return points[0].astype(np.float64), points[1].astype(np.float64)


def test_the_mirror_table_pairs_the_sides_and_keeps_the_midline():
  mirror = np.asarray(t.MIRROR)
  assert sorted(mirror) == list(range(facemesh.NUM_POINTS))
  assert np.array_equal(mirror[mirror], np.arange(facemesh.NUM_POINTS))
  for right, left in zip(t.RIGHT_EYE + t.RIGHT_EYEBROW,
                         t.LEFT_EYE + t.LEFT_EYEBROW):
    assert list(mirror[list(right)]) == list(left)
  for lip in t.LIPS:  # Each lip line runs from one corner to the other.
    assert list(mirror[list(lip)]) == list(lip[::-1])
  assert list(mirror[list(t.FACE_OVAL)]) == list(t.FACE_OVAL[::-1])
  for point in (t.SUBNASALE, t.UPPER_LIP_TOP, t.UPPER_LIP_INNER,
                t.LOWER_LIP_INNER, t.NOSE_TIP, t.CHIN):
    assert mirror[point] == point


@pytest.mark.slow  # FaceMesh's compilation: 25 s on a busy 2-core CPU.
def test_a_mirrored_mesh_is_the_mesh_of_the_mirror_image(face_points):
  points, of_mirror_image = face_points
  reference = au.normalise(points)
  mirrored = au.descriptor(au.mirror(points, width=48.0), reference)
  plain = au.descriptor(points, reference)
  seen = au.descriptor(of_mirror_image, reference)
  n = len(au.MEASURES)
  # FaceMesh is not exactly mirror-symmetric; the aligned mesh of its
  # mirrored points must still land far closer to what it sees in the
  # mirror image than the unmirrored points do.
  off = np.linalg.norm(mirrored[n:] - seen[n:])
  assert off < 0.5 * np.linalg.norm(plain[n:] - seen[n:])
  # The measures average or span both sides: a mirror leaves them as they
  # are; a second mirror gives the mesh back.
  np.testing.assert_allclose(mirrored[:n], plain[:n], atol=1e-5)
  np.testing.assert_allclose(au.mirror(au.mirror(points, 48.0), 48.0),
                             points)


# --- Alignment: a probe model that is right exactly when the geometry it is
# given is its image's (and mirrored exactly when the image is).

def probe_split(n: int, rng: np.random.Generator) -> loading.Split:
  """Image i: left half i, right half 200; its geometry rows (i, 0) and
  (i, 1) for its mirror image; label i mod C."""
  images = np.full((n, 16, 16, 1), 200, np.uint8)
  ids = rng.permutation(n).astype(np.uint8)  # Not the row order.
  images[:, :, :8, 0] = ids[:, None, None]
  geometry = np.stack([np.stack([ids, np.zeros(n)], -1),
                       np.stack([ids, np.ones(n)], -1)], 1).astype(np.float32)
  return loading.Split(images, (ids % C).astype(np.int32), geometry=geometry,
                       mesh_scores=np.ones(n, np.float32))


class Probe(nn.Module):
  """Predicts its image's label when ``geometry`` is that image's (and
  mirrored iff the image is), the next class otherwise."""

  num_classes: int = C

  @nn.compact
  def __call__(self, x, *, train=False, geometry=None):
    del train
    bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
    if geometry is None:  # Initialisation (shapes only).
      return jnp.zeros((len(x), self.num_classes)) + bias
    pixels = jnp.round(x[..., 0] * 255)
    mirrored = pixels[:, 0, 0] > pixels[:, 0, -1]
    ident = jnp.where(mirrored, pixels[:, 0, -1], pixels[:, 0, 0])
    ok = (ident == geometry[:, 0]) & (mirrored == (geometry[:, 1] > 0.5))
    label = ident.astype(jnp.int32) % self.num_classes
    predicted = jnp.where(ok, label, (label + 1) % self.num_classes)
    return 10.0 * jax.nn.one_hot(predicted, self.num_classes) + bias


INPUTS = steps.InputSpec(image_size=(16, 16), channels=1, mean=(0.0,),
                         std=(1.0,))


def flip_augment():
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  cfg = {"flip": True}
  return (functools.partial(augment.augment, cfg=cfg),
          functools.partial(augment.flips, cfg=cfg))


def test_each_training_row_gets_its_own_geometry_mirrored_with_it():
  n, batch = 48, 16
  split = probe_split(n, np.random.default_rng(0))
  parallel = Parallel("shard_map", jax.devices()[:2])
  spec = steps.TrainSpec(global_batch=batch, per_device_batch=batch // 2,
                         steps_per_epoch=n // batch, inputs=INPUTS,
                         loss=losses.LossSpec(num_classes=C))
  augment, flips = flip_augment()
  tx = optax.sgd(0.0)
  state = parallel.replicate(state_lib.create(
      model=Probe(), tx=tx, input_shape=(16, 16, 1), seed=0))
  step = parallel.map(functools.partial(
      steps.train_step, model=Probe(), tx=tx,
      schedule=optax.constant_schedule(0.0), spec=spec, augment=augment,
      flips=flips))

  def accuracies(split):
    batches = input_pipeline.InMemoryBatches(
        split, seed=3, steps_per_epoch=n // batch, parallel=parallel)
    out = []
    for _, data, perm in batches.iterate(0, 2 * n // batch):
      _, metrics = step(state, data, perm)
      out.append(float(parallel.unreplicate(metrics)["accuracy"]))
    return out

  assert accuracies(split) == [1.0] * 6  # Two epochs, two orders.
  # The control: every row's geometry one row off, and the probe sees it.
  shifted = dataclasses.replace(split, geometry=np.roll(split.geometry, 1, 0))
  assert max(accuracies(shifted)) < 0.2


def test_flips_names_the_images_augment_mirrors():
  augment, flips = flip_augment()
  images = jnp.asarray(probe_split(32, np.random.default_rng(1)).images
                       ) / 255.0
  key = jax.random.key(5)
  out = augment(key, images)
  mirrored = np.asarray(out[:, 0, 0, 0] > out[:, 0, -1, 0])
  assert np.array_equal(mirrored, np.asarray(flips(key, 32)))
  assert 5 < mirrored.sum() < 27


@pytest.mark.parametrize("tta", ["none", "ten_crop"])
def test_every_eval_view_gets_its_examples_geometry(tta):
  split = probe_split(37, np.random.default_rng(2))  # Padded to 48.
  parallel = Parallel("shard_map", jax.devices()[:2])
  evaluator = Evaluator(
      "probe", split, eval_config=ml_collections.ConfigDict(
          dict(tta=tta, crop_size=(12, 12))),
      batch_size=16, parallel=parallel, model=Probe(), inputs=INPUTS,
      class_names=tuple("abcdefg"), loss=losses.LossSpec(num_classes=C))
  variables = parallel.replicate({"params": {"bias": np.zeros(C)}})
  result = evaluator(variables)
  assert result["num_examples"] == 37 and result["accuracy"] == 1.0
  assert result["low_score_meshes"] == 0
  probs = evaluator.probabilities(variables)
  assert np.array_equal(probs.argmax(-1), split.labels)


def test_split_rows_keep_their_geometry_and_a_shifted_cache_is_refused():
  split = probe_split(10, np.random.default_rng(4))
  rows = np.array([7, 2, 5])
  taken = split.take(rows)
  assert np.array_equal(taken.geometry, split.geometry[rows])
  assert np.array_equal(taken.mesh_scores, split.mesh_scores[rows])
  joined = loading.Split.concatenate([split, taken])
  assert np.array_equal(joined.geometry[10:], split.geometry[rows])
  # Meshes whose labels are not the images' (one row off) are an error.
  points = np.random.default_rng(5).uniform(0, 48, (11, 468, 3))
  labels = np.concatenate([[split.labels[-1]], split.labels])
  meshes = landmarks_data.Meshes(points[:10], np.ones(10), labels[:10])
  standardizer = geometry_features.Standardizer.fit(points)
  with pytest.raises(ValueError, match="'probe' does not line up"):
    geometry_features.with_geometry(split, meshes, standardizer, "probe")
  meshes = landmarks_data.Meshes(points[1:], np.ones(10), labels[1:])
  lined_up = geometry_features.with_geometry(split, meshes, standardizer,
                                             "probe")
  assert lined_up.geometry.shape == (10, 2, au.DESCRIPTOR_SIZE)
  np.testing.assert_allclose(
      lined_up.geometry[:, 1],
      standardizer(au.mirror(points[1:]))[:, 0], rtol=1e-5, atol=1e-5)


# --- Config checks.

def geometry_fusion(config):
  config.model.fusion.features = ("geometry",)
  config.model.fusion.mode = "early"
  return config


@pytest.mark.parametrize("field,value,named,message", [
    ("model.fusion.features", ("geometry", "lbp"), "model.fusion.features",
     "('geometry',) alone"),
    ("model.fusion.mode", "late", "model.fusion.mode", "ferjax fuse"),
    ("input.protocol", "review_70_30", "input.protocol", "stored splits"),
    ("input.pipeline", "stream", "input.pipeline", "in-memory split"),
    ("input.mix.mixup_alpha", 0.2, "input.mix", "no mixup or cutmix"),
])
def test_configs_that_cannot_carry_geometry_are_refused(field, value, named,
                                                        message):
  config = geometry_fusion(tiny_config("/nonexistent"))
  config_checks.validate(config)
  node = config
  *parents, name = field.split(".")
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ConfigError, match=f"config.{named}:") as e:
    config_checks.validate(config)
  assert message in str(e.value)


def test_a_missing_landmark_cache_names_the_command_that_builds_it(
    synthetic_data_dir, tmp_path):
  config = geometry_fusion(tiny_config(synthetic_data_dir))
  builder = loading.prepared_builder("synthetic_fer",
                                     data_dir=synthetic_data_dir)
  with pytest.raises(ValueError,
                     match=r"ferjax data prepare synthetic_fer --landmarks"):
    geometry_features.attach(builder, "train[:64]", {
        "test[:8]": loading.read_split(builder, "test[:8]")})
  del config


# --- A tiny run end to end, on a cache of constructed meshes.

# A point of the cheek or forehead per label.
LABEL_POINTS = (50, 280, 101, 330, 108, 337, 9)


def write_cache(builder, split: str, base: np.ndarray,
                rng: np.random.Generator) -> None:
  """Meshes for the first examples of ``split``: ``base`` jittered, with one point per label moved; every tenth face scored low.
  Written as the cache stores FaceMesh's."""
  data = loading.read_split(builder, split)
  n = len(data)
  points = np.repeat(base[None].astype(np.float32), n, 0)
  points += rng.normal(0, 0.2, points.shape).astype(np.float32)
  moved = np.asarray(LABEL_POINTS)[data.labels]
  points[np.arange(n), moved, 0] += 8.0
  scores = np.where(np.arange(n) % 10 == 0, 0.1, 0.9).astype(np.float32)
  buffer = io.BytesIO()
  np.savez(buffer, points=points, scores=scores,
           labels=np.asarray(data.labels, np.int32),
           weights_sha256=np.array(landmarks_data.weights_digest()),
           seconds=np.array(0.0))
  path = landmarks_data.chunk_path(builder, split.split("[")[0], 0)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buffer.getvalue())


@pytest.fixture
def cached(synthetic_data_dir, monkeypatch, tmp_path):
  """A copy of synthetic_fer's data dir with a landmark cache of its first
  256 training and 128 test faces (cache files of 256 faces)."""
  import shutil  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path / "data"
  shutil.copytree(synthetic_data_dir, data_dir)
  monkeypatch.setattr(landmarks_data, "CHUNK", 256)
  builder = loading.prepared_builder("synthetic_fer", data_dir=str(data_dir))
  rng = np.random.default_rng(0)
  base = rng.uniform(0, 48, (facemesh.NUM_POINTS, 3))  # Any mesh will do.
  write_cache(builder, "train[:256]", base, rng)
  write_cache(builder, "test[:256]", base, rng)
  return str(data_dir), builder


@pytest.mark.slow  # 45 s on a busy 2-core CPU.
def test_a_tiny_geometry_fusion_run_trains_evaluates_and_refuses_export(
    cached, tmp_path, capsys):
  data_dir, builder = cached
  config = geometry_fusion(tiny_config(
      data_dir, **{"input.train_split": "train[:256]",
                   "evals": "{'test': {'split': 'test[:100]', 'tta': "
                            "'ten_crop', 'crop_size': (44, 44)}}"}))
  config.input.augment = ml_collections.ConfigDict(dict(flip=True))
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(config, str(workdir), argv=["t"])
  test = results["test"]
  assert test["low_score_meshes"] == 10  # Rows 0, 10, ..., 90.
  manifest = RunDir(workdir).read_manifest()
  assert manifest["dataset"]["low_score_meshes"] == {"train": 26, "test": 10}
  assert np.isfinite(test["loss"])
  _, restored = open_run(workdir).restore("latest")
  kernel = restored["raw"]["params"]["geometry_classifier"]["kernel"]
  assert kernel.shape == (au.DESCRIPTOR_SIZE, C)
  assert cli.main(["eval", "--workdir", str(workdir), "--checkpoint",
                   "latest", "--json"]) == 0
  evaluated = json.loads(capsys.readouterr().out)["results"]["test (ten_crop)"]
  assert evaluated["accuracy"] == pytest.approx(test["accuracy"])
  assert evaluated["low_score_meshes"] == 10
  with pytest.raises(ValueError, match="fuses the face's geometry"):
    load_model(workdir)
