"""Server settings: defaults < TOML config file < OFFGRID_* environment < command-line flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ENV_PREFIX = "OFFGRID_"
DATABASE_SCHEMES = ("postgresql://", "postgres://")
ROLES = ("admin", "user", "guest")
LIMITS = ("requests_per_minute", "tokens_per_day")
REPLICA_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 11611
    ollama_port: int = 0  # a second listener, for clients that assume Ollama's 11434; 0: none
    # offgrid.pyz sets OFFGRID_HOME to an offgrid-data folder beside it (offgrid/_zipapp.py).
    home: Path = field(default_factory=lambda: Path.home() / ".offgrid")
    models_dir: Path | None = None  # None: <home>/models
    # postgresql://user:password@host:port/database puts users, keys, quotas, sessions and the
    # knowledge base there, shared by every server given the same URL (docs/scale-out.md);
    # empty: sqlite at <home>/offgrid.db.
    database_url: str = field(default="", repr=False)
    default_model: str | None = None  # None: the first model in models_dir
    max_context: int = 4096  # tokens of context per parallel slot
    num_threads: int = field(default_factory=_default_threads)
    parallel: int = 4  # requests decoded together per model
    batch_size: int = 512  # most tokens evaluated in one step
    queue_size: int = 64  # requests waiting for a slot before 503
    max_body_bytes: int = 16 * 1024 * 1024
    shutdown_timeout: float = 30.0  # seconds running requests get to finish on SIGTERM
    max_models: int = 3  # models loaded at once; the least recently used idle one makes room
    keep_alive: float = 300.0  # seconds an idle model stays loaded; negative: for ever
    max_memory: int = 0  # bytes models may take; 0: whatever the machine has free
    # Prompt prefixes' KV states kept after their slot moves on (engine/kvcache.py), in MiB of
    # host memory and of files under <home>/kv/; 0 turns a tier off.
    kv_cache_ram_mb: int = 512
    kv_cache_disk_mb: int = 2048
    # Draft tokens from the request's own prompt and answer, checked in the same step
    # (engine/speculative.py); it drafts only where drafts have been paying off.
    speculative: bool = True
    # A model with the same vocabulary as the chat models, to guess their next tokens with
    # (engine/draft_model.py): its id in models_dir. None: drafts come from the prompt alone.
    draft_model: str | None = None
    # Hardening: how long a client may take to send its request, and how many may connect.
    header_timeout: float = 10.0  # request line and headers, from the moment we wait for them
    body_timeout: float = 60.0  # the whole body; also each write of the answer
    max_connections: int = 100
    max_connections_per_address: int = 32  # so that one client cannot take them all
    cors_origins: str = ""  # comma-separated origins allowed cross-origin access; "*" for any
    # Names a request may call the server by besides localhost, IP addresses and this machine's
    # own (see server/hosts.py); "*": any.
    allowed_hosts: str = ""
    # One of several replicas behind a load balancer (docs/scale-out.md): the name it goes by in
    # /health, in an X-OffGrid-Replica header on every answer and in model-not-found errors, so
    # that whoever reads an answer knows which replica gave it. "": a server on its own.
    replica_name: str = ""
    # The load balancers in front (addresses or networks): a request from one of them is from
    # the client its X-Forwarded-For names, for login throttling, guests' limits and the logs;
    # and they are not held to max_connections_per_address, since they carry many clients.
    trusted_proxies: str = ""
    # The only folders import and export over HTTP may touch (the CLI's may touch any).
    transfer_dirs: str = "/media,/mnt,/run/media"
    # Networks the agents' http_get tool may reach although they are not public (loopback,
    # link-local, private): comma-separated, such as "192.168.1.0/24,10.0.0.5".
    http_get_allowed_networks: str = ""
    # Comma-separated host:port of llama.cpp rpc-server workers that every model is spread
    # over, with this machine (docs/scale-out.md); "": this machine alone.
    rpc_servers: str = ""
    # Multi-user mode: see docs/multi-user.md.
    multi_user: bool = False
    require_auth: bool = False
    guest_access: bool = False
    admin_password: str | None = field(default=None, repr=False)  # creates `admin` if none
    token_lifetime: int = 24 * 3600  # seconds a login token stays valid
    login_attempts: int = 5  # failed logins per user and per address before a pause
    # Quotas by role; 0 means no limit. Per-user values set with `offgrid users quota` win.
    guest_requests_per_minute: int = 10
    guest_tokens_per_day: int = 20_000
    user_requests_per_minute: int = 60
    user_tokens_per_day: int = 1_000_000
    admin_requests_per_minute: int = 0
    admin_tokens_per_day: int = 0

    def __post_init__(self):
        if self.models_dir is None:
            self.models_dir = self.home / "models"
        for name in ("port", "max_context", "num_threads", "parallel", "batch_size",
                     "max_body_bytes", "max_models", "max_connections",
                     "max_connections_per_address", "token_lifetime", "login_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be more than 0, not {getattr(self, name)}")
        for name in ("queue_size", "ollama_port", "kv_cache_ram_mb", "kv_cache_disk_mb",
                     *(f"{role}_{limit}" for role in ROLES for limit in LIMITS)):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, not {getattr(self, name)}")
        if self.database_url and not self.database_url.startswith(DATABASE_SCHEMES):
            raise ConfigError("database_url must be a postgresql:// URL (or empty for sqlite), "
                              f"not {self.database_url.split(':', 1)[0]!r}")
        for folder in self.transfer_folders():
            if not folder.is_absolute():
                raise ConfigError(f"transfer_dirs must name absolute folders, not {folder}")
        self.http_get_networks()  # these two refuse a value that is not networks
        self.trusted_proxy_networks()
        self.rpc_endpoints()  # and this one a value that is not host:port pairs
        if self.replica_name and not REPLICA_NAME.fullmatch(self.replica_name):
            raise ConfigError("replica_name must be 1 to 64 letters, digits, '.', '_' and '-' "
                              f"(it goes into a header), not {self.replica_name!r}")

    def http_get_networks(self) -> list[Network]:
        return _networks("http_get_allowed_networks", self.http_get_allowed_networks)

    def trusted_proxy_networks(self) -> list[Network]:
        return _networks("trusted_proxies", self.trusted_proxies)

    def rpc_endpoints(self) -> list[str]:
        """rpc_servers as "host:port" strings. llama.cpp splits an endpoint at its first colon,
        so a host cannot be an IPv6 address."""
        endpoints = []
        for item in filter(None, map(str.strip, self.rpc_servers.split(","))):
            host, _, port = item.partition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536 or item in endpoints:
                raise ConfigError("rpc_servers must be comma-separated, distinct host:port pairs "
                                  f"such as 192.168.1.20:50052 (no IPv6 addresses), not {item!r}")
            endpoints.append(item)
        return endpoints

    def transfer_folders(self) -> list[Path]:
        return [Path(folder.strip()).expanduser() for folder in self.transfer_dirs.split(",")
                if folder.strip()]

    def quota(self, role: str) -> dict[str, int]:
        """The default limits of a role: {"requests_per_minute": n, "tokens_per_day": n}."""
        return {limit: getattr(self, f"{role}_{limit}") for limit in LIMITS}

    @classmethod
    def load(cls, overrides: dict | None = None, environ=None, config_file: Path | None = None
             ) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict = {}
        config_file = config_file or _path_or_none(environ.get(ENV_PREFIX + "CONFIG"))
        if config_file is None:
            home = Path(environ.get(ENV_PREFIX + "HOME") or cls().home)
            config_file = home / "config.toml" if (home / "config.toml").is_file() else None
        if config_file is not None:
            values.update(_read_toml(config_file))
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw not in (None, ""):
                values[f.name] = raw
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**{name: _convert(name, value) for name, value in values.items()})


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(name: str, value: str) -> list[Network]:
    """The comma-separated networks or addresses of setting `name`."""
    networks = []
    for item in filter(None, map(str.strip, value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated networks such as 10.0.0.0/8 or "
                              f"addresses, not {item!r}") from None
    return networks


_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _convert(name: str, value):
    kind = _TYPES.get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r}")
    try:
        if "Path" in kind:
            return Path(value).expanduser()
        if name == "keep_alive":
            return parse_duration(value)
        if name == "max_memory":
            return parse_size(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return _boolean(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} must be {kind}, not {value!r}") from None


_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(value) -> float:
    """Seconds from a number or a duration such as "30s", "5m", "1h"; negative: for ever."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value))
    if not found:
        raise ValueError(f"not a duration: {value!r}")
    return float(found[1]) * _DURATION_UNITS[found[2]]


def parse_size(value) -> int:
    """Bytes from a number or a size such as "512M" or "4G"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = _SIZE.match(str(value))
    if not found:
        raise ValueError(f"not a size: {value!r}")
    unit = (found[2] or "").upper().replace("I", "").replace("B", "") or ""
    return int(float(found[1]) * _SIZE_UNITS[unit])
def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def _path_or_none(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None
