"""Settings come from the environment and .env; .env.example documents every one."""

from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting():
    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    expected = {f"IMAGEBOT_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_env_example_itself_is_a_valid_configuration(monkeypatch):
    monkeypatch.chdir(ROOT)
    settings = Settings(_env_file=ROOT / ".env.example")
    assert settings.default_backend == "local"
    assert settings.platforms == ["auto"]


def test_lists_and_costs_parse_from_plain_strings(monkeypatch):
    monkeypatch.setenv("IMAGEBOT_ADMINS", "telegram:1, console:ann")
    monkeypatch.setenv("IMAGEBOT_BACKEND_COSTS", "local:1,zhiqite:3")
    s = Settings(_env_file=None)
    assert s.is_admin("console", "ann") and not s.is_admin("console", "bob")
    assert s.cost_of("zhiqite") == 3 and s.cost_of("paint4") == 1


def test_secrets_do_not_show_in_repr(monkeypatch):
    monkeypatch.setenv("IMAGEBOT_TELEGRAM_TOKEN", "123:SECRET-TOKEN")
    s = Settings(_env_file=None)
    assert "SECRET-TOKEN" not in repr(s) and "SECRET-TOKEN" not in str(s.model_dump())
