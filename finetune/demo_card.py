"""The demo model's label and model card (README.md beside its weights)."""

from __future__ import annotations

from finetune.demo_config import DemoModelConfig

LABEL = (
    "helpdesk-demo: DEMO MODEL - a tiny model trained here to quote its sources, "
    "not a real assistant"
)


def model_card(config: DemoModelConfig, report: dict) -> str:
    grounded = report.get("grounded")
    task = (
        f"""
Then {grounded["steps"]} steps on the grounded task ({grounded["examples"]} examples made from
the sample docs and transcripts, never from data/eval): the gateway's system prompt with
numbered sources and a question, answered by quoting the opening sentence of source [1] (the
passage the search ranked first), cited as [1], or, when the search found nothing relevant, by
saying the documentation does not cover it. Answer loss on held-back examples:
{grounded["answer_loss_before"]} before, {grounded["answer_loss_after"]} after.
"""
        if grounded
        else ""
    )
    circuit = report.get("copy_circuit")
    sources = (
        ", looking only between the prompt's source markers (a third layer-0 head marks them)"
        if circuit and circuit.get("quotes_sources_only")
        else ""
    )
    start = (
        ". An answer starts where source [1]'s text starts: the induction head reads the "
        "answer's opening as the end of a source's header line, and prefers source [1] and "
        "earlier matches"
        if circuit and circuit.get("starts_at_top_source")
        else ""
    )
    copying = (
        f"""
Its copying is not learned but written into the weights before training
(finetune/copy_circuit.py): two layer-0 heads that attend one and two places back, and a
layer-1 induction head that finds where the last two tokens occur in the prompt and copies the
token after them{sources}{start}; training leaves those parts fixed and learns the rest. Share of
held-out quoted tokens it predicts: {circuit["quoted_tokens_right_built"]} as built,
{circuit["quoted_tokens_right_trained"]} after {config.max_steps} language-model steps.
"""
        if circuit
        else ""
    )
    language = (
        f"""trained
from scratch for {config.max_steps} steps on the sample help-desk transcripts and docs of
this project. It exists to run the pipeline offline. Eval loss on held-back text:
{report["eval_loss_before"]} before, {report["eval_loss_after"]} after."""
        if config.max_steps
        else """trained
from scratch on the grounded task alone (no language-model steps: on this small corpus they
taught it to override its copying). It exists to run the pipeline offline."""
    )
    return f"""# {LABEL}

A Llama-architecture causal LM ({report["parameters"]:,} parameters, hidden
{config.hidden_size}, {config.num_layers} layers, head size {config.head_dim}) with its own
byte-level BPE tokenizer ({config.vocab_size} tokens) and a ChatML chat template, {language}
{copying}{task}
It can only quote what it is given, and does not judge which sentence answers the question:
serve a real instruct model for real use (see the project README).
"""
