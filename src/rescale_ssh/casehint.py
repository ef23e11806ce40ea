"""The hint for a job ID that differs only in case from a job known (hook/caseless.py: the jobs
known on this machine; resolver.py: the live ones). Job IDs are case-sensitive, ssh's host
patterns are not. Standard library only: the hook uses it.
"""

from __future__ import annotations


def suggestion(job: str, jobs: list[str]) -> str | None:
    same = sorted({other for other in jobs if other.lower() == job.lower() and other != job})
    if not same:
        return None
    names = " or ".join(f"rescale-{other}" for other in same)
    return f"did you mean {names}? Job IDs are case-sensitive"


def with_hint(job: str, jobs: list[str], fallback: str | None) -> str | None:
    """``fallback`` (the hint for 'job not found'), led by a job of ``jobs`` that differs
    only in case, when there is one."""
    found = suggestion(job, jobs)
    if found is None:
        return fallback
    if fallback and "case-sensitive" in fallback:  # said already: the platform is left
        return f"{found}; else check the platform"
    return f"{found}; else {fallback}" if fallback else found
