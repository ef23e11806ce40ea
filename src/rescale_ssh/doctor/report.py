"""What ``doctor`` finds: checks, each with a status and one fix, as a report the command line
renders as text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, WARN, INFO, SKIP = "pass", "fail", "warn", "info", "skip"
PROBE_HOST = "doctor-probe.invalid"  # matches no rescale-* pattern: never runs the hook
PROBE_TIMEOUT = 3.0
WHERE_KEY = "account Settings → Job Settings → SSH Public Key, then Save"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    summary: str
    fix: str | None = None


@dataclass
class Report:
    job: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    @property
    def failures(self) -> int:
        return sum(check.status == FAIL for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "job": self.job, "checks": [asdict(c) for c in self.checks]}

    def add(self, name: str, status: str, summary: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, status, summary, fix))
