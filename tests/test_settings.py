from pathlib import Path

import pytest

from assistant.errors import UserError
from assistant.settings import DEMO_MODEL_NAME, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)


def test_defaults_point_at_the_demo_model():
    s = load_settings()
    assert s.model is None
    assert s.model_path == str(Path(".assistant/demo-model"))
    assert s.model_name == DEMO_MODEL_NAME
    assert s.index_dir == Path(".assistant/index")
    assert s.port == 8000 and s.host == "127.0.0.1"


def test_every_field_has_a_description():
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_precedence_flags_over_env_over_yaml(tmp_path, monkeypatch):
    cfg = tmp_path / "assistant.yaml"
    cfg.write_text("port: 7000\nhost: 0.0.0.0\nmax_model_len: 1024\n")
    monkeypatch.setenv("ASSISTANT_PORT", "7100")
    s = load_settings(cfg, port=7200)
    assert s.port == 7200  # flag wins
    assert s.host == "0.0.0.0"  # from YAML
    assert s.max_model_len == 1024
    s = load_settings(cfg)
    assert s.port == 7100  # env beats YAML


def test_config_file_from_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collection: hr-docs\n")
    monkeypatch.setenv("ASSISTANT_CONFIG", str(cfg))
    assert load_settings().collection == "hr-docs"


def test_comma_separated_lists_from_environment(monkeypatch):
    monkeypatch.setenv("ASSISTANT_API_KEYS", "k1, k2,")
    monkeypatch.setenv("ASSISTANT_LLM_URLS", "http://a:8000/,http://b:8000")
    s = load_settings()
    assert s.api_keys == ["k1", "k2"]
    assert s.llm_urls == ["http://a:8000", "http://b:8000"]


def test_none_overrides_fall_through():
    assert load_settings(port=None).port == 8000


def test_named_model_gives_its_name(tmp_path):
    assert load_settings(model="Qwen/Qwen2.5-1.5B-Instruct").model_name == (
        "Qwen/Qwen2.5-1.5B-Instruct"
    )
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert load_settings(model=str(folder)).model_name == "my-model"
    assert load_settings(model=str(folder), served_model_name="x").model_name == "x"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"port": 70000}, "port"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"llm_urls": ["ftp://x"]}, "llm_urls"),
    ],
)
def test_bad_values_name_the_field(overrides, needle):
    with pytest.raises(UserError, match=needle):
        load_settings(**overrides)


def test_unknown_yaml_key_is_rejected(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prot: 8000\n")
    with pytest.raises(UserError, match="prot"):
        load_settings(cfg)


def test_missing_config_file():
    with pytest.raises(UserError, match="does not exist"):
        load_settings("/nonexistent/assistant.yaml")
