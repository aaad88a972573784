"""`thisdb`: the command-line tool.

Exit statuses: 0 ok, 1 the API refused (or answered oddly), 2 usage error (bad arguments, no
server or credentials configured, a bad profile file or import file; the tool's packages not
installed, see __init__.py), 3 network error, 4 the URL does not lead to a ThisDB API (an HTML
page, a redirect), 5 a conditional write's condition did not hold (412), 6 a transaction's check
did not hold (409), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
from collections.abc import Iterator
from dataclasses import asdict
from itertools import chain, islice
from pathlib import Path
from typing import Any

import click
import httpx

from thisdb import __version__
from thisdb._core import ENV_API_KEY, ENV_TOKEN, ENV_URL, segment
from thisdb.cli.config import config_path
from thisdb.cli.formats import FORMATS
from thisdb.cli.options import given_options
from thisdb.cli.output import (
    API_ERROR,
    INTERRUPTED,
    OK,
    USAGE_ERROR,
    shown_value,
    tsv_field,
    value_record,
)
from thisdb.cli.state import State
from thisdb.client import Client
from thisdb.errors import (
    ConfigurationError,
    Conflict,
    MethodNotAllowed,
    NotFound,
    NotTheAPI,
    ThisDBError,
    UnexpectedResponse,
)
from thisdb.models import Item

# The tool's own variable; the SDK's (THISDB_URL, ...) are named in thisdb._core.
ENV_PROFILE = "THISDB_PROFILE"


pass_state = click.make_pass_decorator(State)


class NonEmpty(click.ParamType):  # type: ignore[type-arg]
    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not isinstance(value, str) or not value:
            self.fail("cannot be empty", param, ctx)
        return value


BUCKET = click.argument("bucket", type=NonEmpty(), metavar="BUCKET")
KEY = click.argument("key", type=NonEmpty(), metavar="KEY")
TTL = click.option(
    "--ttl",
    type=click.IntRange(min=0),
    help="Seconds the key lives unless written again; 0 = never [default: the bucket's].",
)


IF_VERSION = click.option(
    "--if-version",
    "if_versions",
    multiple=True,
    metavar="V",
    help="Only if the key is at version V (repeat for any of several); else exit 5.",
)
IF_ABSENT = click.option(
    "--if-absent", is_flag=True, help="Only if the key does not exist; else exit 5."
)
IF_EXISTS = click.option("--if-exists", is_flag=True, help="Only if the key exists; else exit 5.")
SHOW_VERSION = click.option(
    "--show-version",
    is_flag=True,
    help="Print the key's version on stderr as `version: V` (with --json: in the record).",
)


def _with_version(state: State, record: dict[str, Any], version: str | None) -> dict[str, Any]:
    """--show-version: the version goes into the JSON record, or on stderr for people (stdout
    may carry a value's bytes)."""
    if version is None:
        return record
    if not state.output.json:
        state.output.err.print(f"version: {version}", markup=False)
    return {**record, "version": version}


CONFIG_PATH = "{config_path}"  # in the help: the profile file's path as this run finds it


class Cli(click.Group):
    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The path honours $XDG_CONFIG_HOME, so it is filled in when the help is shown.
        written = self.help
        self.help = (written or "").replace(CONFIG_PATH, str(config_path()))
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = written


@click.group(
    cls=Cli,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit status: 0 ok, 1 API error, 2 usage error, 3 network error, "
    "4 the URL does not lead to a ThisDB API, 5 a condition (--if-version, --if-absent, "
    "--if-exists) did not hold, 6 a transaction's check did not hold.",
)
@click.option("--url", metavar="URL", help=f"The server, e.g. http://host:8000 [env {ENV_URL}].")
@click.option("--api-key", metavar="KEY", help=f"Your API key [env {ENV_API_KEY}].")
@click.option("--token", metavar="TOKEN", help=f"A token instead of an API key [env {ENV_TOKEN}].")
@click.option(
    "--profile", "-p", metavar="NAME", help=f"A profile of the config file [env {ENV_PROFILE}]."
)
@click.option("--json", "json_mode", is_flag=True, help="Print JSON (one document a line).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the server.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Retry answers 429 and 503 this many times, waiting what Retry-After asks (at most 60 s).",
)
@click.option("-c", "commands", is_flag=True, help="Run commands from stdin, one a line.")
@click.version_option(__version__, "--version", prog_name="thisdb")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    api_key: str | None,
    token: str | None,
    profile: str | None,
    json_mode: bool,
    timeout: float,
    retries: int,
    commands: bool,
) -> None:
    """A client of ThisDB (any server of the ThisDB v1 API): buckets, keys, tokens, export and
    import, and an interactive shell.

    Settings come from the options, else the environment, else the profile file
    ({config_path}, written by `thisdb login`)."""
    state = ctx.ensure_object(State)
    if state.ready:
        return  # a line of the shell: the session's settings stay
    state.output.json = json_mode
    state.timeout, state.retries = timeout, retries
    _configure(state, url, api_key, token, profile)
    state.options = given_options(ctx)
    state.ready = True
    if commands:
        if ctx.invoked_subcommand:
            raise click.UsageError("-c reads the commands from stdin: give no command")
        from thisdb.cli.shell import Shell

        ctx.exit(Shell(state, cli, invoke).run_lines(sys.stdin))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _configure(
    state: State, url: str | None, api_key: str | None, token: str | None, profile: str | None
) -> None:
    env = os.environ
    config = state.config_file
    chosen = profile or env.get(ENV_PROFILE)
    state.profile = chosen or config.default_profile
    settings = config.profile(state.profile)
    if settings is None and chosen:
        raise click.UsageError(
            f"no profile {state.profile!r} in {config.path}: "
            f"create it with `thisdb login --profile {state.profile}`"
        )
    settings = settings or {}
    state.url = url or env.get(ENV_URL) or _text(settings.get("url"))
    if api_key and token:
        raise click.UsageError("give --api-key or --token, not both")
    if api_key or token:
        state.api_key, state.token = api_key, token
    elif env.get(ENV_API_KEY) or env.get(ENV_TOKEN):
        state.api_key = env.get(ENV_API_KEY) or None
        state.token = None if state.api_key else env.get(ENV_TOKEN)
    else:
        state.api_key = _text(settings.get("api_key"))
        state.token = None if state.api_key else _text(settings.get("token"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- login -------------------------------------------------------------------------------------


@cli.command()
@click.option("--url", metavar="URL", help="The server, e.g. https://thisdb.example.com.")
@click.option("--api-key", metavar="KEY", help="Your API key (asked for if not given).")
@click.option(
    "--profile", "-p", "name", metavar="NAME", help="Profile to write [default: the current one]."
)
@click.option("--default", "make_default", is_flag=True, help="Make it the default profile.")
@pass_state
def login(
    state: State, url: str | None, api_key: str | None, name: str | None, make_default: bool
) -> None:
    """Check an API key against a server and save both in a profile."""
    if state.interactive:
        raise click.UsageError("login is not available in the shell: run `thisdb login`")
    terminal = sys.stdin.isatty()
    url = url or state.url
    if not url:
        if not terminal:
            raise click.UsageError("give --url")
        url = click.prompt("Server URL", default="http://127.0.0.1:8000")
    api_key = api_key or state.api_key
    if not api_key:
        if not terminal:
            raise click.UsageError("give --api-key")
        api_key = click.prompt("API key", hide_input=True)
    try:
        with Client(api_key, base_url=url, timeout=state.timeout) as client:
            _check_api_key(client)
            base_url = client.base_url
    except NotTheAPI:
        raise  # an answer came, but not the API's: its own exit status
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    name = name or state.profile
    config = state.config_file
    config.save_profile(name, url, api_key, make_default)
    state.output.result(
        f"logged in to {base_url}: profile {name!r} saved in {config.path}",
        {"profile": name, "url": base_url, "config": str(config.path)},
    )


def _check_api_key(client: Client) -> None:
    """There is no "who am I" endpoint: ask for a bucket that cannot exist. A valid key gets the
    API's own 404 (in JSON, as asked); a wrong one a 403, which is raised."""
    alphabet = string.ascii_letters + string.digits
    probe = "".join(secrets.choice(alphabet) for _ in range(20))
    not_the_api = f"{client.base_url} does not answer like a ThisDB v1 API: check the URL"
    try:
        client.list_keys(probe, limit=1)
    except NotFound as exc:
        response = exc.response
        if response is None or "json" not in response.headers.get("Content-Type", ""):
            raise NotTheAPI(not_the_api, response) from None
    except NotTheAPI:
        raise
    except UnexpectedResponse as exc:
        raise NotTheAPI(f"{not_the_api} ({exc})", exc.response) from None


# --- buckets -----------------------------------------------------------------------------------


@cli.group()
def bucket() -> None:
    """Create, list, update and delete buckets."""


@bucket.command("create")
@click.option(
    "--default-ttl",
    type=click.IntRange(min=0),
    help="Seconds keys live unless written again; 0 = never [server default: 604800].",
)
@pass_state
def bucket_create(state: State, default_ttl: int | None) -> None:
    """Create a bucket and print its id.

    The id is also remembered in the profile: the shell completes it, and `bucket list` shows it
    when the server cannot list buckets."""
    bucket_id = state.client().create_bucket(default_ttl)
    state.config_file.remember_bucket(state.profile, bucket_id)
    state.output.result(bucket_id, {"bucket": bucket_id})


@bucket.command("list")
@pass_state
def bucket_list(state: State) -> None:
    """The account's buckets with their default ttl, keys and bytes, all pages (with --json:
    one object a line).

    A server that speaks only the published v1 API cannot list buckets (it answers 405): then
    this lists the buckets created with this tool under the current profile, and says so."""
    buckets = state.client().iter_buckets()
    try:
        first = next(buckets, None)
    except MethodNotAllowed:
        _remembered_buckets(state)
        return
    items = [] if first is None else chain([first], buckets)
    out = state.output
    if out.json:
        for info in items:
            out.data(asdict(info))
    elif out.stdout_is_terminal:
        rows = [[i.bucket, _duration(i.default_ttl), f"{i.keys:,}", f"{i.bytes:,}"] for i in items]
        if rows:
            out.table(["bucket", "default ttl", "keys", "bytes"], rows, right=(2, 3))
        else:
            out.note("no buckets yet: `thisdb bucket create` makes one")
    else:
        for info in items:
            out.line(f"{info.bucket}\t{info.default_ttl}\t{info.keys}\t{info.bytes}")


def _remembered_buckets(state: State) -> None:
    """`bucket list` on a server without the listing: what the profile remembers."""
    config = state.config_file
    buckets = config.buckets(state.profile)
    out = state.output
    for bucket_id in buckets:
        out.result(bucket_id, {"bucket": bucket_id})
    cannot = f"the server cannot list buckets ({state.client().base_url}/ answered 405)"
    if state.profile_exists():
        out.warning(
            f"{cannot}: these are the {len(buckets)} bucket(s) created with this tool under "
            f"profile {state.profile!r} ({config.path}); buckets made elsewhere are not in it"
        )
    else:
        out.warning(f"{cannot}, and no profile remembers any: run `thisdb login` to make one")


def _duration(seconds: int) -> str:
    """A ttl for people: "never", or whole days, hours, minutes or seconds (exact)."""
    if seconds == 0:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@bucket.command("update")
@BUCKET
@click.option(
    "--default-ttl",
    type=click.IntRange(min=0),
    required=True,
    help="Seconds keys live unless written again; 0 = never.",
)
@pass_state
def bucket_update(state: State, bucket: str, default_ttl: int) -> None:
    """Set a bucket's default ttl."""
    state.client().update_bucket(bucket, default_ttl)
    state.output.result("OK", {"result": "OK"})


@bucket.command("delete")
@BUCKET
@pass_state
def bucket_delete(state: State, bucket: str) -> None:
    """Delete a bucket with all its keys and tokens."""
    try:
        state.client().delete_bucket(bucket)
    except NotFound:
        state.config_file.forget_bucket(state.profile, bucket)
        raise
    state.config_file.forget_bucket(state.profile, bucket)
    if state.bucket == bucket:
        state.bucket = None
    state.output.result("OK", {"result": "OK"})


# --- keys --------------------------------------------------------------------------------------


@cli.command()
@BUCKET
@KEY
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the value to this file.",
)
@SHOW_VERSION
@pass_state
def get(state: State, bucket: str, key: str, output_file: Path | None, show_version: bool) -> None:
    """Print a key's value (byte for byte when stdout is not a terminal)."""
    version = None
    if show_version:
        value, version = state.client().get_versioned(bucket, key)
    else:
        value = state.client().get(bucket, key)
    record = _with_version(state, value_record(key, value), version)
    out = state.output
    if output_file is not None:
        try:
            output_file.write_bytes(value)
        except OSError as exc:
            raise click.UsageError(f"cannot write {output_file}: {exc.strerror}") from None
        out.note(f"{len(value)} bytes written to {output_file}")
    elif out.json:
        out.data(record)
    elif out.stdout_is_terminal:
        try:
            out.line(value.decode("utf-8"))
        except UnicodeDecodeError:
            # Bytes that are not text would garble the terminal; printing nothing and exiting 0
            # would read as an empty value.
            raise click.UsageError(
                f"the value of {key!r} is binary ({len(value):,} bytes), not shown on a "
                f"terminal: save it with --output FILE or `> FILE`, or see it as base64 "
                f"with --json"
            ) from None
    elif state.interactive:
        out.raw(value if value.endswith(b"\n") else value + b"\n")  # one result a line
    else:
        out.raw(value)


@cli.command("set")
@BUCKET
@KEY
@click.argument("value", required=False)
@click.option(
    "--file", "-f", "value_file", metavar="FILE", help="Read the value from FILE ('-' for stdin)."
)
@TTL
@IF_VERSION
@IF_ABSENT
@IF_EXISTS
@SHOW_VERSION
@pass_state
def set_(
    state: State,
    bucket: str,
    key: str,
    value: str | None,
    value_file: str | None,
    ttl: int | None,
    if_versions: tuple[str, ...],
    if_absent: bool,
    if_exists: bool,
    show_version: bool,
) -> None:
    """Set a key to VALUE, to the contents of --file, or to what stdin carries."""
    if value is not None and value_file is not None:
        raise click.UsageError("give VALUE or --file, not both")
    if value is not None:
        # Arguments the terminal sent in another encoding come back as the same bytes.
        content = value.encode("utf-8", "surrogateescape")
    elif value_file is not None and value_file != "-":
        try:
            content = Path(value_file).read_bytes()
        except OSError as exc:
            raise click.UsageError(f"cannot read {value_file}: {exc.strerror}") from None
    elif state.interactive:
        raise click.UsageError("give the value: set KEY VALUE, or --file FILE")
    elif value_file is None and sys.stdin.isatty():
        raise click.UsageError("give a VALUE, --file FILE, or pipe the value to stdin")
    else:
        content = sys.stdin.buffer.read()
    # More than one condition is the SDK's InvalidArgument: a usage error (exit 2).
    client, if_version = state.client(), if_versions or None
    version = None
    if show_version:
        version = client.set_versioned(
            bucket,
            key,
            content,
            ttl,
            if_version=if_version,
            if_absent=if_absent,
            if_exists=if_exists,
        )
    else:
        client.set(
            bucket,
            key,
            content,
            ttl,
            if_version=if_version,
            if_absent=if_absent,
            if_exists=if_exists,
        )
    state.output.result("OK", _with_version(state, {"result": "OK"}, version))


@cli.command(context_settings={"ignore_unknown_options": True})
@BUCKET
@KEY
@click.argument("by", required=False, metavar="[BY]")
@click.option("--by", "by_option", metavar="N", help="The same as BY: --by 3, --by -2.")
@TTL
@IF_VERSION
@IF_ABSENT
@IF_EXISTS
@SHOW_VERSION
@pass_state
def incr(
    state: State,
    bucket: str,
    key: str,
    by: str | None,
    by_option: str | None,
    ttl: int | None,
    if_versions: tuple[str, ...],
    if_absent: bool,
    if_exists: bool,
    show_version: bool,
) -> None:
    """Add BY (default 1; -N to subtract) to a key holding an integer; print the new value."""
    if by is not None and by_option is not None:
        raise click.UsageError("give BY or --by, not both")
    by = by if by is not None else by_option if by_option is not None else "1"
    try:
        amount = int(by)
    except ValueError:
        raise click.UsageError(f"BY must be a whole number like 1, +5 or -2, not {by!r}") from None
    client, if_version = state.client(), if_versions or None
    version = None
    if show_version:
        value, version = client.increment_versioned(
            bucket,
            key,
            amount,
            ttl,
            if_version=if_version,
            if_absent=if_absent,
            if_exists=if_exists,
        )
    else:
        value = client.increment(
            bucket,
            key,
            amount,
            ttl,
            if_version=if_version,
            if_absent=if_absent,
            if_exists=if_exists,
        )
    record = _with_version(state, {"key": key, "value": value}, version)
    state.output.result(str(value), record)


@cli.command("del")
@BUCKET
@KEY
@IF_VERSION
@pass_state
def delete(state: State, bucket: str, key: str, if_versions: tuple[str, ...]) -> None:
    """Delete a key (with --if-version, only at that version)."""
    state.client().delete(bucket, key, if_version=if_versions or None)
    state.output.result("OK", {"result": "OK"})


@cli.command()
@BUCKET
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--values", is_flag=True, help="With each key's value.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many keys [default: all].")
@pass_state
def keys(state: State, bucket: str, prefix: str, values: bool, limit: int | None) -> None:
    """List a bucket's keys in byte order, all pages (with --json: one object a line).

    Off a terminal, one line a key, with --values "KEY<TAB>VALUE": in both, backslash, tab,
    newline and carriage return are written \\\\, \\t, \\n, \\r, and other control bytes
    and bytes that are not UTF-8 \\xHH (the byte HH)."""
    page_size = min(limit, 1000) if limit else None
    items: Iterator[Item] = state.client().iter_keys(bucket, prefix or None, values, page_size)
    if limit:
        items = islice(items, limit)
    out = state.output
    if out.json:
        for item in items:
            record = (
                value_record(item.key, item.value)
                if values and item.value is not None
                else {"key": item.key}
            )
            out.data(record if item.version is None else {**record, "version": item.version})
    elif not values:
        for item in items:
            out.line(tsv_field(item.key))
    elif out.stdout_is_terminal:
        out.table(["key", "value"], [[i.key, shown_value(i.value or b"")] for i in items])
    else:
        for item in items:
            out.line(f"{tsv_field(item.key)}\t{tsv_field(item.value or b'')}")


@cli.command()
@BUCKET
@click.argument("file", required=False, metavar="[FILE]")
@pass_state
def txn(state: State, bucket: str, file: str | None) -> None:
    """Run a transaction: its JSON body from FILE or stdin ('-'), the result as JSON.

    The body is the API's: {"checks": [{"key", "version"}...], "ops": [{"op": "set", "key",
    "value"}...]}. Every op is applied, or none: when a check does not hold, the conflict
    ({"ok": false, "failed": [...], "versions": {...}}) is printed and the exit status is 6."""
    if file in (None, "-"):
        if state.interactive:
            raise click.UsageError("give the FILE in the shell: txn BUCKET FILE")
        if file is None and sys.stdin.isatty():
            raise click.UsageError("give a FILE, or pipe the transaction's JSON to stdin")
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(file).read_bytes()
        except OSError as exc:
            raise click.UsageError(f"cannot read {file}: {exc.strerror}") from None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"the transaction is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise click.UsageError('the transaction must be a JSON object: {"checks": [], "ops": []}')
    path = "/" + segment(bucket, "bucket")
    try:
        # Sent as given: the server names what is wrong in it, by index.
        response = state.client().request(
            "POST", path, params={"format": "json"}, content=body, content_type="application/json"
        )
    except Conflict as exc:
        if exc.response is not None:
            state.output.data(_json_of(exc.response))
        raise
    state.output.data(_json_of(response))


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise UnexpectedResponse("the answer to the transaction is not JSON", response) from None


# --- watching ----------------------------------------------------------------------------------


@cli.command()
@BUCKET
@click.argument("prefix", required=False, default="")
@click.option(
    "--since",
    metavar="N",
    help="Start after position N (an event's, or where a watch stopped) [default: now].",
)
@click.option("--snapshot", is_flag=True, help="First every key under PREFIX as it is now.")
@click.option(
    "--json", "json_mode", is_flag=True, help="One JSON object an event (as `thisdb --json`)."
)
@pass_state
def watch(
    state: State, bucket: str, prefix: str, since: str | None, snapshot: bool, json_mode: bool
) -> None:
    """Print the changes to the keys under PREFIX as they happen, one line an event, until
    Ctrl-C (which prints the position to go on from on stderr, and exits 0).

    `42 put KEY = VALUE`, `43 delete KEY (deleted)`, `57 reset: list again`: the first word is
    the event's position (`-` for the keys of a snapshot but its last). A dropped connection is
    connected again from the last position; exit 1 when the server ends the watch (a token
    revoked, the bucket deleted)."""
    from thisdb.cli.watching import watch_prefix

    watch_prefix(state, bucket, prefix, since, snapshot, json_mode)


# --- tokens ------------------------------------------------------------------------------------


@cli.group()
def token() -> None:
    """Create tokens: access to some keys of a bucket, for a while, without the API key."""


@token.command("create")
@BUCKET
@click.option(
    "--prefix",
    default="",
    show_default=True,
    help="Keys starting with this ('' = the whole bucket; a full key = that key).",
)
@click.option(
    "--permissions",
    default="read",
    show_default=True,
    type=click.Choice(["read", "write", "read,write"]),
)
@click.option(
    "--ttl",
    type=click.IntRange(1, 86400),
    default=3600,
    show_default=True,
    help="Seconds the token lives (at most 86400).",
)
@pass_state
def token_create(state: State, bucket: str, prefix: str, permissions: str, ttl: int) -> None:
    """Create a token and print it."""
    value = state.client().create_token(bucket, prefix, permissions, ttl)
    state.output.result(value, {"token": value})


# --- export, import, shell ---------------------------------------------------------------------


@cli.command("export")
@BUCKET
@click.argument("prefix_argument", required=False, metavar="[PREFIX]")
@click.option("--prefix", default="", help="Only keys starting with this (the same as PREFIX).")
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@pass_state
def export_(
    state: State,
    bucket: str,
    prefix_argument: str | None,
    prefix: str,
    output_file: Path | None,
) -> None:
    """Write a bucket's keys (or those under PREFIX) and values as NDJSON, one
    {"key","value"[,"encoding"][,"ttl","exported_at"]} a line, in key order.

    One streamed request from one snapshot of the bucket; a server without it is read page by
    page."""
    from thisdb.cli.transfer import export_bucket

    if prefix_argument is not None and prefix:
        raise click.UsageError("give PREFIX or --prefix, not both")
    if output_file is None and state.interactive and state.output.stdout_is_terminal:
        raise click.UsageError("give --output FILE in the shell")
    export_bucket(state, bucket, prefix_argument or prefix, output_file)


@cli.command("import")
@BUCKET
@click.argument("input_file", required=False, metavar="[FILE|-]")
@click.option(
    "--file", "-f", "file_option", metavar="FILE", help="The same as FILE ('-' for stdin)."
)
@click.option(
    "--from",
    "source",
    type=click.Choice(FORMATS),
    default="ndjson",
    show_default=True,
    help="The file's format: an export (NDJSON), Workers KV's bulk JSON, `consul kv export`'s "
    "JSON, or a kvdb.io listing with values (its JSON or its key=value text).",
)
@click.option(
    "--skip",
    type=click.IntRange(min=0),
    default=0,
    help="Start after record N (a line; an entry of a JSON array), as a stopped import says.",
)
@TTL
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="On a server without bulk imports (one write a key): wait out a 429 if the server "
    "asks for at most this many seconds; else stop and say where.",
)
@pass_state
def import_(
    state: State,
    bucket: str,
    input_file: str | None,
    file_option: str | None,
    source: str,
    skip: int,
    ttl: int | None,
    max_wait: float,
) -> None:
    """Write the keys of FILE (or stdin) into a bucket: an export's NDJSON, or with --from
    another store's file (--ttl for records without one).

    One streamed request (a server without it gets one write a key). Stopped by a bad record,
    the server or Ctrl-C, it prints the command that goes on (--skip N)."""
    from thisdb.cli.transfer import import_bucket

    if input_file is not None and file_option is not None:
        raise click.UsageError("give FILE or --file, not both")
    input_file = input_file if input_file is not None else file_option
    if input_file in (None, "-") and state.interactive:
        raise click.UsageError("give the FILE in the shell: import BUCKET FILE")
    if input_file is None and sys.stdin.isatty():
        raise click.UsageError("give a FILE, or pipe the records to stdin")
    import_bucket(state, bucket, input_file, ttl, max_wait, skip, source)


@cli.command()
@click.pass_context
def shell(ctx: click.Context) -> None:
    """An interactive shell: history, tab completion, `use BUCKET`."""
    from thisdb.cli.shell import Shell

    state = ctx.find_object(State)
    assert state is not None
    if state.interactive:
        raise click.UsageError("already in the shell")
    ctx.exit(Shell(state, cli, invoke).run())


# --- running -----------------------------------------------------------------------------------


def invoke(state: State, args: list[str] | None) -> int:
    """Run one command line and return its exit status; errors are printed, never raised."""
    try:
        result = cli.main(args=args, prog_name="thisdb", standalone_mode=False, obj=state)
    except click.UsageError as exc:
        if state.output.json:
            return state.output.error(exc)
        exc.show()
        return USAGE_ERROR
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return INTERRUPTED
    except ThisDBError as exc:
        return state.output.error(exc)
    return result if isinstance(result, int) else OK


def main(argv: list[str] | None = None) -> int:
    state = State()
    try:
        return invoke(state, argv)
    except BrokenPipeError:
        # The reader went away (`thisdb keys B | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return API_ERROR
    finally:
        state.close()
