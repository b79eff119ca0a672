"""Settings: ``configure(app, settings_module, **settings)``, environment overrides and plugins.

Settings belong to the app (``app.settings``). ``configure`` may be called once per app;
an app that was never configured is configured with the defaults when it first serves.
Every known setting can be overridden by an environment variable named
``BOCADILLO_<NAME>`` (``BOCADILLO_GZIP=true``, ``BOCADILLO_ALLOWED_HOSTS=a.com,b.com``);
``SECRET_KEY`` is also read from the plain ``SECRET_KEY`` variable. The environment wins
over the code, so a deployment can change a setting without changing code.

``bocadillo.settings`` is a view of the settings of the most recently configured app, in
the UPPER-CASE spelling of Bocadillo 0.18 (``settings.GZIP``; ``settings.gzip`` works too).
It stores nothing itself: every read and write goes to that app's ``Settings``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .errors import SettingsError
from .jsoncodec import loads

__all__ = [
    "DEFAULTS",
    "Settings",
    "check_setting_names",
    "configure",
    "plugin",
    "plugin_functions",
    "settings",
]

#: Every setting Bocadillo reads, with its default.
DEFAULTS: dict[str, Any] = {
    "debug": False,
    "cors": False,
    "gzip": False,
    "gzip_min_size": 1024,
    "hsts": False,
    "allowed_hosts": ["*"],
    "sessions": False,
    "secret_key": None,
    "static_dir": "static",
    "static_root": "/static",
    "plugins": [],
    # A path without its trailing slash is redirected (302) to the route that has it.
    "redirect_trailing_slash": True,
    # Modules imported by configure() so that their @provider declarations exist.
    "provider_modules": [],
    # Options of the static files app (``{"max_age": seconds}``).
    "static_config": {},
    # HTTP request bodies over this many bytes are refused with 413 (None: no limit).
    "max_body_size": 1048576,
    # Real-time hub (see docs/realtime.md).
    "hub_backend": None,
    # Shared (Redis, NATS) backend: key/channel prefix, heartbeat expiry, publish queue size,
    # and (Redis) how many partitions rooms and connections are hashed into.
    "hub_prefix": "bocadillo",
    "hub_heartbeat_ttl": 15.0,
    "hub_publish_queue": 10000,
    "hub_partitions": 128,
    "allowed_origins": None,
    "max_connections": None,
    # Safe defaults that a normal app never reaches and a flood does (docs/realtime.md,
    # "Limits and backpressure"); None turns each off.
    "max_connections_per_ip": 256,
    "max_room_members": None,
    "max_rooms_per_connection": 100,
    # Rooms with history and presence events (per-room patterns: app.room_options()).
    "history_size": 0,
    "history_ttl": 300.0,
    "presence_events": False,
    "rate_limit": (100, 1.0),
    "rate_limit_violations": 10,
    "max_message_size": 65536,
    # Served by `bocadillo run` (docs/deployment.md): compression of WebSocket messages,
    # the largest request head (h11), and how many connections/tasks before 503
    # ("auto": the open-file limit minus a margin; None: no limit).
    "ws_per_message_deflate": False,
    "max_header_size": 32768,
    "limit_concurrency": "auto",
    "idle_timeout": None,
    "outbox_limit": 256,
    "overflow": "drop_oldest",
    "socket_path": "/ws",
    "shutdown_timeout": 5.0,
    "shutdown_message": None,
    "stats_endpoint": None,
    # Prometheus metrics (docs/deployment.md, "Metrics"): the path that serves them, and
    # how often each worker writes its hub's figures in multiprocess mode.
    "metrics_endpoint": None,
    "metrics_interval": 1.0,
    # The AsyncAPI document of the message-type endpoints (docs/realtime.md, "AsyncAPI"),
    # and its HTML page.
    "asyncapi_endpoint": None,
    "asyncapi_page": None,
    # The JavaScript client (docs/clients.md) is served here; None: not served.
    "client_script": "/bocadillo/client.js",
}

#: How environment values are parsed for settings whose default is ``None``.
_ENV_TYPES: dict[str, Any] = {
    "allowed_origins": list,
    "max_connections": int,
    "max_connections_per_ip": int,
    "max_room_members": int,
    "max_rooms_per_connection": int,
    "idle_timeout": float,
    "shutdown_timeout": float,
    "rate_limit": "rate",
}

#: Options used for ``cors=True``: restrictive, as in Bocadillo 0.18 (no origin, ``GET``
#: only, no header); a dict given as ``cors=`` is merged on top.
CORS_DEFAULTS: dict[str, Any] = {
    "allow_origins": [],
    "allow_methods": ["GET"],
    "allow_headers": [],
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

Plugin = Callable[[Any], None]
AppT = TypeVar("AppT")
_PLUGINS: list[Plugin] = []


def plugin(func: Plugin) -> Plugin:
    """Offer ``func(app)`` to every app configured from now on; it runs before settings apply.

    A plugin may add routes, middleware, providers or settings (``app.settings[...]``).
    Each app copies the list of plugins when it is configured: registering a plugin later
    does not change an app that is already configured.
    """
    _PLUGINS.append(func)
    return func


def plugin_functions(items: Any) -> list[Plugin]:
    """The plugins listed in a ``plugins`` setting, in order.

    An item is a plugin function, or (as in Bocadillo 0.18) a dict mapping plugin
    functions to a condition: a plugin whose condition is false is left out.

    Raises:
        SettingsError: if an item is neither callable nor such a dict.
    """
    if callable(items) or isinstance(items, Mapping):
        items = [items]
    selected: list[Plugin] = []
    for item in items or ():
        if isinstance(item, Mapping):
            selected.extend(func for func, enabled in item.items() if enabled)
        elif callable(item):
            selected.append(item)
        else:
            raise SettingsError(f"a plugin must be a function or a dict, not {item!r}")
    return selected


def _module_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return [str(name) for name in value]


def _parse_json(name: str, raw: str, text: str) -> Any:
    try:
        return loads(text)
    except ValueError as exc:
        raise SettingsError(f"BOCADILLO_{name.upper()}={raw!r} is not JSON: {exc}") from None


def _parse_env(name: str, raw: str, default: Any) -> Any:
    text = raw.strip()
    kind = _ENV_TYPES.get(name)
    if kind == "rate":
        # "20/1.5": 20 messages per 1.5 seconds.
        try:
            count, _, window = text.partition("/")
            return (int(count), float(window or 1))
        except ValueError:
            raise SettingsError(
                f"BOCADILLO_{name.upper()}={raw!r} is not 'messages/seconds'"
            ) from None
    if kind is float or isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"BOCADILLO_{name.upper()}={raw!r} is not a number") from None
    if kind is int:
        default = 0
    if kind is list:
        default = []
    if isinstance(default, bool) or name in ("cors", "sessions"):
        if text.startswith("{"):
            return _parse_json(name, raw, text)
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"BOCADILLO_{name.upper()}={raw!r} is not a boolean")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"BOCADILLO_{name.upper()}={raw!r} is not an integer") from None
    if isinstance(default, dict):
        parsed = _parse_json(name, raw, text or "{}")
        if not isinstance(parsed, dict):
            raise SettingsError(f"BOCADILLO_{name.upper()}={raw!r} is not a JSON object")
        return parsed
    if isinstance(default, list):
        if text.startswith("["):
            return _parse_json(name, raw, text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


class Settings(Mapping[str, Any]):
    """An app's settings: read as ``settings.gzip`` or ``settings["gzip"]``.

    Items can be changed (``app.settings["cors"] = True``) until the app first serves.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "secret_key" and v else v) for k, v in self._values.items()}
        return f"Settings({shown})"


def load_settings(
    explicit: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge the defaults, ``explicit`` settings and the environment (which wins)."""
    env = os.environ if environ is None else environ
    # A deep copy: apps must not share (and mutate) the default lists.
    values = {
        **copy.deepcopy(DEFAULTS),
        **{key.lower(): value for key, value in explicit.items()},
    }
    for name, default in DEFAULTS.items():
        if name == "plugins":
            continue
        raw = env.get(f"BOCADILLO_{name.upper()}")
        if raw is not None:
            values[name] = _parse_env(name, raw, default)
    if values.get("hub_backend") is None and env.get("BOCADILLO_HUB_URL"):
        values["hub_backend"] = env["BOCADILLO_HUB_URL"]
    if values.get("secret_key") is None and env.get("SECRET_KEY"):
        values["secret_key"] = env["SECRET_KEY"]
    return Settings(values)


def _key(name: str) -> str:
    """The ``Settings`` key of a name spelled either way (``GZIP`` or ``gzip``)."""
    return name.lower() if name.isupper() else name


class _SettingsProxy(Mapping[str, Any]):
    """``bocadillo.settings``: the settings of the most recently configured app.

    As in Bocadillo 0.18, names are UPPER-CASE: ``settings.GZIP``, ``settings.get("GZIP")``,
    ``"GZIP" in settings``, ``settings.GZIP = True``. Lower-case reads
    (``settings.gzip``, ``settings["gzip"]``) work as well. Nothing is stored here:
    every access goes to the app's own ``Settings``.
    """

    _current: Settings | None = None

    def _target(self) -> Settings:
        if self._current is None:
            raise SettingsError("no app has been configured yet: call configure(app)")
        return self._current

    def _clear(self) -> None:
        """Forget the configured app (Bocadillo 0.18's spelling; its own settings stay)."""
        self._current = None

    def __getitem__(self, key: str) -> Any:
        return self._target()[_key(key)]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or key.startswith("_") or not key.isupper():
            return False
        return self._current is not None and key.lower() in self._current

    def __iter__(self) -> Iterator[str]:
        return iter([key.upper() for key in self._target()])

    def __len__(self) -> int:
        return len(self._target())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._target()[_key(name)]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._target()[_key(name)] = value

    @property
    def configured(self) -> bool:
        """Whether any app has been configured."""
        return self._current is not None


settings = _SettingsProxy()
"""The settings of the most recently configured app, in the spellings of Bocadillo 0.18
and of today (``settings.DEBUG``, ``settings.debug``, ``settings["gzip"]``);
``settings.configured`` tells whether any app is configured yet. In an app, prefer
``app.settings``."""
_proxy = settings


def configure(app: AppT, settings: Any = None, **values: Any) -> AppT:
    """Configure ``app`` once: store its settings, import its provider modules, run plugins
    and apply built-in middleware.

    Args:
        app: The ``App``.
        settings: Optional object (such as a module) whose UPPER-CASE attributes are
            read as settings, like Django's settings module; names starting with ``_``
            are left out.
        **values: Settings by name (see ``DEFAULTS``; either case); unknown names are kept
            for your own use.

    Returns:
        The app, so that ``app = configure(App())`` works.

    Raises:
        SettingsError: if the app is already configured, or a setting is invalid (for
            example ``sessions=True`` without a secret key).
        ImportError: if a module of ``provider_modules`` cannot be imported.
    """
    target: Any = app  # an App (typed loosely: config.py must not import applications.py)
    if getattr(target, "_configured", False):
        raise SettingsError(f"{app!r} is already configured: configure() runs once per app")
    explicit: dict[str, Any] = dict(getattr(target, "_initial_settings", {}))
    if settings is not None:
        explicit.update(
            {
                k.lower(): getattr(settings, k)
                for k in dir(settings)
                if k.isupper() and not k.startswith("_")
            }
        )
    explicit.update(values)
    check_setting_names(values)
    loaded = load_settings(explicit)
    loaded["provider_modules"] = _module_names(loaded["provider_modules"])
    for module in loaded["provider_modules"]:
        importlib.import_module(module)
    previous = _proxy._current
    # Plugins read ``bocadillo.settings`` while they run: point it at this app first.
    _proxy._current = loaded
    try:
        target._apply_settings(loaded, [*_PLUGINS, *plugin_functions(loaded["plugins"])])
    except BaseException:
        _proxy._current = previous
        raise
    return app


def check_setting_names(names: Iterable[str]) -> None:
    """Refuse a setting name that is not a known one but close to one: a likely typo
    (``rate_limt``) would otherwise leave the setting at its default, silently. Other
    unknown names stay allowed: plugins and apps keep their own settings.

    Raises:
        SettingsError: (a ConfigurationError) naming the known setting the name is close to.
    """
    known = list(DEFAULTS)
    for name in names:
        if name in DEFAULTS:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            raise SettingsError(
                f"unknown setting {name!r}: did you mean {close[0]!r}? (a custom setting "
                "of your own must not look like a known one)"
            )
