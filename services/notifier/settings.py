"""notifier settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tickmesh.config import ConfigError, setting

NEWS_PROVIDERS = ("synthetic", "replay", "off")
SAMPLE_NEWS = str(Path(__file__).with_name("samples") / "news.ndjson")


@dataclass(frozen=True)
class NotifierSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    max_alerts: int = setting("NOTIFIER_MAX_ALERTS", 50, "Price-alert rules a user may hold at once (more: 608)")
    news_provider: str = setting(
        "NOTIFIER_NEWS_PROVIDER",
        "synthetic",
        "News source: " + ", ".join(NEWS_PROVIDERS) + " (run one news source per deployment)",
    )
    news_rate: float = setting("NOTIFIER_NEWS_RATE", 2.0, "News stories per minute (synthetic and replay)")
    news_file: str = setting("NOTIFIER_NEWS_FILE", SAMPLE_NEWS, "Replay provider: NDJSON file of stories")
    news_loop: bool = setting("NOTIFIER_NEWS_LOOP", True, "Replay provider: start again at the end of the file")
    news_seed: int = setting("NOTIFIER_NEWS_SEED", 0, "Synthetic provider: random seed; 0 picks a fresh one")
    notify_holders: bool = setting(
        "NOTIFIER_NEWS_NOTIFY_HOLDERS", True, "Notify each user holding a symbol a story names"
    )

    def validate(self) -> None:
        if self.news_provider not in NEWS_PROVIDERS:
            raise ConfigError(
                "NOTIFIER_NEWS_PROVIDER", self.news_provider, "must be one of " + ", ".join(NEWS_PROVIDERS)
            )
        if not 0 < self.news_rate <= 60_000:
            raise ConfigError("NOTIFIER_NEWS_RATE", str(self.news_rate), "must be in (0, 60000] stories per minute")
        if self.max_alerts < 1:
            raise ConfigError("NOTIFIER_MAX_ALERTS", str(self.max_alerts), "must be at least 1")
        if self.news_provider == "replay" and not Path(self.news_file).is_file():
            raise ConfigError("NOTIFIER_NEWS_FILE", self.news_file, "no such file")
