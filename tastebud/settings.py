"""Layered settings: flags > env (TASTEBUD_*) > tastebud.toml in TASTEBUD_HOME > defaults.

TASTEBUD_HOME itself comes only from a flag or the environment, because the
toml file lives inside it.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tastebud.errors import ConfigError

CONFIG_FILENAME = "tastebud.toml"

DEFAULT_EVENT_WEIGHTS = {
    "purchase": 3.0,
    "add_to_cart": 2.0,
    "rating": 2.0,
    "review": 2.0,
    "like": 2.5,
    "tag": 1.5,
    "click": 1.0,
    "search": 0.5,
    "view": 0.5,
}

# The recommender's blend (retrieval/recommender.py): what `tastebud eval movielens
# examples/ml-latest-small --fit` chose by coordinate ascent on a validation split of
# the training data (docs/design.md#evaluation-protocol), with profile vectors averaged
# from item vectors (retrieval/profile_vectors.py). Validation NDCG@10 0.1273 against
# 0.1204 without the semantic parts (bench/validation.py profile-vectors); on the test split 0.1166 against 0.1177 (the
# difference's 95% interval [-0.0054, +0.0037]: no measurable effect on warm users).
DEFAULT_BLEND = {
    "semantic_long": 0.1,
    "semantic_short": 0.1,
    "co_occurrence": 0.35,
    "popularity": 0.1,
    "tag_match": 0.1,
}


DEFAULT_EMBEDDING_BACKEND = "onnx"


def default_home() -> Path:
    env = os.environ.get("TASTEBUD_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("tastebud", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASTEBUD_", extra="ignore", env_nested_delimiter="__")

    home: Path = Field(default_factory=default_home, description="state directory")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home")
    chroma_url: str | None = Field(None, description="Chroma server URL; default a local directory under home")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM); unset = embedded model")
    llm_model: str = Field("qwen2.5-coder-0.5b-instruct", description="model name sent to the endpoint")
    llm_api_key: str = Field("not-needed", description="API key for the endpoint")
    llm_timeout: float = Field(120.0, description="seconds per LLM call before falling back")
    llm_concurrency: int = Field(8, description="narrative requests in flight at once (vLLM batches them)")
    llm_port: int = Field(0, description="loopback port for the embedded server; 0 picks a free one")
    llm_threads: int = Field(0, description="CPU threads for the embedded model; 0 = all cores")
    llm_context: int = Field(2048, description="context window of the embedded model")
    agent_mode: str = Field("auto", description="auto | tools | router: how the agent drives tools")

    embedder: str = Field("sentence-transformers", description="embedder model family")
    embedding_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model name or path")
    # retrieval/embedder.py; onnx: torch's vectors without importing torch (bench/embed_check.py, docs/design.md)
    embedding_backend: str = Field(DEFAULT_EMBEDDING_BACKEND, description="torch | onnx | onnx-int8 (no torch import; int8 re-embeds on switch)")
    embedding_device: str = Field("auto", description="cpu | cuda | auto (cuda when the backend sees one)")
    embedding_cache_dir: Path | None = Field(None, description="where ONNX exports are cached; default the user cache dir")

    ingest_batch_size: int = Field(20000, description="rows per transaction during ingestion")
    # value rules (profiles/events.py ValueRules): anything outside is quarantined with the reason
    rating_min: float = Field(0.5, description="lowest rating on the scale (MovieLens 0.5; ml-100k 1)")
    rating_max: float = Field(5.0, description="highest rating on the scale")
    future_skew_s: float = Field(86400.0, ge=0, description="how far past now a timestamp may lie (clock skew)")
    max_text_chars: int = Field(10_000, ge=1, description="longest review, query or tag text accepted")
    # tastebud/pii.py: profiles, prompts, vectors and logs always get masked text; this is the stored event
    store_raw_text: bool = Field(True, description="keep event text as sent (false: store it with PII masked, docs/design.md#privacy)")

    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    long_half_life_days: float = Field(365.0, description="recency half-life of the long-term profile")
    short_half_life_days: float = Field(30.0, description="recency half-life inside the short-term window")
    short_window_events: int = Field(20, description="short-term profile: the last N events...")
    short_window_days: float = Field(30.0, description="...none older than D days before the latest")
    max_tags: int = Field(15, description="tags kept per horizon")

    blend: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BLEND))
    # retrieval/ranker.py: a LightGBM re-ranker of the blend's candidates, trained by `tastebud train-ranker`
    ranker: str = Field("auto", description="auto (use the trained ranker in $TASTEBUD_HOME/models/ranker when present) | off (the blend)")

    # `tastebud serve` (api/)
    serve_host: str = Field("127.0.0.1", description="address the HTTP API binds to")
    serve_port: int = Field(8000, ge=0, le=65535, description="port the HTTP API listens on")
    serve_workers: int = Field(1, ge=1, description="API worker processes (each builds its own services)")
    api_max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 above)")
    api_max_batch_events: int = Field(1000, ge=1, description="most events in one POST /v1/events (413 above)")
    api_rate_limit_per_s: float = Field(50.0, gt=0, description="requests per second per API key, sustained")
    api_rate_burst: int = Field(100, ge=1, description="requests per API key allowed in a burst")
    api_chat_timeout_s: float = Field(20.0, gt=0, description="seconds per LLM call in POST /v1/chat before the deterministic answer")
    api_chat_phrasing: bool = Field(True, description="let the LLM phrase chat answers (false: deterministic answers only)")

    # live updates in `tastebud serve` (tastebud/live/)
    serve_narratives: bool = Field(True, description="rewrite narratives with the LLM in the background while serving")
    serve_switch_interval_ms: float = Field(1.0, gt=0, description="how long a worker's thread keeps the GIL while another waits (Python's default 5 ms): the live thread gives it up at every SQL call and waited that long to get it back from busy request threads")
    serve_live_processes: int = Field(1, ge=0, description="with several workers, run the live refresh (profiles, their vectors, narratives, retention) in this many `tastebud live` processes beside them, users split by shard, instead of a thread in each worker (0): a worker's requests took most of its one GIL under load")
    live_role: Literal["all", "worker", "live"] = Field("all", description="what of the live updates this process runs (tastebud/live/updates.py): `serve` sets it for its workers and `tastebud live` for itself; set `worker` by hand only for workers beside a `tastebud live` you run on the same home")
    serve_freeze_gc: bool = Field(True, description="once started and warmed, keep what a worker holds out of Python's cyclic GC (gc.freeze): a full collection over it stalled a worker about 1 s")
    narrative_debounce_s: float = Field(2.0, ge=0, description="seconds after a user's latest event before their narrative is rewritten (coalesces bursts)")
    narrative_queue_size: int = Field(1000, ge=1, description="narrative requests held in memory; beyond it they wait in the database")
    # a rebuild reads every event (about 2 s for ml-latest-small's 100k on two idle cores, 9 s under load)
    item_side_refresh_events: int = Field(20000, ge=0, description="rebuild co-occurrence and popularity after this many new events (0 = never by count)")
    item_side_refresh_s: float = Field(600.0, ge=0, description="...or this many seconds after the last rebuild, if anything changed (0 = never by time)")

    # privacy (docs/design.md#privacy)
    retention_days: float | None = Field(None, gt=0, description="delete events older than this many days at refresh time and rebuild the profiles that cited them (unset = keep every event)")

    _flags: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _scale_is_ordered(self) -> "Settings":
        if not self.rating_min < self.rating_max:
            raise ValueError(f"rating_min ({self.rating_min}) must be below rating_max ({self.rating_max})")
        return self

    @model_validator(mode="after")
    def _embedding_choices(self) -> "Settings":
        for field, allowed in (("embedding_backend", ("torch", "onnx", "onnx-int8")), ("embedding_device", ("cpu", "cuda", "auto"))):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {getattr(self, field)!r}")
        return self

    @model_validator(mode="after")
    def _ranker_choice(self) -> "Settings":
        if self.ranker not in ("auto", "off"):
            raise ValueError(f"ranker must be auto or off, not {self.ranker!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _toml_source(settings_cls, init_settings))

    # Derived locations -------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILENAME

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tastebud.db'}"

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def onnx_cache_dir(self) -> Path | None:
        return self.embedding_cache_dir.expanduser() if self.embedding_cache_dir else None

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def ranker_path(self) -> Path | None:
        """Where `tastebud train-ranker` saves the model; None when the ranker is off."""
        return None if self.ranker == "off" else self.models_dir / "ranker"

    @cached_property
    def sources(self) -> dict[str, str]:
        """Where each field's value came from: flag, env, toml or default."""
        return _explain_sources(self)


def _toml_source(settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    home = init_settings().get("home") or default_home()
    path = Path(home) / CONFIG_FILENAME
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except Exception as exc:  # a broken toml must say where it is
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def load_settings(**flags: Any) -> Settings:
    """Build settings with CLI flags on top; None flags mean 'not given'."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**given)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    settings._flags = given
    return settings


def _explain_sources(settings: Settings) -> dict[str, str]:
    flags = settings._flags
    env_keys = {k[len("TASTEBUD_"):].lower().split("__")[0] for k in os.environ if k.upper().startswith("TASTEBUD_")}
    toml: dict[str, Any] = {}
    if settings.config_path.exists():
        import tomllib

        toml = tomllib.loads(settings.config_path.read_text())
    out = {}
    for name in Settings.model_fields:
        if name in flags:
            out[name] = "flag"
        elif name in env_keys:
            out[name] = "env"
        elif name in toml:
            out[name] = f"toml ({settings.config_path})"
        else:
            out[name] = "default"
    return out


def write_setting(settings: Settings, key: str, value: Any) -> Path:
    """Persist one key in tastebud.toml (used by `eval movielens --fit` and `ingest movielens`)."""
    import tomllib

    if key not in Settings.model_fields:
        raise ConfigError(f"unknown setting {key!r}")
    path = settings.config_path
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # owner-only (it may hold llm_api_key), written whole then renamed over the old
    # one (over what it links to, if the user made it a symlink)
    real = Path(os.path.realpath(path))
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover tmp
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_dump_toml(data))
        os.replace(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _dump_toml(data: dict[str, Any]) -> str:
    """Tiny writer for flat scalars and one level of tables: all our settings need."""
    import json

    scalars, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            tables.append(f"[{key}]\n{body}\n")
        else:
            scalars.append(f"{key} = {json.dumps(value)}")
    return "\n".join(scalars) + ("\n\n" if scalars and tables else "\n") + "\n".join(tables)
