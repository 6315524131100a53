"""The "when to stop" signal in the report: where the stabilizing-predictions rule fires, and what it costs.

Reads ``stop_kappa`` of the round records (Cohen's κ between the predictions of a round's model
and the previous round's on the run's fixed stop set; see :mod:`lbench.stopping`). Per arm and
seed, the rule ``κ >= 0.99 for 3 rounds in a row`` (:func:`lbench.stopping.rule_state`; a
suggestion, never enforced) fires at the first round where it holds; the report gives that round,
its labels and test accuracy, and how far that accuracy is from the seed's final one (its last
finished round), so a reader sees what stopping there would have cost:

- ``stop_signal.png``: κ vs number of labels, one colour per arm (thin lines: seeds; thick: mean
  over seeds), the threshold as a dashed line, a triangle where the rule fires in a seed;
- a table in ``summary.md`` and ``report.html``, one row per arm and seed;
- ``stop_signal.csv``: κ, the rule's streak and whether it has fired, per arm, seed and round;
- one console line per arm.

Nothing is shown for ledgers without ``stop_kappa`` (runs of an older lbench).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lbench.report.analysis import Analysis
from lbench.report.csvs import csv_text
from lbench.report.ledger import RoundRecord
from lbench.report.tables import NONE, Table
from lbench.stopping import THRESHOLD, WINDOW, StopState, rule_state

__all__ = ["SeedStop", "stop_console_lines", "stop_csv", "stop_seeds", "stop_table"]

RULE = f"κ ≥ {THRESHOLD:g} for {WINDOW} rounds in a row"
"""The rule as printed."""
KAPPA_TEXT = (
    "κ is Cohen's kappa between the classes predicted by a round's model and by the previous round's model on a "
    "fixed stop set (min(2000, pool size) pool items drawn once from the seed, independent of the labels, the same "
    "for every arm and round of a seed; Bloodgood & Vijay-Shanker, 2009)"
)
"""What κ means, for legends."""


@dataclass(frozen=True)
class SeedStop:
    """The stop signal of one arm and seed.

    Attributes:
        arm: Arm name.
        seed: Seed.
        records: Its finished rounds, by round.
        state: The rule over its κ (indexed by round; None for round 0 and missing rounds).
    """

    arm: str
    seed: int
    records: tuple[RoundRecord, ...]
    state: StopState

    @property
    def fired(self) -> RoundRecord | None:
        """The round at which the rule first fires, or None."""
        at = self.state.fired_at
        return next((r for r in self.records if r.round == at), None) if at is not None else None

    @property
    def final(self) -> RoundRecord:
        """The last finished round."""
        return self.records[-1]

    @property
    def complete(self) -> bool:
        """Whether the last finished round is the run's last round."""
        return self.final.round == self.final.rounds_total

    @property
    def gap(self) -> float | None:
        """Test accuracy when the rule fires minus the final one (a fraction), or None."""
        f = self.fired
        return f.metrics["test_acc"] - self.final.metrics["test_acc"] if f is not None else None

    @property
    def last_kappa(self) -> float | None:
        """κ of the last round that has one."""
        return next((r.stop_kappa for r in reversed(self.records) if r.stop_kappa is not None), None)

    @property
    def longest_streak(self) -> int:
        """Most rounds in a row with κ >= the threshold."""
        best = run = 0
        for k in self.state.kappas:
            run = run + 1 if k is not None and k >= self.state.threshold else 0
            best = max(best, run)
        return best


def stop_seeds(a: Analysis) -> list[SeedStop]:
    """One :class:`SeedStop` per arm (report order) and seed; [] when no record has a κ."""
    if not any(r.stop_kappa is not None for r in a.ledger.records):
        return []
    out = []
    for arm in a.arms:
        for seed in a.seeds(arm):
            recs = a.curves[(arm, seed)].records
            kappas: list[float | None] = [None] * (recs[-1].round + 1)
            for r in recs:
                kappas[r.round] = r.stop_kappa
            out.append(SeedStop(arm, seed, tuple(recs), rule_state(kappas)))
    return out


def _pct(v: float) -> str:
    return f"{100.0 * v:.2f}"


def _signed(v: float) -> str:
    return f"{100.0 * v:+.2f}"


def stop_table(stops: list[SeedStop]) -> Table:
    """One row per arm and seed: where the rule fires, the test accuracy then and at the end."""
    header = ["arm", "seed", "rule fires at round", "labels then", "test acc then (%)", "final round", "final labels"]
    header += ["final test acc (%)", "then - final (pp)", "last κ"]
    rows, partial = [], False
    for s in stops:
        f, last = s.fired, s.final
        mark = "" if s.complete else " *"
        partial = partial or not s.complete
        if f is None:
            fire = [f"not fired (best run {s.longest_streak}/{s.state.window})", NONE, NONE]
        else:
            fire = [str(f.round), str(f.num_labeled), _pct(f.metrics["test_acc"])]
        row = [s.arm, str(s.seed), *fire, f"{last.round}{mark}", str(last.num_labeled), _pct(last.metrics["test_acc"])]
        row += [NONE if s.gap is None else _signed(s.gap), NONE if s.last_kappa is None else f"{s.last_kappa:.4f}"]
        rows.append(row)
    legend = [
        ("arm, seed", "query strategy and seed"),
        (
            "rule fires at round",
            f"first round at which {RULE} held (round 0 has no κ); 'not fired (best run k/{WINDOW})' when it never "
            "did, with the most rounds in a row at the threshold",
        ),
        ("labels then, test acc then (%)", "labels of that round's model and its test accuracy"),
        ("final round, final labels, final test acc (%)", "the seed's last finished round"),
        ("then - final (pp)", "test accuracy when the rule fires minus the final one: what stopping there costs"),
        ("last κ", "κ of the last round; " + KAPPA_TEXT),
    ]
    notes = [f"The rule {RULE} is a suggestion shown to users; no run stops on it."]
    if partial:
        notes.append("* the run is not finished: final values are those of the last finished round.")
    title = f"Stop signal: where the rule {RULE} fires (a suggestion, not enforced)"
    return Table(title, header, rows, legend, notes)


def stop_csv(stops: list[SeedStop]) -> str:
    """``stop_signal.csv``: one row per arm, seed and round (κ empty in round 0)."""
    header = ["arm", "seed", "round", "num_labeled", "stop_kappa", "streak", "rule_fired", "test_acc"]
    rows: list[list[object]] = []
    for s in stops:
        for r in s.records:
            state = rule_state(s.state.kappas[: r.round + 1], s.state.threshold, s.state.window)
            fired, acc = state.fired_at is not None, r.metrics["test_acc"]
            rows.append([s.arm, s.seed, r.round, r.num_labeled, r.stop_kappa, state.streak, fired, acc])
    return csv_text(header, rows)


def stop_console_lines(stops: list[SeedStop]) -> list[str]:
    """A heading and one line per arm: in how many seeds the rule fires, where, and the accuracy then vs final."""
    if not stops:
        return []
    lines = [f"Stop signal ({RULE}; a suggestion, not enforced):"]
    for arm in dict.fromkeys(s.arm for s in stops):
        seeds = [s for s in stops if s.arm == arm]
        fired = [s for s in seeds if s.fired is not None]
        if not fired:
            kappas = [s.last_kappa for s in seeds if s.last_kappa is not None]
            last = f"; last κ {np.mean(kappas):.4f} (mean over seeds)" if kappas else ""
            lines.append(f"- {arm}: does not fire in any of its {len(seeds)} seed{'s' if len(seeds) > 1 else ''}{last}")
            continue
        where = ", ".join(f"{s.fired.round} ({s.fired.num_labeled} labels)" for s in fired if s.fired is not None)
        then = np.mean([s.fired.metrics["test_acc"] for s in fired if s.fired is not None])
        final = np.mean([s.final.metrics["test_acc"] for s in fired])
        lines.append(
            f"- {arm}: fires in {len(fired)}/{len(seeds)} seeds, at round{'s' if len(fired) > 1 else ''} {where}; "
            f"test accuracy then "
            f"{_pct(then)}% vs final {_pct(final)}% ({_signed(then - final)} pp, mean over those seeds)"
        )
    return lines
