"""A failed trial's stderr tail: this attempt's last lines, read boundedly."""

from ferjax.experiment import sweep


def test_tail_is_this_attempts_last_lines(tmp_path):
  log = tmp_path / "stderr.log"
  earlier = b"an earlier attempt's traceback\n"
  log.write_bytes(earlier + b"".join(b"line %d\n" % i for i in range(100)))
  tail = sweep._tail(log, len(earlier)).splitlines()
  assert tail == [f"line {i}" for i in range(70, 100)]


def test_tail_of_a_huge_log_reads_only_its_end(tmp_path):
  log = tmp_path / "stderr.log"
  with open(log, "wb") as f:
    f.write(b"x" * (8 << 20) + b"\n")  # A runaway loop's output first.
    f.write(b"Traceback (most recent call last):\nValueError: nosuchsplit\n")
  tail = sweep._tail(log, 0)
  assert tail.splitlines()[-1] == "ValueError: nosuchsplit"
  assert len(tail) <= sweep._TAIL_BYTES


def test_tail_of_an_attempt_that_wrote_nothing_is_empty(tmp_path):
  log = tmp_path / "stderr.log"
  log.write_bytes(b"the previous attempt\n")
  assert sweep._tail(log, log.stat().st_size) == ""
