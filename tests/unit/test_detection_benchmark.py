"""benchmarks/detection.py: matching, counting and the generated negatives."""

import json

import numpy as np

import detection  # benchmarks/, on pytest's pythonpath


def test_match_pairs_each_face_once_at_iou_one_half():
  faces = [(0, 0, 100, 100), (300, 0, 100, 100)]
  found = [(0, 0, 100, 100, 0.9),      # the first face
           (5, 5, 100, 100, 0.95),     # the first face again, better scored
           (300, 0, 100, 190, 0.99),   # IoU 0.53 with the second
           (600, 0, 50, 50, None)]     # nothing there
  true, false, missed = detection.match(found, faces)
  assert [f[4] for f in true] == [0.99, 0.95]
  assert [f[4] for f in false] == [None, 0.9]  # no score ranks first
  assert missed == 0
  true, false, missed = detection.match([(300, 0, 100, 210, 0.9)], faces)
  assert (true, missed) == ([], 2)  # IoU 0.48: a false detection and a miss
  # A detection of an optional face counts neither way.
  assert detection.match([(600, 0, 50, 50, 0.9)], faces,
                         [(600, 0, 50, 50)]) == ([], [], 2)


def test_counts_take_the_best_scored_detections_as_true():
  found = [(0, 0, 9, 9, 0.8), (0, 0, 9, 9, 0.99), (0, 0, 9, 9, 0.9)]
  true, false, missed = detection.score(found, {"count": 2})
  assert [f[4] for f in true] == [0.99, 0.9]
  assert [f[4] for f in false] == [0.8]
  assert missed == 0
  assert detection.score(found[:1], {"count": 3})[2] == 2


def test_negatives_are_the_same_for_a_seed_and_differ_between_seeds():
  sizes = ((72, 128), (90, 160))
  first = list(detection.negatives(0, sizes))
  names = [n for n, _ in first]
  assert len(names) == len(set(names)) == 24
  for name, image in first:
    assert image.dtype == np.uint8 and image.shape[2] == 3, name
    assert image.shape[:2] in sizes, name
  again = dict(detection.negatives(0, sizes))
  other = dict(detection.negatives(1, sizes))
  for name, image in first:
    np.testing.assert_array_equal(again[name], image)
  assert not np.array_equal(other["clothing-0-72p"],
                            dict(first)["clothing-0-72p"])


def test_truth_file_covers_every_set_with_boxes_or_counts():
  truth = json.loads(detection.TRUTH.read_text())
  for part in ("photos", "resolution"):
    for name, entry in truth[part].items():
      assert all(len(box) == 4 for box in entry["faces"]), name
  assert [len(e["faces"]) for e in truth["resolution"].values()] == [1] * 4
  counts = truth["video"]["counts"]
  assert sorted(map(int, counts)) == list(range(0, 275, 11))
  assert sum(counts.values()) == 39
