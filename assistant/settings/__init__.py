"""All settings of the assistant, in one object built once and passed down.

Sources, later ones winning: defaults < YAML file (``--config`` or ``ASSISTANT_CONFIG``)
< environment variables (``ASSISTANT_<FIELD>``) < command-line flags.

``Settings`` joins the sections, each in its own module: ``engine`` (HOME, the model and
vLLM), ``gateway``, ``retrieval`` and ``tickets``. May import ``assistant.errors`` only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from assistant.errors import UserError
from assistant.settings.engine import DEMO_MODEL_NAME, EngineSettings
from assistant.settings.gateway import GatewaySettings
from assistant.settings.retrieval import RetrievalSettings
from assistant.settings.tickets import TicketSettings

__all__ = ["DEMO_MODEL_NAME", "Settings", "load_settings"]


class Settings(BaseSettings, TicketSettings, RetrievalSettings, GatewaySettings, EngineSettings):
    """Every knob of the assistant. Each field documents itself; see ``assistant config``."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="forbid")

    # --- derived -------------------------------------------------------------------------
    @property
    def secret_path(self) -> Path:
        return self.home / "secret.key"

    @property
    def users_path(self) -> Path:
        """SQLite file of local users and API keys."""
        return self.home / "users.sqlite"

    @property
    def escalations_path(self) -> Path:
        """The escalation outbox (SQLite): tickets asked for and their delivery."""
        return self.home / "escalations.sqlite"

    @property
    def feedback_path(self) -> Path:
        """The feedback store (SQLite) the page writes and `finetune --from-feedback` reads."""
        return self.home / "feedback.sqlite"

    @property
    def analytics_cache_path(self) -> Path:
        """Embeddings of the questions analytics clustered (SQLite), reused by later reports."""
        return self.home / "analytics-cache.sqlite"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once: YAML file, then environment, then ``overrides`` (CLI flags).

    ``None`` overrides are ignored, so CLI options left unset fall through to the sources.
    """
    path = config_file or os.environ.get("ASSISTANT_CONFIG")
    if path and not Path(path).is_file():
        raise UserError(f"config file '{path}' does not exist")
    given = {key: value for key, value in overrides.items() if value is not None}

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            return tuple(sources)

    try:
        loaded = _Loaded(**given)
    except ValidationError as exc:
        raise UserError(_describe(exc, path)) from None
    return Settings.model_construct(**dict(loaded))


def _describe(exc: ValidationError, path: str | Path | None) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "settings"
        problems.append(f"{field}: {err['msg']}")
    where = f" (config file '{path}', environment, or flags)" if path else ""
    return "invalid settings" + where + ": " + "; ".join(problems)
