"""The command as a user runs it: a subprocess, its exit status and what it prints."""

import json
import os
import socket
import subprocess
import sys

import pytest

COMMANDS = [
    "serve",
    "index",
    "eval-retrieval",
    "eval-answers",
    "report",
    "finetune",
    "demo-model",
    "bench",
    "users",
    "keys",
]


def run(*args, env=None, timeout=120):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout and len(result.stdout) > 200


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from assistant.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'vllm', 'gradio', 'transformers', 'chromadb', "
        "'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_unknown_option_is_one_clear_error():
    result = run("serve", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_folder(tmp_path):
    result = run("serve", "--model", str(tmp_path / "nope"), "--port", str(_free_port()))
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_folder_that_is_not_a_model(tmp_path):
    result = run("serve", "--model", str(tmp_path), "--port", str(_free_port()))
    assert result.returncode == 1
    assert "no config.json" in result.stderr


def test_no_model_and_no_demo_model(tmp_path):
    result = run("serve", "--port", str(_free_port()), env={"ASSISTANT_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "assistant demo-model" in result.stderr


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--model", str(tmp_path), "--port", str(port))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_adapter_syntax(tmp_path):
    result = run("serve", "--adapter", "no-equals-sign", "--port", str(_free_port()))
    assert result.returncode == 1
    assert "NAME=DIR" in result.stderr


def test_bad_setting_from_environment():
    result = run("serve", env={"ASSISTANT_MAX_MODEL_LEN": "lots"})
    assert result.returncode == 1
    assert "max_model_len" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_rejects_an_unknown_kind():
    result = run("bench", "nope")
    assert result.returncode == 1
    assert "serve, retrieval or finetune" in result.stderr and "Traceback" not in result.stderr


def test_demo_model_rejects_unknown_size(tmp_path):
    result = run("demo-model", "--output", str(tmp_path / "m"), "--size", "huge")
    assert result.returncode == 1
    assert "--size" in result.stderr


def test_config_command_shows_fields_and_hides_secrets():
    result = run("config", env={"ASSISTANT_ADMIN_KEY": "s3cret"})
    assert result.returncode == 0
    assert "ASSISTANT_MAX_MODEL_LEN" in result.stdout
    assert "s3cret" not in result.stdout


def test_demo_model_is_cached(tmp_path, tiny_model):
    result = run("demo-model", "--output", str(tiny_model), "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["built"] is False
    assert "already built" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
