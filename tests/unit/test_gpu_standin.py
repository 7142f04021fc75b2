"""gpu/standin.py: the rehearsal's CPU stand-ins, their scale and timeline."""

import math

import pytest

from ferjax import config as config_lib
from helpers import REPO

import review_budget  # noqa: E402  (gpu/ is on pytest's pythonpath)
import standin  # noqa: E402

REVIEW = str(REPO / "experiments" / "fer2013_review.py")
FULL = {"train": 28_709, "public_test": 3_589}


def test_h100_seconds_is_flops_at_the_rate_plus_a_floor_per_step():
  # 128 images of 1 GFLOP at 50 TFLOP/s, and two steps of 3 ms.
  assert standin.h100_seconds(128, 64, 1e9) == pytest.approx(
      128e9 / 50e12 + 2 * 3e-3)
  # A partial batch is a step.
  assert standin.h100_seconds(129, 64, 0.0) == pytest.approx(3 * 3e-3)


def test_standin_images_are_the_cpu_seconds_worth_within_bounds():
  assert standin.standin_images(3.0, 40.0, 64, 1000) == 120
  assert standin.standin_images(0.1, 40.0, 64, 1000) == 64
  assert standin.standin_images(100.0, 40.0, 64, 1000) == 1000


def test_a_family_s_epoch_takes_the_cpu_scale_times_the_h100_s():
  config = config_lib.load_config(f"{REVIEW}:family=vgg11_bn")
  flops, rate = 615e6, 40.0
  plan = standin.family_plan(config, flops, 3, rate, FULL)
  train = plan["splits"]["train"]
  # train[:90%] of FER2013 at batch 64: 25,838 images in 404 steps.
  h100 = 25_838 * 3 * flops / 50e12 + 404 * 3e-3
  assert train["h100_seconds"] == pytest.approx(h100)
  assert train["images"] == int(3 * h100 * rate)
  assert train["split"] == f"train[:{train['images']}]"
  # An evaluation is forward only, a ten-crop image 10 of them.
  tencrop = plan["splits"]["public_test_tencrop"]
  h100_tencrop = 35_890 * flops / 50e12 + math.ceil(35_890 / 64) * 3e-3
  assert tencrop["images"] == int(3 * h100_tencrop * 3 * rate / 10)
  assert tencrop["split"] == f"public_test[:{tencrop['images']}]"
  # Ten-crop runs every 10 epochs: not in the per-epoch sum.
  assert tencrop["every_epochs"] == 10
  assert plan["h100_epoch_seconds"] == pytest.approx(sum(
      plan["splits"][k]["h100_seconds"]
      for k in ("train", "val", "public_test")))


def test_a_small_pack_keeps_training_and_validation_apart():
  config = config_lib.load_config(f"{REVIEW}:family=lenet5")
  available = {"train": 280, "public_test": 280}
  plan = standin.family_plan(config, 1.3e6, 3, 2000.0, available)
  train, val = plan["splits"]["train"], plan["splits"]["val"]
  assert (train["split"], val["split"]) == ("train[:252]", "train[-28:]")
  sizes = {name: review_budget.split_size(s["split"])
           for name, s in plan["splits"].items()}
  assert sizes["train"] + sizes["val"] <= available["train"]
  assert max(sizes["public_test"], sizes["public_test_tencrop"]) <= 280


def test_overrides_load_as_the_config_s_splits():
  config = config_lib.load_config(f"{REVIEW}:family=googlenet")
  plan = standin.family_plan(config, 484e6, 1, 40.0, FULL)
  flags = standin.overrides(plan)
  assert f"--config.input.train_split={plan['splits']['train']['split']}" in flags
  fields = {flag.split("=")[0].removeprefix("--config.") for flag in flags}
  assert fields == {"input.train_split"} | {
      f"evals.{name}.split" for name in config.evals}


LOG = """\
== a. environment, as the node is (0 s in, 1440 s left, 0 cpu-s)
== install the pack offline (/x/.gpu) (1 s in, 1439 s left, 0 cpu-s)
== a. preflight: what of ferjax runs on the node's versions (5 s in, 1435 s left, 3 cpu-s)
== b. the four-family review on FER2013 (20 s in, 1420 s left, 15 cpu-s)
FER2013 ready at 50 s, 60 cpu-s
lenet5: first epoch at 70 s, 70 cpu-s (20 s of 300, exit 0)
vgg11_bn: first epoch at 250 s, 250 cpu-s (180 s of 400, exit 0)
lenet5: 9 epochs in its share of 200 s
lenet5: done at 480 s, 340 cpu-s (exit 0)
vgg11_bn: done at 500 s, 500 cpu-s (exit 0)
== c. the GPU test selection (500 s in, 940 s left, 500 cpu-s)
== d. train-step throughput, ferjax and PyTorch (600 s in, 840 s left, 600 cpu-s)
== e. summary.json and results.md (900 s in, 540 s left, 1000 cpu-s)
gpu_check.sh: 901 s, 1001 cpu-s; failed parts: none
"""


def _plan():
  return {"scale": 3, "budget_s": 480, "families": {
      "lenet5": {"cpu_train_rate": 100 / 6, "splits": {
          "train": {"images": 100, "h100_seconds": 2.0}}},
      "vgg11_bn": {"cpu_train_rate": 10 / 3, "splits": {
          "train": {"images": 50, "h100_seconds": 5.0},
          "public_test_tencrop": {"images": 12, "crops": 10,
                                  "every_epochs": 10, "h100_seconds": 4.0}}}}}


def _review():
  return [{"family": "lenet5", "epochs": 9, "wall_s": 200, "exit": 0},
          {"family": "vgg11_bn", "epochs": 1, "wall_s": 150, "exit": 0}]


def test_the_log_gives_its_marks_second_runs_and_the_total():
  log = standin.parse_log(LOG.splitlines())
  assert [(kind, t, cpu) for kind, _, t, cpu in log["marks"]] == [
      ("part", 0, 0), ("part", 1, 0), ("part", 5, 3), ("part", 20, 15),
      ("ready", 50, 60), ("first", 70, 70), ("first", 250, 250),
      ("done", 480, 340), ("done", 500, 500), ("part", 500, 500),
      ("part", 600, 600), ("part", 900, 1000)]
  assert [name for kind, name, _, _ in log["marks"] if kind != "part"] == [
      "", "lenet5", "vgg11_bn", "lenet5", "vgg11_bn"]
  assert log["second_run"] == {"lenet5"}
  assert log["total"] == (901, 1001)
  # A log without CPU seconds (an older gpu_check.sh) still parses.
  old = standin.parse_log(["== c. tests (500 s in, 940 s left)"])
  assert old["marks"] == [("part", "c. tests", 500, None)]


def test_the_projection_counts_the_host_once_and_the_h100_for_the_stand_in():
  log = standin.parse_log(LOG.splitlines())
  rows = {r["part"]: r for r in standin.project(_plan(), log, _review())}
  # LeNet-5's first run: 1 epoch of 2 H100 s, 3x on the CPU; 20 s of wall,
  # 10 of them CPU seconds.
  first = rows["review lenet5: first run, 1 epoch"]
  assert (first["wall_s"], first["cpu_s"]) == (20, 10)
  assert (first["standin_s"], first["h100_work_s"]) == (6.0, 2.0)
  assert first["h100_s"] == 10 - 6 + 2
  # Its second run: 9 epochs, with its eval: 230 s, 90 CPU seconds.
  second = rows["review lenet5: second run, 9 epochs, eval, row"]
  assert (second["wall_s"], second["cpu_s"]) == (230, 90)
  assert (second["standin_s"], second["h100_work_s"]) == (54.0, 18.0)
  assert second["h100_s"] == 90 - 54 + 18
  # VGG-11-BN: one epoch, which ends with ten-crop (every 10 epochs).
  vgg = rows["review vgg11_bn: first run, 1 epoch"]
  assert (vgg["wall_s"], vgg["cpu_s"]) == (180, 180)
  assert (vgg["standin_s"], vgg["h100_work_s"]) == (3 * (5.0 + 4.0), 9.0)
  assert vgg["h100_s"] == 180 - 27 + 9
  assert rows["review vgg11_bn: eval, row"]["h100_s"] == 20
  # What is not a stand-in counts at the smaller of wall and CPU seconds.
  assert rows["review: waiting for FER2013's preparation"]["h100_s"] == 30
  assert rows["a. preflight: what of ferjax runs on the node's versions"][
      "h100_s"] == 12
  assert rows["d. train-step throughput, ferjax and PyTorch"]["h100_s"] == 300
  assert sum(r["wall_s"] for r in rows.values()) == 901


def test_a_stand_in_s_cpu_seconds_are_at_the_plan_s_rate():
  plan = _plan()
  plan["families"]["vgg11_bn"]["cpu_train_rate"] = 10.0
  log = standin.parse_log(LOG.splitlines())
  vgg = standin.project(plan, log, _review())[5]
  assert vgg["part"] == "review vgg11_bn: first run, 1 epoch"
  # 50 training images at 10/s; 12 images of 10 crops forward at 3 x 10/s.
  cpu = 50 / 10 + 12 * 10 / 30
  assert vgg["standin_s"] == round(cpu, 1)
  assert vgg["h100_s"] == round(180 - cpu + 9.0, 1)
  # Never more than the stretch's own time.
  plan["families"]["vgg11_bn"]["cpu_train_rate"] = 0.1
  vgg = standin.project(plan, log, _review())[5]
  assert (vgg["standin_s"], vgg["h100_s"]) == (180, 9.0)


def test_ten_crop_runs_every_ten_epochs_and_after_the_last():
  vgg = _plan()["families"]["vgg11_bn"]
  assert standin.run_seconds(vgg, 10) == 10 * 5.0 + 1 * 4.0
  assert standin.run_seconds(vgg, 12) == 12 * 5.0 + 2 * 4.0


def test_verify_names_what_the_acceptance_lacks():
  files = list(standin.FILES)
  summary = {"seconds": 901, "review": _review()}
  assert standin.verify(_plan(), files, summary) == []
  late = {**summary, "seconds": 1441}
  assert standin.verify(_plan(), files, late) == [
      "1441 s: over the budget of 1440 s"]
  empty = {**summary, "review": [{**_review()[0], "epochs": 0, "exit": 124}]}
  assert standin.verify(_plan(), files[1:] + ["core"], empty) == [
      "env.json missing", "core: not one of the node's files",
      "review: lenet5 has no evaluated epoch (exit 124)",
      "review: no row for vgg11_bn"]
