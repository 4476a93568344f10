"""The vLLM child's command line and the sentences for its start-up failures."""

import pytest

from assistant.engine.checks import check_adapters, check_model_source
from assistant.engine.config import EngineConfig, engine_config
from assistant.engine.failures import explain_failure
from assistant.engine.supervisor import EngineProcess
from assistant.errors import UserError
from assistant.settings import load_settings


def test_command_carries_the_serving_settings(tmp_path):
    adapter = tmp_path / "a"
    adapter.mkdir()
    settings = load_settings(
        model="Qwen/Qwen2.5-1.5B-Instruct",
        adapters={"it": str(adapter)},
        max_model_len=4096,
        engine_extra_args=["--enforce-eager"],
    )
    engine = EngineProcess(engine_config(settings))
    cmd = engine.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]

    def value(flag):
        return cmd[cmd.index(flag) + 1]

    assert value("--model") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert value("--served-model-name") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert value("--host") == "127.0.0.1"  # private loopback port
    assert value("--port") == str(engine.port) and engine.port > 0
    assert value("--max-model-len") == "4096"
    assert "--enable-prefix-caching" in cmd
    assert "--enable-lora" in cmd and value("--lora-modules") == f"it={adapter}"
    assert cmd[-1] == "--enforce-eager"


def test_no_lora_flags_without_adapters():
    cmd = EngineProcess(EngineConfig(model="m", served_name="m")).command()
    assert "--enable-lora" not in cmd


def test_kv_cache_space_reaches_the_environment():
    engine = EngineProcess(EngineConfig(model="m", served_name="m", kv_cache_space_gib=2))
    assert engine.environment()["VLLM_CPU_KVCACHE_SPACE"] == "2"


@pytest.mark.parametrize(
    ("log", "needle"),
    [
        ("ValueError: No available memory for the cache blocks. Try increasing", "KV cache"),
        ("torch.OutOfMemoryError: CUDA out of memory", "KV cache"),
        ("OSError: We couldn't connect to 'https://huggingface.co'", "hub"),
        ("OSError: [Errno 98] Address already in use", "port"),
        ("something else entirely", "exited during start-up"),
    ],
)
def test_failures_are_explained_in_one_sentence(log, needle):
    sentence = explain_failure(log)
    assert needle in sentence and "\n" not in sentence


def test_model_source_checks(tmp_path):
    check_model_source("Qwen/Qwen2.5-1.5B-Instruct")  # a hub id passes through
    with pytest.raises(UserError, match="does not exist"):
        check_model_source(str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"no config\.json"):
        check_model_source(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    check_model_source(str(tmp_path))


def test_adapter_folder_needs_adapter_config(tmp_path):
    with pytest.raises(UserError, match="adapter 'it'"):
        check_adapters({"it": str(tmp_path)})


def test_the_engine_inherits_no_assistant_secrets(monkeypatch):
    monkeypatch.setenv("ASSISTANT_API_KEYS", "k1,k2")
    monkeypatch.setenv("ASSISTANT_ADMIN_KEY", "adm")
    monkeypatch.setenv("ASSISTANT_OIDC_CLIENT_SECRET", "s3")
    monkeypatch.setenv("HF_HOME", "/tmp/hf")
    env = EngineProcess(EngineConfig(model="m", served_name="m")).environment()
    assert not [k for k in env if k.startswith("ASSISTANT_")]
    assert env["HF_HOME"] == "/tmp/hf"  # what vLLM itself reads still passes


def test_ports_are_checked_on_ipv4_and_ipv6():
    import socket

    from assistant.engine.checks import check_port_free, url_host
    from assistant.errors import UserError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UserError, match="already in use"):
            check_port_free("127.0.0.1", taken.getsockname()[1])
    with pytest.raises(UserError, match="not an address"):
        check_port_free("no-such-host.invalid", 8000)
    assert url_host("::1") == "[::1]" and url_host("127.0.0.1") == "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    check_port_free("::1", port)  # free again: no error, and no IPv4 socket tried on it
