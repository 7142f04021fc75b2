"""The geometric SVMs against scikit-learn on FER2013's cached landmarks.

    python benchmarks/geometry_svm.py --data-dir TFDS_DIR [--train 'train[:90%]']
        [--test public_test] [--kernels linear,rbf] [--json]

Needs the landmarks cached (``ferjax data prepare fer2013 --landmarks``) and
scikit-learn (extra ``svm-reference``). On the same standardised features
(the descriptor of ``landmarks.action_units``, aligned to the training
split's mean shape), side by side: ferjax's fit (``train.geometry``: L-BFGS
in Optax, one compiled loop, compilation included) against LinearSVC
(linear) or SVC (RBF, gamma 'scale', C=1, one-vs-one, the exact kernel),
test accuracy of each, their difference, fit seconds and the ratio. SVC's
time grows with the square of the training faces: pass a slice.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", required=True)
  parser.add_argument("--train", default="train[:90%]")
  parser.add_argument("--test", default="public_test")
  parser.add_argument("--kernels", default="linear,rbf")
  parser.add_argument("--iterations", type=int, default=1000)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  from sklearn import svm
  from ferjax.data import landmarks, loading
  from ferjax.landmarks import action_units
  from ferjax.models import create_model
  from ferjax.train import geometry
  builder = loading.prepared_builder("fer2013", data_dir=args.data_dir)
  train = landmarks.read_meshes(builder, args.train)
  test = landmarks.read_meshes(builder, args.test)
  reference = action_units.mean_shape(train.points)
  x = action_units.descriptor(train.points, reference)
  xt = action_units.descriptor(test.points, reference)
  result = {"train": args.train, "train_faces": len(train),
            "test": args.test, "test_faces": len(test),
            "loadavg": [round(v, 2) for v in os.getloadavg()]}
  for kernel in args.kernels.split(","):
    model = create_model("geometry_svm", num_classes=7, kernel=kernel)
    start = time.perf_counter()
    variables = geometry.fit_model(model, x, train.labels, seed=0,
                                   iterations=args.iterations,
                                   reference=reference)
    ours_s = time.perf_counter() - start
    ours = float((np.asarray(model.apply(variables, xt)).argmax(-1)
                  == test.labels).mean())
    params = variables["params"]
    if kernel == "linear":
      inputs = lambda a: geometry.svm_inputs(model, params, a)
      reference_model = svm.LinearSVC(C=1.0, max_iter=10000)
    else:
      inputs = lambda a: (a - params["mean"]) / params["std"]
      reference_model = svm.SVC(C=1.0, gamma="scale")
    start = time.perf_counter()
    reference_model.fit(inputs(x), train.labels)
    theirs_s = time.perf_counter() - start
    theirs = float(reference_model.score(inputs(xt), test.labels))
    result[kernel] = {
        "ferjax_accuracy": round(ours, 4), "sklearn_accuracy": round(theirs, 4),
        "difference_points": round(100 * (ours - theirs), 2),
        "ferjax_fit_s": round(ours_s, 1), "sklearn_fit_s": round(theirs_s, 1),
        "sklearn_over_ferjax_time": round(theirs_s / ours_s, 2)}
    print(kernel, result[kernel], file=sys.stderr, flush=True)
  print(json.dumps(result) if args.json else result)
  return 0


if __name__ == "__main__":
  sys.exit(main())
