"""The decoder under a seeded mutation campaign (tests/fuzzing/): at least 500 mutated files of
three classes — whole-file damage, rANS strings damaged with consistent CRCs, crafted headers
with valid CRCs — each must end in a DicError with a message or in the original image: no
other exception, no signal, no hang, no wrong image. And the isolation that makes a crash or
a hang countable instead of fatal."""
from __future__ import annotations

import pytest

from fuzzing import campaign as fuzz
from fuzzing.mutations import CLASSES, cases

CASES = 2000


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    return fuzz.make_subject(tmp_path_factory.mktemp("fuzz"))


def test_campaign_never_crashes_nor_shows_a_wrong_image(tmp_path):
    report = fuzz.run_campaign(CASES, tmp_path, seed=0, workers=2, timeout=60)
    summary = fuzz.table(report) + "\n" + "\n".join(
        f"{klass} {outcome}: {found}" for (klass, outcome), found in report.examples.items() if outcome in ("wrong", "crash")
    )
    assert sum(sum(row.values()) for row in report.counts.values()) == CASES >= 500
    assert report.total("wrong") == 0 and report.total("crash") == 0, summary
    assert report.restarts == 0, summary
    for klass in CLASSES:
        assert sum(report.counts[klass].values()) >= CASES // 5, summary
        assert report.counts[klass]["caught"] > 0, summary
    # string damage with consistent CRCs passes every framing check: only the latent checksum
    # can catch it, and it does
    caught = report.examples[("strings", "caught")]
    assert all("does not match the encoder's" in line for line in caught), caught


def test_cases_are_seeded_and_cover_the_classes(subject):
    _, data = subject
    first, again = list(cases(data, 50, seed=3)), list(cases(data, 50, seed=3))
    assert first == again and first != list(cases(data, 50, seed=4))
    assert {klass for klass, _, _ in first} == set(CLASSES)


def test_worker_counts_a_crash_and_a_hang_then_goes_on(subject):
    """A worker killed by a signal, or one that does not answer in time, is one crash for the
    case at hand; the restarted worker decodes the next case."""
    checkpoint, data = subject
    worker = fuzz.Worker(checkpoint, data, timeout=60)
    try:
        assert worker.decode(data) == ("original", "")
        worker.proc.kill()
        outcome, detail = worker.decode(data)
        assert outcome == "crash" and "SIGKILL" in detail and worker.restarts == 1
        assert worker.decode(data[:-1])[0] == "caught"
        worker.timeout = 1e-4  # too short for any decode: the worker is treated as hung
        outcome, detail = worker.decode(data)
        assert outcome == "crash" and detail.startswith("hang") and worker.restarts == 2
        worker.timeout = 60
        assert worker.decode(data) == ("original", "")
    finally:
        worker.close()
    assert not worker.proc.is_alive()
