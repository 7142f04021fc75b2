"""Losses and training strategies on FER2013 with LeNet-5, with seeds.

The review's future work measured: "harder negative samples during training,
and online hard sample mining" and "loss functions and training strategies
that are better suited". Each trial is the FER2013 LeNet-5 recipe
(experiments/fer2013_lenet.py) at ``epochs=N`` (default 10, as the fusion
study) with one change, ``strategy=NAME``:

  cross_entropy  the recipe as it is (the baseline of the paired differences)
  focal          focal loss, gamma 2 (Lin et al. 2017)
  ohem50, ohem25 online hard example mining: the 50% / 25% of each global
                 batch with the highest loss
  l2_svm         one-vs-rest squared hinge (Tang 2013, the FER2013 winner)
  class_balanced cross-entropy weighted by the inverse effective number of
                 samples, beta 0.9999 (Cui et al. 2019)
  mixup          mixup, alpha 0.2 (Zhang et al. 2018)
  ema            every evaluation (and so model selection) on the moving
                 average of the weights, decay 0.998 (about 2.5 epochs)

x seeds 0, 1, 2: 24 trials in run directories ``<strategy>-seed<N>``. At 10
epochs a trial takes about 7 minutes on 2 CPU devices (run the sweep in the
background; it resumes where it stopped):

  ferjax sweep --config experiments/fer2013_strategies.py:epochs=10 \
      --config.input.manual_dir=DATA/fer2013 \
      --workdir runs/fer2013_strategies --concurrent-trials 2 \
      --config.parallel.cpu_devices=1

(DATA: the directory holding fer2013/fer2013.csv.) The same sweep at the
full recipe (30 epochs), for the GPU run:

  ferjax sweep --config experiments/fer2013_strategies.py:full \
      --config.input.manual_dir=DATA/fer2013 \
      --workdir runs/fer2013_strategies_full

and the table (one row per strategy: mean ± sample std over the seeds at the
final step; the "Over seeds" section of what it prints; the paired
difference against cross_entropy is taken seed by seed from its per-trial
rows, and each trial's per-class recall, disgust and fear among them, from
``ferjax eval --workdir runs/fer2013_strategies/NAME --split public_test
--checkpoint latest --per-class``):

  COLS=public_test/accuracy_final,public_test/macro_f1_final
  COLS=$COLS,public_test_tencrop/accuracy_final
  ferjax report runs/fer2013_strategies --out runs/fer2013_strategies_report \
      --eval public_test --columns $COLS

Config arguments: ``strategy=`` one of the above (default cross_entropy),
``epochs=N``, ``full`` (the recipe's 30 epochs), ``runlocal`` (2 epochs on
2,048 training images: a smoke test of one trial, about 2 minutes on a
CPU).

Expected results at ``epochs=10`` (measured, experiments/RESULTS.md):
PublicTest accuracy, mean ± std over the 3 seeds, and macro F1:

  cross_entropy   0.468 ± 0.004   F1 0.368   disgust recall 0
  focal           0.467 ± 0.008   F1 0.373   fear recall 0.21 (CE 0.17)
  ohem50          0.288 ± 0.009   F1 0.251   fails: stuck near 27%
  ohem25          0.189 ± 0.018   F1 0.156
  l2_svm          0.476 ± 0.009   F1 0.368   ten-crop 0.496
  class_balanced  0.439 ± 0.004   F1 0.374   disgust recall 0.49
  mixup           0.456 ± 0.005   F1 0.356
  ema             0.463 ± 0.005   F1 0.360

About 3-4 hours for all 24 trials on 2 CPU cores, two at a time.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep

_HERE = pathlib.Path(__file__).parent

# Each strategy's changes to the recipe, as config overrides.
STRATEGIES: dict[str, dict[str, object]] = {
    "cross_entropy": {},
    "focal": {"loss.name": "focal", "loss.focal_gamma": 2.0},
    "ohem50": {"loss.ohem_fraction": 0.5},
    "ohem25": {"loss.ohem_fraction": 0.25},
    "l2_svm": {"loss.name": "l2_svm"},
    "class_balanced": {"loss.class_weights": "effective_number",
                       "loss.class_balance_beta": 0.9999},
    "mixup": {"input.mix.mixup_alpha": 0.2},
    "ema": {"optimizer.ema_decay": 0.998},
}
SEEDS = (0, 1, 2)
FULL_EPOCHS = 30  # fer2013_lenet.py's own.


def _args(arg: str | None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, strategy="cross_entropy", epochs=10,
                              full=False, runlocal=False)
  if args.strategy not in STRATEGIES:
    raise config_lib.ConfigError(
        f"config argument 'strategy': expected one of "
        f"{', '.join(STRATEGIES)}, got {args.strategy!r}")
  return args


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = _args(arg)
  epochs = FULL_EPOCHS if args.full else args.epochs
  recipe = f"epochs={epochs}" + (",runlocal" if args.runlocal else "")
  config = config_lib.load_config(f"{_HERE / 'fer2013_lenet.py'}:{recipe}")
  config = config_lib.apply_overrides(config, [
      f"{field}={sweep.format_value(value)}"
      for field, value in STRATEGIES[args.strategy].items()])
  if config.optimizer.ema_decay:
    for ev in config.evals.values():
      ev.weights = "ema"
  return config


def get_sweep(arg: str | None = None) -> list[sweep.TrialSpec]:
  """Every strategy with every seed; seeds vary slowest, so an interrupted
  sweep has whole seeds of the table."""
  args = _args(arg)
  common = ",".join(filter(None, [
      "full" if args.full else f"epochs={args.epochs}",
      "runlocal" if args.runlocal else ""]))
  return [sweep.TrialSpec({"seed": seed},
                          arg=f"strategy={strategy},{common}",
                          name=f"{strategy}-seed{seed}")
          for seed in SEEDS for strategy in STRATEGIES]
