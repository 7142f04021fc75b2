"""``ferjax reproduce``: train a finished run again and compare every number.

The new run is trained from the old one's resolved config (so an edited
experiment file does not matter) on as many CPU devices as the original had.
Every metric event is compared exactly, except images per second (a
timing). On the same machine and versions the numbers must be identical;
otherwise the summary lists the differences next to the version and device
changes between the two manifests that explain them.
"""

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ferjax import atomic
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.experiment import sweep as sweep_lib
from ferjax.run.metric_writer import WALL_TIME
from ferjax.run.run_dir import RunDir

RESULT_FILE = "reproduction.json"
TIMING_FIELDS = ("images_per_second", WALL_TIME)
_SESSION_FIELDS = ("python", "platform", "backend", "device_kind",
                   "device_count", "local_device_count", "process_count")
_MAX_LISTED = 20


@dataclasses.dataclass
class Comparison:
  """What differs between an original run and its reproduction."""

  original: str
  reproduction: str
  command: list[str]  # How the original was first run.
  config_changes: list[str]
  events_compared: int
  differences: list[str]  # One line per differing metric event.
  missing: list[str]  # Events of the original the reproduction lacks.
  extra: list[str]  # Events only the reproduction has.
  environment_changes: list[str]  # Versions, devices, code between them.
  notes: list[str]

  @property
  def identical(self) -> bool:
    """Whether every metric event matches (a config change may not)."""
    return not (self.differences or self.missing or self.extra)


def _read_run(run_dir: pathlib.Path) -> tuple[dict, dict, list[dict]]:
  run = RunDir(run_dir)
  config, _ = config_lib.upgrade(run.read_config_dict())
  return config, run.read_manifest(), run.events()


def _numbers(value: Any) -> list[float]:
  if isinstance(value, dict):
    return [x for k in sorted(value) for x in _numbers(value[k])]
  if isinstance(value, (list, tuple)):
    return [x for v in value for x in _numbers(v)]
  return [float(value)] if isinstance(value, (int, float)) else [math.nan]


def _field_difference(name: str, a: Any, b: Any) -> str:
  """``loss 1.9527 -> 1.953`` or ``confusion_matrix (max |diff| 2)``."""
  if a is None or b is None:
    return f"{name} {'only in the reproduction' if a is None else 'missing'}"
  if isinstance(a, (int, float)) and isinstance(b, (int, float)):
    return f"{name} {a:.6g} -> {b:.6g} (diff {b - a:+.3g})"
  x, y = _numbers(a), _numbers(b)
  if len(x) != len(y):
    return f"{name} differs in shape"
  return f"{name} differs (max |diff| {np.nanmax(np.abs(np.subtract(y, x))):.3g})"


def _event_key(event: dict[str, Any]) -> str:
  return f"step {event['step']} {event['split']}"


def compare_metrics(original: list[dict], reproduction: list[dict]
                    ) -> tuple[int, list[str], list[str], list[str]]:
  """(events compared, differing lines, missing keys, extra keys)."""
  def keyed(events):
    return {_event_key(e): {k: v for k, v in e.items()
                            if k not in TIMING_FIELDS} for e in events}

  a, b = keyed(original), keyed(reproduction)
  differences = []
  for key in (k for k in a if k in b):
    fields = [f for f in dict.fromkeys([*a[key], *b[key]])
              if a[key].get(f) != b[key].get(f)]
    if fields:
      differences.append(f"{key}: " + "; ".join(
          _field_difference(f, a[key].get(f), b[key].get(f)) for f in fields))
  return (len(a.keys() & b.keys()), differences,
          [k for k in a if k not in b], [k for k in b if k not in a])


def environment_changes(original: dict, reproduction: dict) -> list[str]:
  """Versions, devices and code of the runs' last sessions that differ."""
  old, new = original["sessions"][-1], reproduction["sessions"][-1]
  changes = [f"{f}: {old.get(f)} -> {new.get(f)}" for f in _SESSION_FIELDS
             if old.get(f) != new.get(f)]
  old_v, new_v = old.get("versions") or {}, new.get("versions") or {}
  changes += [f"{p}: {old_v.get(p)} -> {new_v.get(p)}"
              for p in sorted(old_v.keys() | new_v.keys())
              if old_v.get(p) != new_v.get(p)]
  old_git, new_git = old.get("git") or {}, new.get("git") or {}
  if old_git.get("commit") != new_git.get("commit"):
    changes.append(f"git commit: {old_git.get('commit')} -> "
                   f"{new_git.get('commit')}")
  return changes


def _notes(original: dict, reproduction: dict) -> list[str]:
  notes = []
  sessions = original["sessions"]
  changing = [f for f in (*_SESSION_FIELDS, "versions")
              if len({json.dumps(s.get(f), sort_keys=True)
                      for s in sessions}) > 1]
  if changing:
    notes.append(f"the original's sessions differ in {', '.join(changing)}")
  if any((s.get("git") or {}).get("dirty") for s in
         (*sessions, *reproduction["sessions"])):
    notes.append("a source tree had uncommitted edits (git dirty): the "
                 "same commit does not guarantee the same code")
  return notes


def compare_runs(original: str | os.PathLike,
                 reproduction: str | os.PathLike) -> Comparison:
  """Compares two run directories' configs, metrics and manifests."""
  original, reproduction = pathlib.Path(original), pathlib.Path(reproduction)
  config_a, manifest_a, events_a = _read_run(original)
  config_b, manifest_b, events_b = _read_run(reproduction)
  compared, differences, missing, extra = compare_metrics(events_a, events_b)
  return Comparison(
      original=str(original), reproduction=str(reproduction),
      command=manifest_a["sessions"][0].get("command") or [],
      config_changes=config_lib.differing_fields(config_a, config_b),
      events_compared=compared, differences=differences, missing=missing,
      extra=extra,
      environment_changes=environment_changes(manifest_a, manifest_b),
      notes=_notes(manifest_a, manifest_b))


def _listed(lines: list[str]) -> list[str]:
  shown = [f"  {line}" for line in lines[:_MAX_LISTED]]
  if len(lines) > _MAX_LISTED:
    shown.append(f"  ... and {len(lines) - _MAX_LISTED} more")
  return shown


def format_summary(c: Comparison) -> str:
  """The human-readable verdict ``ferjax reproduce`` prints."""
  lines = [f"original:     {c.original}",
           f"  first run as: {' '.join(c.command) or '(not recorded)'}",
           f"reproduction: {c.reproduction}"]
  if c.config_changes:
    lines.append(f"config: differs in {', '.join(c.config_changes)}")
  else:
    lines.append("config: identical")
  total = c.events_compared + len(c.missing)
  if c.identical:
    lines.append(f"metrics: all {c.events_compared} events identical "
                 f"({', '.join(TIMING_FIELDS)} is timing, not compared)")
  else:
    lines.append(f"metrics: {len(c.differences)} of {total} events differ")
    lines += _listed(c.differences)
    if c.missing:
      lines.append(f"missing from the reproduction: {len(c.missing)} events")
      lines += _listed(c.missing)
    if c.extra:
      lines.append(f"only in the reproduction: {len(c.extra)} events")
      lines += _listed(c.extra)
  if c.environment_changes:
    lines.append("environment changes"
                 + (" that can explain them:" if not c.identical else ":"))
    lines += _listed(c.environment_changes)
  elif not c.identical and c.config_changes:
    lines.append("environment: same versions, devices and commit; the "
                 "config differences can explain them")
  elif not c.identical:
    lines.append("environment: same versions, devices and commit, so the "
                 "differences are nondeterminism on this machine (or edits "
                 "to the source tree)")
  else:
    lines.append("environment: same versions, devices and commit")
  if c.notes:
    lines.append("notes:")
    lines += _listed(c.notes)
  lines.append("REPRODUCED: identical" if c.identical else
               "NOT REPRODUCED: the metrics differ")
  return "\n".join(lines)


def _new_workdir(run_dir: pathlib.Path) -> pathlib.Path:
  """Where a reproduction goes by default: never inside a sweep.

  A sweep trial ``SWEEP/TRIAL`` is rerun in ``SWEEP.reproduce/TRIAL``, so
  that the sweep's reports see no extra run; a lone run ``RUN`` in
  ``RUN.reproduce``. Numbered (``.reproduce2``...) when taken.
  """
  run_dir = run_dir.resolve()
  sweep = next((p for p in run_dir.parents
                if (p / sweep_lib.SWEEP_FILE).is_file()), None)
  for i in range(1, 1000):
    suffix = f".reproduce{'' if i == 1 else i}"
    path = (sweep.with_name(sweep.name + suffix) / run_dir.relative_to(sweep)
            if sweep else run_dir.with_name(run_dir.name + suffix))
    if not path.exists():
      return path
  raise FileExistsError(f"{run_dir}: too many reproductions; use --workdir")


def reproduce(run_dir: str | os.PathLike, workdir: str | os.PathLike, *,
              overrides: Sequence[str] = (),
              argv: list[str] | None = None) -> Comparison:
  """Trains ``run_dir``'s config in ``workdir`` and compares the two runs.

  ``overrides`` may only say where the run executes (data directory,
  parallel settings), never what it computes. Call before JAX initialises:
  this sets the CPU device count the original run had.
  """
  run_dir, workdir = pathlib.Path(run_dir), pathlib.Path(workdir)
  _, manifest, _ = _read_run(run_dir)
  if not RunDir(run_dir).is_finished():
    raise ValueError(f"{run_dir} has not finished (its manifest's last "
                     "session has no end time); reproduce a finished run")
  if workdir.exists() and any(workdir.iterdir()):
    raise ValueError(f"{workdir} exists and is not empty; reproduce into a "
                     "new directory")
  if RunDir(run_dir).contains(workdir):
    raise ValueError(f"{workdir}: inside the run it reproduces ({run_dir}); "
                     "reproduce into a directory outside it")
  bad = [o for o in overrides if not o.startswith(config_lib.WHERE_FIELDS)]
  if bad:
    raise config_lib.ConfigError(
        f"--config.{bad[0]}: a reproduction may only change where it runs "
        f"({', '.join(config_lib.WHERE_FIELDS)}*)")
  config = config_lib.apply_overrides(RunDir(run_dir).read_config(),
                                      overrides)
  config_checks.validate(config)
  original = manifest["sessions"][-1]
  cpu_devices = config.parallel.cpu_devices
  chosen = any(o.startswith("parallel.cpu_devices") for o in overrides)
  if original.get("backend") == "cpu" and not chosen:
    # What the original used: its config may say otherwise when XLA_FLAGS
    # overrode it (runs written before the config recorded the override).
    cpu_devices = (original.get("local_device_count")
                   or original.get("device_count") or cpu_devices)
  config.parallel.cpu_devices = cpu_devices
  # JAX starts here: config errors above cost milliseconds, not a compile.
  from ferjax.train import parallel
  parallel.configure_cpu_devices(cpu_devices)
  parallel.configure_gpu_determinism(config.parallel.deterministic_gpu)
  from ferjax.train import loop
  # A run refused before it writes anything leaves no directory (the lock
  # removes what it made).
  loop.train_and_evaluate(config, str(workdir), argv=argv)
  comparison = compare_runs(run_dir, workdir)
  atomic.write_text(workdir / RESULT_FILE, json.dumps(
      {**dataclasses.asdict(comparison), "identical": comparison.identical},
      indent=2) + "\n")
  return comparison
