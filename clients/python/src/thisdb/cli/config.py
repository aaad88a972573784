"""The profile file, $XDG_CONFIG_HOME/thisdb/config.toml (~/.config/thisdb/config.toml):

    default_profile = "default"

    [profiles.default]
    url = "http://127.0.0.1:8000"
    api_key = "tdb_..."
    buckets = ["zqjvK4C908tf3mAHlcOi"]   # buckets this tool created (shell completion, and
                                         # `bucket list` on servers that cannot list buckets)

It holds secrets, so it is written with mode 0600 in a folder of mode 0700.

Several `thisdb` processes may change it at once (ten `bucket create` in parallel): each change
re-reads the file and writes it back while holding an exclusive lock (flock) on
config.toml.lock beside it, and the write is a temporary file renamed over the old one, so no
change is lost and no reader ever sees half a file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

import click
import tomli_w

DEFAULT_PROFILE = "default"


class ConfigError(click.UsageError):
    """The profile file or a profile is wrong or missing (a usage error: exit status 2)."""


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec: a relative path is invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "thisdb" / "config.toml"


def history_path() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "thisdb" / "history"


class ConfigFile:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path | None = None) -> ConfigFile:
        path = path or config_path()
        return cls(path, _read(path))

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        profiles: dict[str, dict[str, Any]] = self.data.setdefault("profiles", {})
        return profiles

    @property
    def default_profile(self) -> str:
        name = self.data.get("default_profile")
        return name if isinstance(name, str) and name else DEFAULT_PROFILE

    def profile(self, name: str) -> dict[str, Any] | None:
        return self.profiles.get(name)

    def save_profile(self, name: str, url: str, api_key: str, make_default: bool) -> None:
        def change(config: ConfigFile) -> bool:
            profile = config.profiles.setdefault(name, {})
            profile["url"] = url
            profile["api_key"] = api_key
            profile.pop("token", None)
            if make_default or "default_profile" not in config.data:
                config.data["default_profile"] = name
            return True

        self.update(change)

    def buckets(self, name: str) -> list[str]:
        profile = self.profile(name) or {}
        buckets = profile.get("buckets", [])
        return [b for b in buckets if isinstance(b, str)] if isinstance(buckets, list) else []

    def remember_bucket(self, name: str, bucket: str) -> bool:
        """Add a bucket to a profile that exists in the file; False if there is none."""

        def change(config: ConfigFile) -> bool:
            profile = config.profile(name)
            if profile is None or bucket in config.buckets(name):
                return False
            profile["buckets"] = [*config.buckets(name), bucket]
            return True

        if self.profile(name) is None:
            return False
        self.update(change)
        return self.profile(name) is not None

    def forget_bucket(self, name: str, bucket: str) -> None:
        def change(config: ConfigFile) -> bool:
            profile = config.profile(name)
            if profile is None or bucket not in config.buckets(name):
                return False
            profile["buckets"] = [b for b in config.buckets(name) if b != bucket]
            return True

        if bucket in self.buckets(name):
            self.update(change)

    def update(self, change: Callable[[ConfigFile], bool]) -> None:
        """Apply `change` to the file as it is now and write it back if `change` says it
        changed something, all under the lock: what another process wrote meanwhile is kept."""
        with self._locked():
            self.data = _read(self.path)
            if change(self):
                self.save()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if sys.platform == "win32":  # no flock: changes at once may overwrite each other
            yield
            return
        # The lock file stays: removing it would let two processes lock two different files.
        descriptor = os.open(
            self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor is closed
            yield
        finally:
            os.close(descriptor)

    def save(self) -> None:
        """Write the file atomically (a temporary file renamed over it), readable by its owner
        only."""
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".config-", suffix=".toml")
        try:
            with os.fdopen(descriptor, "wb") as file:
                tomli_w.dump(self.data, file)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        data = {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ConfigError(f"{path}: [profiles.NAME] must be tables")
    return data
