"""What the commands of one run of the tool (or one shell session) share: the settings, the
output, the profile file and the client made from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from thisdb._core import ENV_API_KEY, ENV_TOKEN, ENV_URL
from thisdb.cli.config import ConfigFile
from thisdb.cli.output import Output
from thisdb.client import Client
from thisdb.errors import ConfigurationError


@dataclass
class State:
    """What the commands of one run (or one shell session) share."""

    output: Output = field(default_factory=Output)
    url: str | None = None
    api_key: str | None = None
    token: str | None = None
    profile: str = "default"
    config: ConfigFile | None = None
    timeout: float = 10.0
    retries: int = 0
    interactive: bool = False  # shell or -c: stdin carries commands, never values
    bucket: str | None = None  # the shell's current bucket (`use BUCKET`)
    # The options given before the command, to repeat in a command to go on (import's hint);
    # secrets are never among them.
    options: list[str] = field(default_factory=list)
    ready: bool = False
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, retries: int | None = None, max_retry_wait: float = 60.0) -> Client:
        """A client of its own (the caller closes it), with other retries than the run's."""
        if not self.url:
            raise click.UsageError(f"no server: pass --url, set {ENV_URL}, or run `thisdb login`")
        if not self.api_key and not self.token:
            raise click.UsageError(
                f"no credentials: pass --api-key or --token, set {ENV_API_KEY} or "
                f"{ENV_TOKEN}, or run `thisdb login`"
            )
        try:
            return Client(
                self.api_key or None,
                token=None if self.api_key else self.token,
                base_url=self.url,
                timeout=self.timeout,
                retries=self.retries if retries is None else retries,
                max_retry_wait=max_retry_wait,
            )
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def config_file(self) -> ConfigFile:
        if self.config is None:
            self.config = ConfigFile.load()
        return self.config

    def profile_exists(self) -> bool:
        return self.config_file.profile(self.profile) is not None
