"""The copying circuit written into the demo model (finetune/copy_circuit.py): a freshly
initialised model with it quotes, before any training, and training keeps it."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")


def small_model(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    from finetune.copy_circuit import ROPE_THETA

    shape = dict(
        vocab_size=512,
        hidden_size=384,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=128,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**shape, **overrides}))


def quote_task(seed: int, context: int = 600, span: int = 24):
    """Random tokens, a separator, then a span of them: (input ids, positions whose next
    token the span fixes, those next tokens)."""
    rng = random.Random(seed)
    tokens = [rng.randrange(4, 512) for _ in range(context)]
    start = rng.randrange(0, context - span)
    quote = tokens[start : start + span]
    ids = [*tokens, 1, *quote]
    first = context + 1 + 1  # from the span's second token on, two tokens are known
    positions = list(range(first, len(ids) - 1))
    return ids, positions, [ids[p + 1] for p in positions]


def accuracy(model, seeds=range(8)) -> float:
    right = total = 0
    model.eval()
    with torch.no_grad():
        for seed in seeds:
            ids, positions, targets = quote_task(seed)
            guess = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1)
            right += sum(int(guess[p]) == t for p, t in zip(positions, targets, strict=True))
            total += len(positions)
    return right / total


def test_a_model_with_the_circuit_quotes_without_training():
    from finetune.copy_circuit import install

    model = small_model()
    assert accuracy(model) < 0.05  # random weights copy nothing
    install(model, seed=0)
    assert accuracy(model) >= 0.97


def test_training_changes_the_rest_and_keeps_the_circuit():
    from finetune.copy_circuit import freeze, install
    from finetune.demo_steps import optimise, schedule

    model = small_model()
    fixed = install(model, seed=0)
    partly = freeze(fixed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, scheduler = schedule(model, 3e-3, 4, 0.1, partly)
    for seed in range(100, 104):  # quoting examples other than the measured ones
        ids, positions, _ = quote_task(seed, context=120)
        labels = [-100] * len(ids)  # loss on the quote, as the grounded task has it
        for p in positions:
            labels[p + 1] = ids[p + 1]
        optimise(model, optimizer, scheduler, torch.tensor([ids]), torch.tensor([labels]))
    for f in fixed:
        assert torch.equal(f.param.data[f.mask], f.values)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "lm_head.weight" in changed
    assert "model.layers.1.mlp.up_proj.weight" in changed
    assert not any(n.startswith(("model.embed_tokens", "model.layers.0.")) for n in changed)
    assert accuracy(model) >= 0.9


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"head_dim": 64, "num_attention_heads": 6, "num_key_value_heads": 6}, "head size 64"),
        ({"hidden_size": 256}, "hidden size 256"),
        ({"tie_word_embeddings": True}, "tied embeddings"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}, "RoPE base"),
    ],
)
def test_a_model_it_does_not_fit_is_refused_with_the_reason(overrides, says):
    from finetune.copy_circuit import install

    with pytest.raises(ValueError, match=says):
        install(small_model(**overrides))


def test_a_quote_starting_without_the_space_finds_the_word_inside_a_sentence():
    """Answers start with "If", sources say " If" mid-sentence: with the vocabulary given, the
    two match, so the token after the first one is copied from the source."""
    from finetune.copy_circuit import install, match_groups

    tokens = [f"w{i}" for i in range(256)] + [f"Ġw{i}" for i in range(256)]
    groups = match_groups(tokens)
    assert groups[7] == groups[256 + 7] and groups[7] != groups[8]
    rng = random.Random(5)
    context = [256 + rng.randrange(256) for _ in range(300)]  # every word after a space
    start = 150
    ids = [*context, 1, context[start] - 256]  # the quote's first word, without its space
    model = small_model()
    install(model, seed=0, tokens=tokens)
    with torch.no_grad():
        guess = model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()
    assert int(guess) == context[start + 1]
    unmatched = small_model()
    install(unmatched, seed=0)  # without the vocabulary "w7" never matches "Ġw7"
    with torch.no_grad():
        guess = unmatched(input_ids=torch.tensor([ids])).logits[0, -1].argmax()
    assert int(guess) != context[start + 1]


def test_quotes_come_from_the_sources_not_the_prompt_around_them():
    """Two words seen twice before the sources' opening marker and twice after the closing one
    (the system prompt, the question) are followed there by other words than inside the
    sources: with the markers in the vocabulary the copy follows the sources; without them it
    follows the majority outside."""
    from finetune.copy_circuit import install, source_markers

    tokens = [f"w{i}" for i in range(510)] + ["<<<", ">>>"]
    opening, closing = 510, 511
    rng = random.Random(11)

    def words(n):
        return [rng.randrange(4, 500) for _ in range(n)]

    u, v, outside, inside = 500, 501, 502, 503
    ids = [*words(80), u, v, outside, *words(80), u, v, outside, *words(40), opening]
    ids += [*words(150), u, v, inside, *words(150), closing]
    ids += [*words(40), u, v, outside, *words(20), u, v, outside, *words(10), u, v]
    shape = {"num_attention_heads": 3, "num_key_value_heads": 3}
    model = small_model(**shape)
    assert source_markers(model.config, tokens) == (opening, closing)
    install(model, seed=0, tokens=tokens)
    unmasked = small_model(**shape)
    install(unmasked, seed=0, tokens=[*tokens[:510], "x", "y"])
    with torch.no_grad():
        assert int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()) == inside
        assert int(unmasked(input_ids=torch.tensor([ids])).logits[0, -1].argmax()) == outside
    assert source_markers(small_model().config, tokens) is None  # two heads: no room for it


def grounded_prompt(rng, bodies: list[list[int]], names: dict[str, int]) -> list[int]:
    """Random words shaped like the gateway's grounded prompt: system text, "<<<SOURCES",
    then per source "[n] title (file)" and its text, "SOURCES>>>", the question, and the
    chat template's "assistant" and newline."""

    def words(n):
        return [rng.randrange(10, 500) for _ in range(n)]

    nl = names["Ċ"]
    ids = [*words(60), nl, names["<<<"], names["SOURCES"], nl]
    for rank, body in enumerate(bodies, start=1):
        ids += [names["["], 500 + rank, names["]"], *words(6), names[")"], nl, *body, nl, nl]
    ids += [names["SOURCES"], names[">>>"], *words(12), names["assistant"], nl]
    return ids


def test_an_answer_starts_on_the_top_sources_text_and_quotes_it():
    """With the chat template's and the prompt's tokens in the vocabulary, the circuit alone
    (before any training) starts the answer on the first token of source [1]'s text, not of
    the later sources or the prompt around them, and quotes on from there; without them the
    answer's first token is anyone's guess."""
    from finetune.copy_circuit import install, lead_tokens

    special = ["Ċ", "<<<", ">>>", "SOURCES", "[", "]", ")", "assistant"]
    tokens = [f"w{i}" for i in range(512 - len(special))] + special
    names = {t: tokens.index(t) for t in special}
    shape = {"num_attention_heads": 3, "num_key_value_heads": 3}
    model = small_model(**shape)
    assert lead_tokens(model.config, tokens) == (names["assistant"], names[")"])
    install(model, seed=0, tokens=tokens)
    started = quoted = total = 0
    for seed in range(6):
        rng = random.Random(seed)
        bodies = [[rng.randrange(10, 500) for _ in range(rng.randrange(40, 90))] for _ in range(4)]
        bodies[2][0] = bodies[0][0]  # a later source starting with the same word
        ids = grounded_prompt(rng, bodies, names)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)
        answer = out[0, len(ids) :].tolist()
        started += answer[0] == bodies[0][0]
        quoted += sum(a == b for a, b in zip(answer, bodies[0][:20], strict=True))
        total += 20
    assert started == 6
    assert quoted / total >= 0.95
    plain = small_model(**shape)
    without = [t if t != "assistant" else "helper" for t in tokens]
    install(plain, seed=0, tokens=without)
    assert lead_tokens(plain.config, without) is None
    rng = random.Random(0)
    bodies = [[rng.randrange(10, 500) for _ in range(60)] for _ in range(4)]
    ids = grounded_prompt(rng, bodies, names)
    with torch.no_grad():
        first = int(plain(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    assert first != bodies[0][0]
