"""Runs evaluated on other datasets than their own, classes matched by name.

Cross-dataset accuracy tells a model that generalises from one that learned
its dataset's quirks. A run's classes and a dataset's are matched by their
ferjax names (``labels.canonical_name``: CK+'s ``anger`` is FER2013's
``angry``); nothing is merged. Examples of a class only the dataset has
(FER+'s ``contempt`` for a FER2013 model) cannot be scored: they are counted
and what the model called them is reported, apart from the metrics, which
are those of the shared classes. A class only the model has stays a possible
(always wrong) prediction, and how often it was predicted is reported.
"""

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from ferjax import calibration
from ferjax import metrics as metrics_lib
from ferjax.data import loading
from ferjax.labels import canonical_name, check_same_labels
from ferjax.run.run_dir import RunDir
from ferjax.evaluate import run_evaluation
from ferjax.train import setup


@dataclasses.dataclass(frozen=True)
class DatasetRef:
  """A dataset to evaluate on, and where it is (or is built from)."""

  name: str
  builder_config: str | None = None
  data_dir: str | None = None
  manual_dir: str | None = None

  @classmethod
  def parse(cls, text: str, **dirs: str | None) -> "DatasetRef":
    """``NAME`` or ``NAME/CONFIG`` (TFDS's spelling: ``fer_plus/majority``)."""
    name, _, config = text.partition("/")
    return cls(name, config or None, **dirs)

  @property
  def label(self) -> str:
    return f"{self.name}/{self.builder_config}" if self.builder_config \
        else self.name


def _key(name: str) -> str:
  return canonical_name(name) or name.strip().lower()


@dataclasses.dataclass(frozen=True)
class ClassMatch:
  """The model's classes against a dataset's, by name."""

  model_classes: tuple[str, ...]
  data_classes: tuple[str, ...]
  to_model: tuple[int, ...]  # Per data class: its model index, or -1.

  @classmethod
  def of(cls, model_classes: Sequence[str],
         data_classes: Sequence[str]) -> "ClassMatch":
    keys = [_key(c) for c in model_classes]
    if len(set(keys)) != len(keys):
      raise ValueError(f"the model's classes {list(model_classes)} name one "
                       "expression twice; they cannot be matched by name")
    return cls(tuple(model_classes), tuple(data_classes),
               tuple(keys.index(_key(c)) if _key(c) in keys else -1
                     for c in data_classes))

  @property
  def data_only(self) -> tuple[str, ...]:
    return tuple(c for c, m in zip(self.data_classes, self.to_model) if m < 0)

  @property
  def model_only(self) -> tuple[str, ...]:
    return tuple(c for i, c in enumerate(self.model_classes)
                 if i not in self.to_model)


def score(probabilities: np.ndarray, data_labels: np.ndarray,
          match: ClassMatch) -> dict[str, Any]:
  """The metrics of the examples of shared classes (the model's class
  order), what the model predicted for each dataset-only class, and how
  often each model-only class was predicted."""
  to_model = np.asarray(match.to_model, np.int64)
  mapped = to_model[np.asarray(data_labels, np.int64)]
  known = mapped >= 0
  predicted = probabilities.argmax(-1)
  if not known.any():
    raise ValueError(
        f"no example's class is one the model knows (dataset classes "
        f"{', '.join(match.data_classes)}; model classes "
        f"{', '.join(match.model_classes)})")
  result = metrics_lib.from_probabilities(
      probabilities[known], mapped[known], match.model_classes)
  data_only = {}
  for c, name in enumerate(match.data_classes):
    if match.to_model[c] < 0:
      picks = collections.Counter(
          match.model_classes[p] for p in predicted[data_labels == c])
      data_only[name] = {"examples": int((data_labels == c).sum()),
                         "predicted_as": dict(picks.most_common())}
  model_only = {name: int((predicted == match.model_classes.index(name)).sum())
                for name in match.model_only}
  return {**result, "examples_all": int(len(data_labels)),
          "accuracy_all": float((predicted[known] == mapped[known]).sum()
                                / len(data_labels)),
          "dataset_only": data_only, "model_only_predicted": model_only}


def _data_loader(ref: DatasetRef, model_classes: tuple[str, ...],
                 image_shape: tuple[int, ...], labels: dict[str, np.ndarray]):
  """A ``setup.load_data`` for ``_member``: ``ref``'s splits shaped as the
  run's data (its classes, placeholder labels), the true labels put into
  ``labels`` by eval name."""

  def load(config: ml_collections.ConfigDict, *,
           with_train: bool = False) -> setup.Data:
    del with_train  # Only evaluations.
    builder = loading.prepared_builder(
        ref.name, data_dir=ref.data_dir, manual_dir=ref.manual_dir,
        builder_config=ref.builder_config)
    info = loading.dataset_info(builder)
    if tuple(info.image_shape) != tuple(image_shape):
      raise ValueError(
          f"dataset {ref.label} stores {info.image_shape} images, the run "
          f"was trained on {tuple(image_shape)}; they cannot be compared")
    splits = {}
    for name, ev in config.evals.items():
      split = loading.read_split(builder, ev.split)
      labels[name] = split.labels
      splits[name] = loading.Split(split.images,
                                   np.zeros_like(split.labels))
    return setup.Data(dataclasses.replace(info, class_names=model_classes),
                      False, splits)

  return load


def default_splits(ref: DatasetRef) -> list[str]:
  """The dataset's splits but train, or train when it is the only one."""
  builder = loading.prepared_builder(
      ref.name, data_dir=ref.data_dir, manual_dir=ref.manual_dir,
      builder_config=ref.builder_config)
  splits = [s for s in builder.info.splits if s != "train"]
  return splits or ["train"]


def evaluate(workdirs: Sequence[str], datasets: Sequence[DatasetRef], *,
             split: str | None = None,
             checkpoint: str | Sequence[str] = "best",
             tta: str | None = None,
             crop_size: tuple[int, int] | None = None) -> dict[str, Any]:
  """Each run (and, for several, their ensemble: the mean softmax, each at
  its stored temperature as ``evaluate_ensemble`` does) on ``split`` (default:
  ``default_splits``) of each dataset.

  Returns {"models": [workdir..., "ensemble"], "evaluations": [{"dataset",
  "split", "data_classes", "dataset_only", "model_only", "results":
  {model: score(...) plus "step" (members) and "calibrated"}}]}.
  """
  checkpoints = [checkpoint] if isinstance(checkpoint, str) else list(
      checkpoint)
  if len(checkpoints) == 1:
    checkpoints *= len(workdirs)
  if len(checkpoints) != len(workdirs):
    raise ValueError(
        f"--checkpoint: expected one for every run or one per --workdir "
        f"({len(workdirs)}), got {len(checkpoints)}")
  records = [RunDir(w).dataset() for w in workdirs]
  check_same_labels([str(w) for w in workdirs],
                    [r["class_names"] for r in records])
  model_classes = tuple(records[0]["class_names"])
  models = [str(w) for w in workdirs] + (["ensemble"] if len(workdirs) > 1
                                         else [])
  evaluations = []
  for ref in datasets:
    for split_name in ([split] if split else default_splits(ref)):
      results, probabilities, match = {}, [], None
      for workdir, record, member_checkpoint in zip(workdirs, records,
                                                    checkpoints):
        labels: dict[str, np.ndarray] = {}
        member = run_evaluation._member(  # pylint: disable=protected-access
            workdir, split=split_name, checkpoint=member_checkpoint, tta=tta,
            crop_size=crop_size, load_data=_data_loader(
                ref, model_classes, tuple(record["image_shape"]), labels))
        ((name, ev),) = member.evaluators.items()
        if match is None:
          builder_classes = loading.prepared_builder(
              ref.name, data_dir=ref.data_dir,
              builder_config=ref.builder_config).info.features["label"].names
          match = ClassMatch.of(model_classes, builder_classes)
          data_labels = labels[name]
        log_probs = member.log_probabilities(name)
        results[str(workdir)] = {
            **score(np.exp(log_probs), data_labels, match),
            "step": member.step, "calibrated": member.temperature is not None}
        # As evaluate_ensemble: each member calibrated if it can be.
        probabilities.append(calibration.scaled_probabilities(
            log_probs, member.temperature or 1.0))
      if len(workdirs) > 1:
        results["ensemble"] = {
            **score(np.mean(probabilities, axis=0), data_labels, match),
            "calibrated": calibration.calibrated_flag(
                [r["calibrated"] for r in results.values()])}
      evaluations.append({
          "dataset": ref.label, "split": split_name,
          "data_classes": list(match.data_classes),
          "dataset_only": list(match.data_only),
          "model_only": list(match.model_only), "results": results})
  return {"models": models, "model_classes": list(model_classes),
          "evaluations": evaluations}

