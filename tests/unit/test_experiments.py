"""Every experiment config loads, validates and builds its model.

A config is only exercised by its own long run; a model rename or a field
that no longer validates would otherwise surface hours into someone's sweep.
"""

import ast
import pathlib

import jax
import jax.numpy as jnp
import pytest

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.labels import CKPLUS_CLASSES, FER2013_CLASSES
from ferjax.landmarks import action_units
from ferjax.models import GEOMETRIC_MODELS
from ferjax.train import setup

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments"
# The arguments a config cannot do without (it says so when they are absent).
REQUIRED_ARGS = {
    "ckplus_lenet_finetune.py": ["source=runs/x"],
    "ckplus_vgg_finetune.py": ["source=runs/x"],
    "fer2013_googlenet_finetune.py": ["source=runs/x"],
    "fer2013_review.py": [f"family={f}" for f in
                          ("lenet5", "alexnet", "vgg11_bn", "googlenet")],
}
FILES = sorted(p.name for p in EXPERIMENTS.glob("*.py"))
SPECS = [f"{name}:{arg}" for name in FILES
         for arg in REQUIRED_ARGS.get(name, [""])]


def test_every_experiment_file_is_covered():
  assert len(FILES) >= 14
  assert set(REQUIRED_ARGS) <= set(FILES)


@pytest.mark.parametrize("spec", SPECS)
def test_experiment_loads_validates_and_builds_its_model(spec):
  name, _, arg = spec.partition(":")
  path = EXPERIMENTS / name
  docstring = ast.get_docstring(ast.parse(path.read_text()))
  assert docstring and "ferjax " in docstring and name in docstring, (
      f"{name}: the docstring must give the command that runs it")
  config = config_lib.load_config(f"{path}:{arg}" if arg else str(path))
  config_checks.validate(config)
  classes = (CKPLUS_CLASSES if config.input.dataset == "ck_plus"
             else FER2013_CLASSES)
  model, _ = setup.models(config, len(classes))
  height, width = config.input.image_size
  # Geometric models read landmark descriptors, not images.
  example = ((action_units.DESCRIPTOR_SIZE,)
             if config.model.name in GEOMETRIC_MODELS
             else (height, width, config.input.channels))
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, *example)))
  logits = jax.eval_shape(
      lambda v: model.apply(v, jnp.zeros((2, *example))), shapes)
  assert logits.shape == (2, len(classes))
