"""Training batches for the step: from device memory, or streamed.

In memory (the default for FER-sized data) the whole split lives on every
device and the step gathers its rows from the epoch's permutation: no host
work per step. Streaming (datasets larger than device memory) reads each
global batch from ``tfds.data_source`` in a background thread, in the same
permutation order, so both paths feed the step identical batches and give
identical numbers for the same seed. Each process reads only the rows of its
own devices, so several hosts share the reading.
"""

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ferjax.data import loading
from ferjax.train.parallel import Parallel


def call_plan(start_step: int, total_steps: int, steps_per_epoch: int,
              k: int) -> Iterator[tuple[int, int]]:
  """``(first step, steps)`` of each call from ``start_step``.

  Calls end on the multiples of ``k`` and on epoch ends, so every boundary
  the loop keeps (windows, saves: multiples of k) and every epoch end falls
  between calls, from any saved step. Where an epoch's step count is not a
  multiple of k (201 at batch 128 on FER2013), the pieces shorter than k
  run as powers of two: at most log2(k) extra programs to compile, rather
  than one per length.
  """
  step = start_step
  while step < total_steps:
    end = min((step // k + 1) * k,
              (step // steps_per_epoch + 1) * steps_per_epoch, total_steps)
    n = end - step
    if n < k:
      n = 1 << (n.bit_length() - 1)
    yield step, n
    step += n


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The epoch's example order: a function of (seed, epoch) alone."""
  return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


class InMemoryBatches:
  """Step arguments ``(data, perm)``: the split and the epoch's order.

  One item ``(steps, data, perm)`` per call of at most ``steps_per_call``
  steps (``call_plan``): they all read the split with the same permutation
  (a call never straddles an epoch end). With ``targets`` the split's soft
  targets travel too (``data["targets"]``), and a split with geometry
  (``data.geometry_features``) its descriptors (``data["geometry"]``), whose
  rows the step gathers by the same permutation as the images'.
  """

  streaming = False

  def __init__(self, split: loading.Split, *, seed: int, steps_per_epoch: int,
               parallel: Parallel, steps_per_call: int = 1,
               targets: bool = False):
    data = {"images": np.asarray(split.images),
            "labels": np.asarray(split.labels)}
    if targets:
      if split.targets is None:
        raise ValueError("training on soft targets, but the train split "
                         "has none (a mixture with a dataset without a "
                         f"{loading.SOFT_TARGET_FEATURE!r} feature?)")
      data["targets"] = np.asarray(split.targets, np.float32)
    if split.geometry is not None:
      data["geometry"] = np.asarray(split.geometry, np.float32)
    self._data = parallel.replicate(data)
    self._n = len(split)
    self._seed = seed
    self._spe = steps_per_epoch
    self._parallel = parallel
    self._k = steps_per_call

  def iterate(self, start_step: int, total_steps: int) -> Iterator[tuple]:
    perm_epoch = None
    for step, n in call_plan(start_step, total_steps, self._spe, self._k):
      epoch = step // self._spe
      if epoch != perm_epoch:
        perm = self._parallel.replicate(
            epoch_permutation(self._seed, epoch, self._n))
        perm_epoch = epoch
      yield n, self._data, perm


class StreamingBatches:
  """Step arguments ``(batch, unused)``: one global batch per step, sharded.

  A thread reads and decodes batches ``prefetch`` calls ahead of the
  device, so reading overlaps computation. With ``steps_per_call`` k > 1
  each item ``(steps, batches, unused)`` holds the global batches of a call
  (``call_plan``: k or fewer), stacked. With ``targets`` each batch carries
  its rows' soft targets too.
  """

  streaming = True

  def __init__(self, source: Any, *, seed: int, steps_per_epoch: int,
               batch_size: int, parallel: Parallel, prefetch: int = 2,
               steps_per_call: int = 1, targets: bool = False):
    self._source = source
    self._targets = targets
    self._n = len(source)
    self._seed = seed
    self._spe = steps_per_epoch
    self._batch = batch_size
    self._parallel = parallel
    self._prefetch = prefetch
    self._k = steps_per_call
    self._unused = parallel.replicate(np.zeros((1,), np.int32))
    self._mine = parallel.local_positions(batch_size)

  def _read(self, perm: np.ndarray, within: int) -> dict[str, np.ndarray]:
    rows = perm[within * self._batch:(within + 1) * self._batch][self._mine]
    records = self._source.__getitems__(rows.tolist())
    batch = {"images": np.stack([r["image"] for r in records]),
             "labels": np.asarray([r["label"] for r in records], np.int32)}
    if self._targets:
      batch["targets"] = np.stack(
          [r[loading.SOFT_TARGET_FEATURE] for r in records]
      ).astype(np.float32)
    return batch

  def _call(self, perm: np.ndarray, within: int,
            n: int) -> dict[str, np.ndarray]:
    """The ``n`` batches of the call whose first step is ``within`` the
    epoch (stacked whenever k > 1, even for a call of one)."""
    if self._k == 1:
      return self._read(perm, within)
    batches = [self._read(perm, within + i) for i in range(n)]
    return {name: np.stack([b[name] for b in batches]) for name in batches[0]}

  def iterate(self, start_step: int, total_steps: int) -> Iterator[tuple]:
    q: queue.Queue = queue.Queue(maxsize=self._prefetch)
    stop = threading.Event()
    calls = list(call_plan(start_step, total_steps, self._spe, self._k))

    def produce():
      perm_epoch = None
      try:
        for step, n in calls:
          if stop.is_set():
            return
          epoch, within = divmod(step, self._spe)
          if epoch != perm_epoch:
            perm = epoch_permutation(self._seed, epoch, self._n)
            perm_epoch = epoch
          q.put((n, self._parallel.shard(self._call(perm, within, n),
                                         self._batch, stacked=self._k > 1)))
      except BaseException as e:  # Re-raised in the training thread.
        q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
      for _ in calls:
        item = q.get()
        if isinstance(item, BaseException):
          raise item
        n, batches = item
        yield n, batches, self._unused
    finally:
      stop.set()
      while thread.is_alive():
        try:
          q.get_nowait()
        except queue.Empty:
          thread.join(timeout=0.1)
