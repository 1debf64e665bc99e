"""Every setting of the process, from the environment (prefix ``IMAGEBOT_``) and ``.env``.

``.env.example`` lists each one with a comment; keep the two in step (a test checks).
Secrets are ``SecretStr`` so they never print in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IMAGEBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- process -------------------------------------------------------------------
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    # Which adapters to start: "auto" = every platform with a token, else the console.
    platforms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["auto"])
    default_language: str = "en"

    # --- quota ---------------------------------------------------------------------
    daily_free_images: int = 20
    # "platform:user_id", e.g. "telegram:12345,console:alice". Admins are not charged.
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_queued_per_user: int = 3
    max_queued_total: int = 100

    # --- engine --------------------------------------------------------------------
    # Backend used when neither the flag nor the user's settings name one.
    default_backend: str = "local"
    # Tried in order when the chosen backend fails with a retryable error.
    fallback_backends: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Credits charged per delivered image, per backend ("local:1,zhiqite:2").
    backend_costs: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    # Jobs a backend runs at once ("zhiqite:200,paint4:8"). The vendor documents give no
    # limit; the defaults are each backend's own: async task APIs (zhiqite 50, jumdata 10)
    # hold tasks cheaply, sync ones (paint4, aiimage 4) keep a connection open per picture,
    # a self-hosted server (sdapi) and a GPU run one at a time.
    backend_concurrency: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    default_model: str = "sd-turbo"
    # Extra models: a JSON file (see README) mapping names to a hub id or a local folder.
    models_file: Path | None = None
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    hf_offline: bool = False
    job_timeout_s: float = 900.0

    # --- scale-out: GPU workers on Redis (off while queue_url is empty) -------------
    # redis://[:password@]host:6379/0. Set on the bot and on every `python -m bot worker`.
    queue_url: SecretStr = SecretStr("")
    # Key prefix, so that several bots can share one Redis.
    queue_prefix: str = "imagebot"
    # Vendor jobs go to workers too (else they run in the bot process).
    queue_vendors: bool = False
    # The most one job's inputs, or its results, may weigh through Redis (MiB).
    queue_max_mb: int = 64
    # How long results wait in Redis for a bot that is restarting.
    queue_result_ttl_s: int = 3600
    worker_heartbeat_s: float = 2.0
    # A worker silent this long is given up; its job runs again on another one.
    worker_lost_after_s: float = 10.0
    # Attempts a job gets when its workers keep getting lost.
    worker_attempts: int = 3
    # Jobs wait this long for a worker that can run them, then fail and are refunded.
    worker_wait_s: float = 300.0

    # --- web server: re-hosted images, vendor callbacks, Telegram webhook ----------
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # The address vendors and Telegram reach this server at (https://bot.example.org).
    public_base_url: str = ""
    link_secret: SecretStr = SecretStr("")
    link_ttl_s: int = 3600

    # --- Telegram ------------------------------------------------------------------
    telegram_token: SecretStr = SecretStr("")
    telegram_api_base: str = "https://api.telegram.org"
    telegram_webhook: bool = False

    # --- Discord -------------------------------------------------------------------
    discord_token: SecretStr = SecretStr("")
    # Where discord.py talks REST and the gateway (tests and proxies point these elsewhere).
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    # Guild ids: sync the slash commands to these guilds only (instant), else globally.
    discord_guilds: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # The privileged message-content intent: replies to results with flags re-run them in servers.
    discord_message_content: bool = False

    # --- vendors (see shared seeds) ------------------------------------------------
    paint4_base_url: str = ""  # https://paint4.art
    paint4_model: str = "Stable_Diffusion"
    aiimage_base_url: str = ""
    zhiqite_base_url: str = "https://zhiqite.market.alicloudapi.com/AIGCImgOpenServ"
    zhiqite_access_key_id: SecretStr = SecretStr("")
    zhiqite_access_key_secret: SecretStr = SecretStr("")
    zhiqite_appcode: SecretStr = SecretStr("")
    zhiqite_scripts_field: str = "alwayson_scripts"
    zhiqite_default_model: str = ""
    sdapi_base_url: str = ""
    jumdata_base_url: str = "https://api-hw.jumdata.com"
    jumdata_app_id: str = ""
    jumdata_app_secret: SecretStr = SecretStr("")
    vendor_timeout_s: float = 60.0
    vendor_task_timeout_s: float = 600.0

    @field_validator("platforms", "admins", "fallback_backends", "discord_guilds", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        return _csv(v)

    @field_validator("backend_costs", "backend_concurrency", mode="before")
    @classmethod
    def _parse_costs(cls, v: Any) -> Any:
        if isinstance(v, str):
            out: dict[str, int] = {}
            for item in _csv(v):
                name, _, number = item.partition(":")
                out[name.strip()] = int(number)
            return out
        return v

    def cost_of(self, backend: str) -> int:
        return self.backend_costs.get(backend, 1)

    def is_admin(self, platform: str, user_id: str) -> bool:
        return f"{platform}:{user_id}" in self.admins

    @property
    def db_path(self) -> Path:
        return self.data_dir / "imagebot.sqlite3"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
