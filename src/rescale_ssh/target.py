"""Where a job's SSH server is: the validated result of resolving a job."""

from __future__ import annotations

from dataclasses import dataclass

from rescale_ssh import validate

ALIAS_PREFIX = "rescale-"


def alias_for(job: str) -> str:
    return ALIAS_PREFIX + job


def job_from_alias(alias: str, *, source: str | None = None) -> str:
    """``rescale-Fotxeb`` -> ``Fotxeb``; a bare job ID is accepted as well."""
    job = alias[len(ALIAS_PREFIX) :] if alias.startswith(ALIAS_PREFIX) else alias
    return validate.job_id(job, source=source)


def default_workdir(user: str) -> str:
    # rescale-api.md: the layout /enc/<username>/work is HIGH confidence.
    return f"/enc/{user}/work"


@dataclass(frozen=True)
class Target:
    job: str
    user: str
    host: str
    port: int
    workdir: str

    @property
    def alias(self) -> str:
        return alias_for(self.job)

    @classmethod
    def checked(
        cls,
        *,
        job: str,
        user: object,
        host: object,
        port: object,
        workdir: object | None,
        source: str,
    ) -> Target:
        """Validate every field (naming the failing one and where it came from)."""
        job = validate.job_id(job, source=source)
        checked_user = validate.user(user, source=source)
        return cls(
            job=job,
            user=checked_user,
            host=validate.host(host, source=source),
            port=validate.port(22 if port is None else port, source=source),
            workdir=validate.remote_path(
                default_workdir(checked_user) if workdir is None else workdir, source=source
            ),
        )
