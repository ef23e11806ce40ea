"""The hook's settings, written by ``install`` into ``<state>/hook.conf``.

ssh runs the hook with whatever environment it has (VS Code started from a desktop menu has not
the terminal's), so everything the hook must agree on with the config is fixed at install time:
the program to run, the identity, the known_hosts file and the time limits. Standard library only.
"""

from __future__ import annotations

import os

from rescale_ssh import store, validate
from rescale_ssh.errors import ConfigError, InvalidValueError

FILE = "hook.conf"
DEFAULT_TTL = 1800.0  # a resolved job is trusted this long; a failed connection refreshes it
DEFAULT_FAILURE_TTL = 10.0  # a failure is remembered this long: no stampede, quick retries
DEFAULT_TIMEOUT = 10.0  # the cold path's total budget: well under what ssh users wait for
DEFAULT_WAIT = 0.0  # how long the proxy waits for a booting cluster to accept TCP
DEFAULT_MULTIPLEX = validate.DEFAULT_PERSIST  # ControlPersist of the hook's blocks by default
KEYS = frozenset(("python", "launcher", "identity", "known_hosts", "platform", "profile", "ttl",
                  "failure_ttl", "timeout", "wait", "precedence", "config", "version",
                  "apiconfig", "multiplex"))
VERSION = "2"  # hook.conf of this layout (none: an earlier version wrote it)
HOSTS_FILE = "hosts.conf"
FRESH_FILE = "fresh.conf"
SCRIPT_FILE = "hook"
FILE_INCLUDED = "ssh.conf"  # included.FILE (not imported: the warm path reads this module)
EXPLAINER_FILE = "broken.conf"  # included.EXPLAINER


class HookConf:
    __slots__ = ("apiconfig", "config", "failure_ttl", "identity", "known_hosts", "launcher",
                 "multiplex", "platform", "precedence", "profile", "python", "state_dir",
                 "timeout", "ttl", "version", "wait")

    def __init__(
        self,
        *,
        state_dir: str,
        python: str,
        launcher: str,
        identity: str | None,
        known_hosts: str,
        platform: str = "",
        profile: str = "",
        ttl: float = DEFAULT_TTL,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        wait: float = DEFAULT_WAIT,
        precedence: tuple[str, ...] = (),
        config: str = "",
        version: str = VERSION,
        apiconfig: str = "",
        multiplex: str = DEFAULT_MULTIPLEX,
    ) -> None:
        self.state_dir = state_dir
        self.python = python
        self.launcher = launcher
        self.identity = identity
        self.known_hosts = known_hosts
        self.platform = platform
        self.profile = profile
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.timeout = timeout
        self.wait = wait
        self.precedence = precedence  # only in hook.conf of earlier versions (hosts.conf)
        self.config = config  # the ssh config install wrote: the user's hosts are read there
        self.version = version
        # RESCALE_CONFIG_FILE as install saw it (absolute); "": the fixed path, and the key
        # is left out of hook.conf, as earlier versions wrote it.
        self.apiconfig = apiconfig
        # ControlPersist of the hook's blocks, or "no" (mux.py); left out of hook.conf when
        # it is the default, as earlier versions wrote it (they refuse keys they do not know).
        self.multiplex = multiplex

    @property
    def sharing(self) -> tuple[str, str]:
        """What hostblock.render takes as ``mux``: the state folder and ControlPersist."""
        return self.state_dir, self.multiplex

    @property
    def program(self) -> list[str]:
        """How ssh starts rescale-ssh: ``python -I -S launch.py`` (fast), or one executable."""
        return [self.python, "-I", "-S", self.launcher] if self.python else [self.launcher]

    @property
    def hosts_file(self) -> str:
        """Earlier versions included this at the end of the managed section when the user's
        config set some of our options for every host (``precedence``): kept up to date while
        such a config is in use (blockfile.py)."""
        return os.path.join(self.state_dir, HOSTS_FILE)

    @property
    def fresh_file(self) -> str:
        """Blocks written in the last minute: included right after the hook (blockfile.py)."""
        return os.path.join(self.state_dir, FRESH_FILE)

    @property
    def script_file(self) -> str:
        """What the config's ``Match ... exec`` runs: see :meth:`script_text`."""
        return os.path.join(self.state_dir, SCRIPT_FILE)

    def script_text(self) -> str:
        """A POSIX sh script, what the Match line of ssh.conf runs (included.py).

        ``ALIAS``: a job with a current marker (blockfile.py: its mtime is when it expires)
        needs no Python; any other name starts the hook. When the hook cannot start (its
        program or settings are gone), the script puts the explainer (included.explainer,
        kept in ``broken.conf``) in place of fresh.conf, which ssh reads next: its
        ProxyCommand runs ``--explain ALIAS``, which says so in one line. ssh runs ``Match
        exec`` through ``$SHELL -c``: a one-word command works in every shell, and it keeps
        the Match line short, which matters because OpenSSH expands the whole exec command
        for every host that reaches it (bench/ item 2). Only shell builtins run before
        Python starts."""
        from rescale_ssh.sshconfig.hostblock import command, shell_word

        def word(path: str) -> str:  # no ssh expands this file: a % stays single
            return shell_word(path, field="state folder", tokens=False)

        program = self.python or self.launcher
        names = [f"program={word(program)}"]
        checks = ['[ -x "$program" ] || broken="$program is gone"']
        if self.python:
            names.append(f"launcher={word(self.launcher)}")
            checks.append('[ -f "$launcher" ] || broken="${broken:-$launcher is gone}"')
        fix = ("reinstall rescale-ssh if it was removed or its Python upgraded, then run "
               "\\`rescale-ssh install\\`; or, to be rid of it, delete the rescale-ssh section "
               "(its # >>> and # <<< lines and what is between) from your ssh config")
        return (
            "#!/bin/sh\n"
            "# Written by `rescale-ssh install` (run it again to rewrite this file; `rescale-ssh\n"
            "# doctor` checks it). ssh runs it for rescale-* names from the Match line of\n"
            f"# {self.state_dir}/{FILE_INCLUDED}, which your ssh config includes.\n"
            + "".join(f"{line}\n" for line in names)
            + f"state={word(self.state_dir)}\n"
            "broken=\n"
            + "".join(f"{line}\n" for line in checks)
            + '[ -f "$state/hook.conf" ] || broken="${broken:-$state/hook.conf is gone}"\n'
            'if [ "$1" = --explain ]; then\n'
            '  [ -n "$broken" ] && printf \'%s\\n\' "rescale-ssh: error: cannot reach $2: the hook'
            f' cannot start ($broken); fix: {fix}" >&2\n'
            "  exit 1\n"
            "fi\n"
            'if [ -n "$broken" ]; then  # ssh reads fresh.conf next: make it say why\n'
            '  rm -rf "$state/live" 2>/dev/null\n'
            # set -C: the temp file is made anew (O_EXCL), never written through a link.
            f'  (set -C; cat "$state/{EXPLAINER_FILE}" >"$state/.fresh.$$") 2>/dev/null &&'
            ' mv -f "$state/.fresh.$$" "$state/fresh.conf" 2>/dev/null && exit 0\n'
            "  exit 1\n"
            "fi\n"
            # A marker counts until the time it carries as its mtime (blockfile._mark): touched
            # now, .now is older than a marker still current, whoever sweeps or not.
            '[ -e "$state/live/$1" ] && [ ! -h "$state/live/.now" ] &&'
            # true, not ":": a failed redirect on a special builtin ends the whole script.
            ' { true >"$state/live/.now"; } 2>/dev/null &&'
            ' [ "$state/live/$1" -nt "$state/live/.now" ] && [ -e "$state/fresh.conf" ] && exit 0\n'
            f'exec {command(self.program, tokens=False)} hook --state "$state" "$1"\n'
        )

    def to_text(self) -> str:
        return store.format_record(
            {
                "python": self.python,
                "launcher": self.launcher,
                "identity": self.identity or "",
                "known_hosts": self.known_hosts,
                "platform": self.platform,
                "profile": self.profile,
                "ttl": f"{self.ttl:g}",
                "failure_ttl": f"{self.failure_ttl:g}",
                "timeout": f"{self.timeout:g}",
                "wait": f"{self.wait:g}",
                "precedence": ",".join(self.precedence),
                "config": self.config,
                "version": self.version,
            } | ({"apiconfig": self.apiconfig} if self.apiconfig else {})
            | ({"multiplex": self.multiplex} if self.multiplex != DEFAULT_MULTIPLEX else {})
        )


def _precedence(value: str) -> tuple[str, ...]:
    """The options an earlier version repeated in hosts.conf. c44eba9 wrote ``yes``: its
    hosts.conf held whole blocks (ALL); later ones a list of ssh keywords."""
    if value == "yes":
        return (ALL,)
    return tuple(word for word in value.split(",") if word.isascii() and word.isalpha())


ALL = "*"


def load(state_dir: str) -> HookConf:
    path = os.path.join(state_dir, FILE)
    record = store.read_record(path, KEYS)
    if record is None or store.UNREADABLE in record:
        raise ConfigError(f"the hook's settings {path} are missing",
                          "run `rescale-ssh install` again")
    source = f"the hook settings {path}"
    if store.UNEXPECTED in record:
        raise InvalidValueError("line", record[store.UNEXPECTED],
                                "key=value lines as `rescale-ssh install` writes them",
                                source=source)

    def number(key: str, default: float) -> float:
        try:
            value = float(record.get(key, "") or default)
        except ValueError:
            raise ConfigError(f"invalid {key} in {path}",
                              "run `rescale-ssh install` again") from None
        return max(0.0, min(value, 86400.0))

    identity = record.get("identity") or None
    return HookConf(
        state_dir=state_dir,
        python=validate.local_path(record["python"], field="python", source=source)
        if record.get("python") else "",
        launcher=validate.local_path(record.get("launcher", ""), field="launcher", source=source),
        identity=None if identity is None else validate.local_path(
            identity, field="identity file", source=source),
        known_hosts=validate.local_path(record.get("known_hosts", ""), field="known_hosts file",
                                        source=source),
        platform=record.get("platform", ""),
        profile=record.get("profile", ""),
        ttl=number("ttl", DEFAULT_TTL),
        failure_ttl=number("failure_ttl", DEFAULT_FAILURE_TTL),
        timeout=number("timeout", DEFAULT_TIMEOUT),
        wait=number("wait", DEFAULT_WAIT),
        precedence=_precedence(record.get("precedence", "")),
        config=validate.local_path(record["config"], field="ssh config", source=source)
        if record.get("config") else "",
        version=record.get("version", ""),
        apiconfig=validate.local_path(record["apiconfig"], field="Rescale CLI config file",
                                      source=source) if record.get("apiconfig") else "",
        multiplex=_multiplex(record.get("multiplex", ""), source),
    )


def _multiplex(value: str, source: str) -> str:
    """``no`` or a time of ssh_config(5) (digits and s/m/h/d/w): nothing else reaches a block."""
    if not value:
        return DEFAULT_MULTIPLEX
    if value == "no" or (value.isascii() and value.isalnum() and value[0].isdigit()
                         and value[0] != "0" and all(char.isdigit() or char in "smhdwSMHDW"
                                                     for char in value)):
        return value
    raise InvalidValueError("multiplex", value, "no, or a time such as 300 or 5m",
                            source=source)
