"""Settings precedence (flag > env > tastebud.toml in TASTEBUD_HOME > default) and its report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tastebud.errors import ConfigError
from tastebud.settings import Settings, load_settings, write_setting


@pytest.fixture
def layered(home, monkeypatch):
    """Each of four settings set at a different depth of the stack."""
    (home / "tastebud.toml").write_text(
        'llm_model = "toml-model"\n'
        "ingest_batch_size = 111\n"
        "max_tags = 7\n"
        "[blend]\n"
        "popularity = 0.5\n"
    )
    monkeypatch.setenv("TASTEBUD_LLM_MODEL", "env-model")
    monkeypatch.setenv("TASTEBUD_INGEST_BATCH_SIZE", "222")
    return home


def test_each_layer_overrides_the_ones_below(layered):
    s = load_settings(llm_model="flag-model", llm_base_url=None)  # a None flag means "not given"
    assert s.llm_model == "flag-model"  # flag beats env and toml
    assert s.ingest_batch_size == 222  # env beats toml
    assert s.max_tags == 7  # toml beats the default
    assert s.blend == {"popularity": 0.5}  # a toml table replaces the default one whole
    assert s.short_window_events == Settings.model_fields["short_window_events"].default
    assert s.home == layered
    assert s.sources["llm_model"] == "flag"
    assert s.sources["ingest_batch_size"] == "env"
    assert s.sources["max_tags"] == f"toml ({layered / 'tastebud.toml'})"
    assert s.sources["short_window_events"] == "default"
    assert s.sources["home"] == "env"
    assert s.sources["llm_base_url"] == "default"


def test_the_toml_is_read_from_the_home_a_flag_names(layered, tmp_path):
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "tastebud.toml").write_text("max_tags = 3\n")
    s = load_settings(home=other)
    assert (s.home, s.max_tags, s.sources["home"], s.sources["max_tags"]) == (other, 3, "flag", f"toml ({other / 'tastebud.toml'})")


def test_database_url_defaults_to_sqlite_in_home_and_env_switches_it(home, monkeypatch):
    assert load_settings().effective_database_url == f"sqlite:///{home / 'tastebud.db'}"
    monkeypatch.setenv("TASTEBUD_DATABASE_URL", "postgresql://db/tastebud")
    s = load_settings()
    assert (s.effective_database_url, s.sources["database_url"]) == ("postgresql://db/tastebud", "env")


def test_bad_settings_are_config_errors_naming_the_problem(home, monkeypatch):
    (home / "tastebud.toml").write_text("max_tags = [unclosed\n")
    with pytest.raises(ConfigError, match="tastebud.toml"):
        load_settings()
    (home / "tastebud.toml").write_text("")
    monkeypatch.setenv("TASTEBUD_INGEST_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match="ingest_batch_size"):
        load_settings()


def test_write_setting_persists_to_the_toml_layer(home):
    write_setting(load_settings(), "max_tags", 9)
    s = load_settings()
    assert (s.max_tags, s.sources["max_tags"]) == (9, f"toml ({home / 'tastebud.toml'})")


def test_config_show_json_reports_value_and_source(layered):
    from tastebud.cli.main import _register, app

    _register()
    result = CliRunner().invoke(app, ["--llm-base-url", "http://gpu:8000/v1", "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == set(Settings.model_fields)
    assert shown["llm_base_url"] == {"value": "http://gpu:8000/v1", "source": "flag"}
    assert shown["llm_model"] == {"value": "env-model", "source": "env"}
    assert shown["ingest_batch_size"] == {"value": 222, "source": "env"}
    assert shown["max_tags"] == {"value": 7, "source": f"toml ({layered / 'tastebud.toml'})"}
    assert shown["max_tags"]["source"].startswith("toml")
    assert shown["short_window_days"]["source"] == "default"
    assert shown["home"] == {"value": str(layered), "source": "env"}
