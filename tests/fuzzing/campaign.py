"""The decoder's fuzz campaign: decode many mutated ``.dic`` files (:mod:`.mutations`) and count
how each ends — caught with a clear error (a :class:`~dic.errors.DicError` with a message),
decoded to the original image, decoded to a wrong image without an error, or a crash (another
exception, a signal, a hang). Only the first two are acceptable (docs/architecture.md).

The subject is a tiny ``snr-decomp`` (N=16) made with a fixed seed and saved as a checkpoint in
a folder of the caller's (no download). Cases are decoded in worker processes, each decoding
many cases; a worker that dies or overruns the per-case timeout is counted as a crash for that
case and restarted. ``tests/test_fuzz_codec.py`` runs a short campaign in the suite and
``scripts/fuzz_codec.py`` a long one. Test tooling, not the library: it lives beside the tests."""
from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from dic.checkpoints import save_checkpoint
from dic.codec.api import decode_bytes, encode_image, load_codec_model
from dic.errors import DicError
from dic.models import create_model

from .mutations import CLASSES, cases

TINY = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
OUTCOMES = ("caught", "original", "wrong", "crash")
TITLES = {
    "file": "random mutations of the whole file",
    "strings": "rANS strings damaged, CRCs consistent",
    "headers": "crafted headers and string tables, CRCs valid",
}
COLUMNS = ("caught with a clear error", "decoded to the original", "wrong image, no error",
           "crash / other exception")
Outcome = Tuple[str, str]  # one of OUTCOMES, detail


def make_subject(folder: Path, seed: int = 0, size: Tuple[int, int] = (70, 90)) -> Tuple[Path, bytes]:
    """A tiny seeded checkpoint in ``folder`` and the ``.dic`` bytes of a seeded noisy picture.
    ``y`` is scaled up so that its string carries real information (a random model's latent
    is nearly all zeros otherwise)."""
    torch.manual_seed(seed)
    model = create_model("snr-decomp", **TINY)
    with torch.no_grad():
        model.g_a_block2[-1].weight.mul_(30)
    path = Path(folder) / "fuzz_subject.pth"
    save_checkpoint(path, model)
    model, fingerprint = load_codec_model(path)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2) * 200 + 20
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return path, encode_image(model, image, fingerprint=fingerprint, checkpoint=path)


# ----------------------------------------------------------------------------- worker process


def _decode_case(model: torch.nn.Module, fingerprint: str, original: np.ndarray, data: bytes) -> Outcome:
    """Decode one case and classify how it ended."""
    try:
        image = decode_bytes(data, model, fingerprint=fingerprint, name="case.dic")
    except DicError as exc:
        message = str(exc).strip()
        return ("caught", message) if message else ("crash", f"{type(exc).__name__} without a message")
    except Exception as exc:  # noqa: BLE001 — any other exception is what the campaign looks for
        return "crash", f"{type(exc).__name__}: {exc}"[:500]
    if image.shape == original.shape and np.array_equal(image, original):
        return "original", ""
    return "wrong", f"decoded a {image.shape[1]}×{image.shape[0]} image that differs from the original"


def _worker_main(conn, checkpoint: str, data: bytes) -> None:
    """Load the subject once, decode the original, then answer one case per message."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # version-1 files warn; the outcome is what counts
    model, fingerprint = load_codec_model(checkpoint)
    original = decode_bytes(data, model, fingerprint=fingerprint)
    conn.send("ready")
    while True:
        try:
            case = conn.recv()
        except EOFError:
            return
        if case is None:
            return
        conn.send(_decode_case(model, fingerprint, original, case))


class Worker:
    """A decoding process with a per-case timeout; restarted after a crash or a hang."""

    def __init__(self, checkpoint: Path, data: bytes, timeout: float, startup: float = 300.0):
        self.args = (str(checkpoint), data)
        self.timeout, self.startup = timeout, startup
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # no forked copy of the parent's torch thread pools
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *self.args), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(self.startup) or self.conn.recv() != "ready":
            raise RuntimeError(f"the fuzz worker did not start within {self.startup} s")

    def _restart(self) -> None:
        self.close()
        self.restarts += 1
        self._start()

    def decode(self, data: bytes) -> Outcome:
        try:
            self.conn.send(data)
            if self.conn.poll(self.timeout):
                return self.conn.recv()
            outcome: Outcome = ("crash", f"hang: no answer within {self.timeout} s")
        except (EOFError, OSError):
            self.proc.join(5)
            code = self.proc.exitcode
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            outcome = ("crash", f"the decoding process died ({how})")
        self._restart()
        return outcome

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


# ----------------------------------------------------------------------------- campaign


@dataclass
class Report:
    counts: Dict[str, Dict[str, int]] = field(default_factory=lambda: {c: dict.fromkeys(OUTCOMES, 0) for c in CLASSES})
    examples: Dict[Tuple[str, str], List[str]] = field(default_factory=dict)
    restarts: int = 0
    seconds: float = 0.0

    def add(self, klass: str, kind: str, outcome: Outcome) -> None:
        self.counts[klass][outcome[0]] += 1
        found = self.examples.setdefault((klass, outcome[0]), [])
        if len(found) < 5:
            found.append(f"{kind}: {outcome[1][:300]}")

    def total(self, outcome: str) -> int:
        return sum(row[outcome] for row in self.counts.values())


def run_campaign(count: int, folder: Path, seed: int = 0, workers: int = 2, timeout: float = 30.0,
                 progress: Optional[int] = None) -> Report:
    """Decode ``count`` seeded cases with ``workers`` worker processes; ``progress`` (a number
    of cases) prints a line to stderr that often."""
    start = time.perf_counter()
    checkpoint, data = make_subject(Path(folder), seed)
    todo = list(cases(data, count, seed))
    results: List[Optional[Outcome]] = [None] * len(todo)
    pool = [Worker(checkpoint, data, timeout) for _ in range(max(1, workers))]
    done = [0]
    lock = threading.Lock()

    def drive(index: int) -> None:
        for i in range(index, len(todo), len(pool)):
            results[i] = pool[index].decode(todo[i][2])
            with lock:
                done[0] += 1
                if progress and done[0] % progress == 0:
                    print(f"fuzz: {done[0]}/{len(todo)} cases, {time.perf_counter() - start:.0f} s", file=sys.stderr)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(pool))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for worker in pool:
            worker.close()
    report = Report(restarts=sum(w.restarts for w in pool))
    for (klass, kind, _), outcome in zip(todo, results):
        report.add(klass, kind, outcome)
    report.seconds = time.perf_counter() - start
    return report


def table(report: Report) -> str:
    """The campaign's results as a Markdown table, one row per class of input."""
    lines = ["| class of input | cases | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for klass in CLASSES:
        row = report.counts[klass]
        lines.append(f"| {TITLES[klass]} | {sum(row.values())} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
    totals = [report.total(o) for o in OUTCOMES]
    lines.append(f"| **all** | {sum(totals)} | " + " | ".join(str(t) for t in totals) + " |")
    return "\n".join(lines)
