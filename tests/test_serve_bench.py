"""`assistant bench serve`: its options, and what each path is sent (no vLLM started)."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_cli import run

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "serve_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("serve_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_lists_the_options():
    result = run("bench", "serve", "--", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--gateway-url", "--vllm-url", "--concurrency", "--request-rate",
                   "--goodput", "--workloads", "--speculative", "--num-prompts"):  # fmt: skip
        assert option in result.stdout


def test_model_or_both_urls():
    bench = load_bench()
    for argv in ([], ["--gateway-url", "http://g"], ["--model", "m", "--vllm-url", "http://v"]):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
    with pytest.raises(SystemExit):
        bench.parse_args(["--gateway-url", "g", "--vllm-url", "v", "--speculative", "ngram"])


def extra_body(argv: list[str]) -> dict:
    return json.loads(argv[argv.index("--extra-body") + 1]) if "--extra-body" in argv else {}


@pytest.mark.parametrize("workload", ["random", "helpdesk"])
def test_only_the_gateway_gets_the_retrieval_field(workload):
    bench = load_bench()
    args = bench.parse_args(["--gateway-url", "http://g", "--vllm-url", "http://v"])
    w = {"name": workload, "gateway": "http://g", "direct": "http://v", "model": "m",
         "tokenizer": "t", "asked": "q.jsonl", "rendered": "p.jsonl"}  # fmt: skip
    direct = bench.vllm_argv(args, w, "direct", ("concurrency", 4), 16, "x-")
    gateway = bench.vllm_argv(args, w, "gateway", ("request_rate", 2.0), 16, "x-")
    assert direct[direct.index("--base-url") + 1] == "http://v"
    assert "retrieval" not in extra_body(direct)
    assert extra_body(gateway)["retrieval"] == {"enabled": workload == "helpdesk"}
    assert direct[direct.index("--max-concurrency") + 1] == "4"
    assert gateway[gateway.index("--request-rate") + 1] == "2.0"
    if workload == "helpdesk":  # the same tokens: the prompt vLLM rendered for the gateway
        assert direct[direct.index("--endpoint") + 1] == "/v1/completions"
        assert direct[direct.index("--dataset-path") + 1] == "p.jsonl"
        assert gateway[gateway.index("--dataset-path") + 1] == "q.jsonl"
