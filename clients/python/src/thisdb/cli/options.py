"""The options a command was given, as words of a command line again: the command that goes on
with a stopped import repeats them (the tool's, kept in State.options, and import's own)."""

from __future__ import annotations

import click

# Options whose value is a secret: a command to go on names them with a placeholder.
SECRET_OPTIONS = {"api_key": "KEY", "token": "TOKEN"}


def given_options(ctx: click.Context, leave_out: tuple[str, ...] = ("commands",)) -> list[str]:
    """The options of ctx's command that were given on the command line, as arguments again
    (`--url URL`, `--ttl 60`); an API key or token as a placeholder, never the secret."""
    words: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None or name in leave_out:
            continue
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        flag = max(param.opts, key=len)  # the long form
        value = ctx.params.get(name)
        if param.is_flag:
            words.append(flag)
        elif name in SECRET_OPTIONS:
            words += [flag, SECRET_OPTIONS[name]]
        elif value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words
