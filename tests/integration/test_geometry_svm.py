"""The geometric SVMs (JAX + Optax) against scikit-learn on the same
features: LinearSVC for the linear kernel, SVC for the RBF kernel (Nystrom
features), within one point of accuracy."""

import numpy as np
import pytest

from ferjax.models import create_model
from ferjax.train import geometry

NUM_CLASSES = 7


def linear_problem(seed: int = 0):
  """Seven overlapping Gaussian classes in 30 dimensions, features of
  unequal scales (standardisation matters)."""
  rng = np.random.default_rng(seed)
  means = rng.normal(0, 1.0, (NUM_CLASSES, 30))
  scale = rng.uniform(0.1, 10.0, 30)

  def draw(n):
    y = rng.integers(0, NUM_CLASSES, n)
    return (means[y] + rng.normal(0, 2.2, (n, 30))) * scale, y

  return draw(1400), draw(1400)


def xor_problem(seed: int = 0):
  """Four classes, each two clusters at opposite corners (XOR-like) in 2 of
  12 dimensions: no linear boundary separates them."""
  rng = np.random.default_rng(seed)
  corners = 1.5 * np.array([[1, 1], [-1, -1], [1, -1], [-1, 1], [2, 0],
                            [-2, 0], [0, 2], [0, -2]])

  def draw(n):
    y = rng.integers(0, 4, n)
    where = corners[2 * y + rng.integers(0, 2, n)]
    return np.c_[where + rng.normal(0, 0.8, (n, 2)),
                 rng.normal(0, 1.0, (n, 10))], y

  return draw(1400), draw(1400)


def accuracy(model, variables, x, y) -> float:
  return float((np.asarray(model.apply(variables, x)).argmax(-1) == y).mean())


@pytest.mark.slow  # ~12 s: scikit-learn and a compiled L-BFGS loop.
def test_linear_svm_agrees_with_linear_svc():
  svm = pytest.importorskip("sklearn.svm")
  (x, y), (xt, yt) = linear_problem()
  model = create_model("geometry_svm", num_classes=NUM_CLASSES)
  variables = geometry.fit_model(model, x, y, seed=0, iterations=500,
                                 reference=np.zeros((468, 2)))
  ours = accuracy(model, variables, xt, yt)
  params = variables["params"]
  reference = svm.LinearSVC(C=1.0, max_iter=20000).fit(
      geometry.svm_inputs(model, params, x), y)
  theirs = reference.score(geometry.svm_inputs(model, params, xt), yt)
  assert 0.5 < theirs < 0.95  # Neither trivial nor hopeless.
  assert abs(ours - theirs) <= 0.01, (ours, theirs)


@pytest.mark.slow  # ~25 s.
def test_rbf_svm_agrees_with_svc_and_beats_the_linear_one():
  svm = pytest.importorskip("sklearn.svm")
  (x, y), (xt, yt) = xor_problem()
  model = create_model("geometry_svm", num_classes=4, kernel="rbf",
                       centres=1024)
  variables = geometry.fit_model(model, x, y, seed=0, iterations=500,
                                 reference=np.zeros((468, 2)))
  ours = accuracy(model, variables, xt, yt)
  params = variables["params"]
  standard = lambda a: (a - params["mean"]) / params["std"]
  theirs = svm.SVC(C=1.0, gamma="scale").fit(standard(x), y).score(
      standard(xt), yt)
  linear = svm.LinearSVC(C=1.0).fit(standard(x), y).score(standard(xt), yt)
  assert theirs > linear + 0.2  # XOR needs the kernel.
  assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_fitting_is_deterministic_and_the_objective_falls():
  (x, y), _ = linear_problem(1)
  model = create_model("geometry_svm", num_classes=NUM_CLASSES, kernel="rbf",
                       centres=64)
  fits = [geometry.fit_model(model, x[:300], y[:300], seed=3, iterations=30,
                             reference=np.zeros((468, 2)))["params"]
          for _ in range(2)]
  for a, b in zip(*(sorted(f.items()) for f in fits)):
    np.testing.assert_array_equal(*(np.asarray(v) for v in
                                    (a[1]["kernel"] if a[0] == "svm"
                                     else a[1],
                                     b[1]["kernel"] if b[0] == "svm"
                                     else b[1])))
  h = geometry.svm_inputs(model, fits[0], x[:300])
  signs = np.where(np.eye(NUM_CLASSES)[y[:300]] > 0, 1.0, -1.0)
  zero = {"kernel": np.zeros((64, NUM_CLASSES), np.float32),
          "bias": np.zeros(NUM_CLASSES, np.float32)}
  fitted = float(geometry.squared_hinge_objective(fits[0]["svm"], h, signs,
                                                  1.0))
  assert fitted < 0.5 * float(geometry.squared_hinge_objective(
      zero, h, signs, 1.0))
