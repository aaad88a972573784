"""The profile file, $XDG_CONFIG_HOME/thisdb/config.toml (~/.config/thisdb/config.toml):

    default_profile = "default"

    [profiles.default]
    url = "http://127.0.0.1:8000"
    api_key = "tdb_..."
    buckets = ["zqjvK4C908tf3mAHlcOi"]   # buckets this tool created (shell completion, and
                                         # `bucket list` on servers that cannot list buckets)

It holds secrets, so it is written with mode 0600 in a folder of mode 0700.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

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
        if not isinstance(profiles, dict) or not all(
            isinstance(p, dict) for p in profiles.values()
        ):
            raise ConfigError(f"{path}: [profiles.NAME] must be tables")
        return cls(path, data)

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
        profile = self.profiles.setdefault(name, {})
        profile["url"] = url
        profile["api_key"] = api_key
        profile.pop("token", None)
        if make_default or "default_profile" not in self.data:
            self.data["default_profile"] = name
        self.save()

    def buckets(self, name: str) -> list[str]:
        profile = self.profile(name) or {}
        buckets = profile.get("buckets", [])
        return [b for b in buckets if isinstance(b, str)] if isinstance(buckets, list) else []

    def remember_bucket(self, name: str, bucket: str) -> bool:
        """Add a bucket to a profile that exists in the file; False if there is none."""
        profile = self.profile(name)
        if profile is None:
            return False
        buckets = self.buckets(name)
        if bucket not in buckets:
            profile["buckets"] = [*buckets, bucket]
            self.save()
        return True

    def forget_bucket(self, name: str, bucket: str) -> None:
        profile = self.profile(name)
        if profile is not None and bucket in self.buckets(name):
            profile["buckets"] = [b for b in self.buckets(name) if b != bucket]
            self.save()

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
