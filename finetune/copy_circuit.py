"""A copying circuit written into the demo model's weights instead of trained.

Quoting a source means predicting, at each step, the token that followed the current
two tokens where they occur in the prompt: induction heads. Trained from scratch they
appear only after far more compute than two CPU cores give in an hour (bench/
demo_copy_probe.py), so the demo model gets them by construction, as compiled
transformers (Tracr, RASP) do, and training learns the rest: which source, where to start,
when to stop.

The residual stream is laid out in registers (each ``CODE`` wide):

- ``TOK``: the current token's code (the embedding; every token has a random unit code, each
  half of it unit length too, so a dot product of two codes is 1 exactly when they match);
- ``ONE``: a constant 1 (the embedding), which the positional heads use as their query/key;
- ``MATCH``: the code the heads match tokens by (the embedding): the same for tokens that
  differ only by a leading space (" If" and "If"), so a quote that starts an answer finds the
  same word in the middle of a source sentence;
- ``PREV1``, ``PREV2``: the match codes of the tokens one and two places back, written by two
  heads of layer 0 that attend by position only (RoPE with phases that peak at distance 1 or
  2);
- ``COPY``: written by an induction head in layer 1: it attends from position i to the
  position p whose two previous tokens match tokens i and i-1 (``PREV1``/``PREV2`` at p
  against ``MATCH``/``PREV1`` at i, on the RoPE pairs slow enough to be position-free), and
  copies the exact code of token p. The output head reads ``COPY`` as a logit for that token.

With a third head and a vocabulary that has the prompt's source markers (``<<<`` opens the
numbered sources, ``>>>`` closes them), quotes come from the sources only: the markers carry
a flag and a sign in the embedding (``MARKER``, ``MARKER_SIGN``); layer 0's third head
attends to the markers seen so far and writes the mean of their signs, ``IN_SOURCES`` (+ between
the markers, 0 before, and after the closing one), and the induction head prefers keys there
by ``SOURCE_LOGIT``: a word of the answer is looked up in the sources, not in the system
prompt, the question or the answer itself.

Where the vocabulary also has the chat template's ``assistant``, ``)``, ``SOURCES`` and ``[``,
the answer starts where the top source's text does:

- the induction head reads the "assistant" before the answer's opening newline as if it were
  the ``)`` that ends a source's header line ("[1] Title > Section (file.md)"), so the
  answer's first token is looked up as the token after ``)`` and a newline: the first token
  of a source's text;
- ``[`` (which opens each header) and ``SOURCES`` are markers too, of sign 0: the mean sign
  inside source n is 1/(n + 2), so the preference for keys inside the sources falls from
  source [1] to the later ones (``SOURCE_ORDER_LOGIT`` in [1], three quarters of it in [2],
  three fifths in [3]); markers themselves are never copied (``MARKER_PENALTY``: the
  "<<<SOURCES" before [1] has a higher mean sign and would start every answer);
- a ramp on a RoPE pair whose half period spans the context (``EARLIEST_LOGIT``) prefers the
  earliest of equal matches: the first sentence before the next.

So the circuit alone quotes the opening of the top source; training teaches when to stop,
cite and decline.

Layer 0, the embedding, the induction head and layer 1's input norm are fixed (``install``
lists them with their values; ``freeze`` stops the gradients of whole tensors and returns the
partly fixed ones, which training restores after each step); the other heads of
layer 1, all MLPs after layer 0, the later layers, the final norm and the output head train.
Needs head size 128 (64 position-free dimensions for matching), a RoPE base of about 1e9 and
untied input and output embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CODE = 64
TOK = slice(0, CODE)
ONE = CODE
PREV1 = slice(2 * CODE, 3 * CODE)
PREV2 = slice(3 * CODE, 4 * CODE)
COPY = slice(4 * CODE, 5 * CODE)
MATCH = slice(5 * CODE, 6 * CODE)
IN_SOURCES, MARKER, MARKER_SIGN = ONE + 1, ONE + 2, ONE + 3  # spare dimensions beside ONE
SOURCE_MARKERS = ("<<<", ">>>")  # as grounding.yaml's "<<<SOURCES" / "SOURCES>>>" tokenize
MIN_HIDDEN = 6 * CODE
HEAD_DIM = 128
ROPE_THETA = 1e9
POSITION_PAIRS = 10  # the fastest RoPE pairs: the positional heads' peak
POSITION_MARGIN = 20.0  # attention logits between the right position and its neighbours
MATCH_LOGIT = 20.0  # attention logit of a current-token match; the previous token adds 0.6 of it
PREVIOUS_WEIGHT = 0.6
COPY_GAIN = 3.0  # output-head weight on COPY
FLAG = 0.25  # the markers' flag and sign in the embedding (small: RMSNorm scales barely move)
INSIDE = 0.3  # IN_SOURCES between the markers
MARKER_LOGIT = 20.0  # attention logit of a marker for layer 0's third head (others: 0)
SOURCE_LOGIT = 20.0  # what a key inside the sources adds to the induction head's score
LEAD = ("assistant", ")")  # the answer's opening reads like the end of a source's header
EARLIEST_PAIR = 20  # a RoPE pair whose half period (2,040 tokens at base 1e9) spans the context
NEUTRAL_MARKERS = ("SOURCES", "[")  # markers of sign 0; "[" opens "[n] Title (file)"
SOURCE_ORDER_LOGIT = 20.0  # the sources' preference in source [1] with header markers
MARKER_PENALTY = 40.0  # taken from the induction head's score of a key that is a marker
EARLIEST_LOGIT = 16.0  # the induction head's score of a key d tokens back: -16 cos(d f)


@dataclass
class Frozen:
    """A parameter's fixed part: ``mask`` (same shape, True where fixed) and its values."""

    param: object
    mask: object
    values: object

    def restore(self) -> None:
        self.param.data[self.mask] = self.values


def check_shape(config) -> None:
    """The shape the circuit needs; a ValueError says what is wrong."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    problems = []
    if head_dim != HEAD_DIM:
        problems.append(f"head size {head_dim} (needs {HEAD_DIM})")
    if config.hidden_size < MIN_HIDDEN:
        problems.append(f"hidden size {config.hidden_size} (needs {MIN_HIDDEN} or more)")
    if config.num_attention_heads < 2 or config.num_hidden_layers < 2:
        problems.append("fewer than 2 heads or layers")
    if config.num_key_value_heads != config.num_attention_heads:
        problems.append("grouped key/value heads")
    if config.tie_word_embeddings:
        problems.append("tied embeddings")
    if theta is None or theta < ROPE_THETA / 10:
        problems.append(f"RoPE base {theta} (needs about {ROPE_THETA:g})")
    if problems:
        raise ValueError("the copying circuit does not fit this model: " + ", ".join(problems))


def token_codes(vocab_size: int, seed: int):
    """A random code per token, each half a unit vector: dot products are 1 on a match and
    about 0 +- 0.09 otherwise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    halves = torch.randn(vocab_size, 2, CODE // 2, generator=g)
    halves = halves / halves.norm(dim=-1, keepdim=True)
    return halves.reshape(vocab_size, CODE) / math.sqrt(2)


def match_groups(tokens: list[str]) -> list[int]:
    """Per token id, a group number shared by tokens equal but for a leading space (the
    byte-level BPE's "Ġ")."""
    groups: dict[str, int] = {}
    return [groups.setdefault(t.removeprefix("Ġ") or t, len(groups)) for t in tokens]


def source_markers(config, tokens: list[str] | None) -> tuple[int, int] | None:
    """Ids of the opening and closing source markers when the circuit can keep quotes inside
    them (a third head and both markers in the vocabulary), else None."""
    if tokens is None or config.num_attention_heads < 3:
        return None
    ids = [tokens.index(m) if m in tokens else -1 for m in SOURCE_MARKERS]
    return None if -1 in ids else (ids[0], ids[1])


def lead_tokens(config, tokens: list[str] | None) -> tuple[int, int] | None:
    """Ids of ``LEAD`` when the circuit can start answers on the top source's first token
    (the source markers, ``NEUTRAL_MARKERS`` and ``LEAD`` all in the vocabulary), else None."""
    if source_markers(config, tokens) is None:
        return None
    if any(t not in tokens for t in (*LEAD, *NEUTRAL_MARKERS)):
        return None
    return tokens.index(LEAD[0]), tokens.index(LEAD[1])


def install(model, seed: int = 0, tokens: list[str] | None = None) -> list[Frozen]:
    """Write the circuit into ``model`` (a transformers LlamaForCausalLM); returns the parts
    training must keep fixed. ``tokens`` (the vocabulary, by id) lets tokens that differ only
    by a leading space match each other, and, where it has the source markers, keeps quotes
    inside the sources (``source_markers``); without it every token matches only itself."""
    import torch

    config = model.config
    check_shape(config)
    codes = token_codes(config.vocab_size, seed)
    match = _match_codes(config.vocab_size, seed, tokens)
    inner = model.model
    with torch.no_grad():
        markers = source_markers(config, tokens)
        lead = lead_tokens(config, tokens)
        embed = inner.embed_tokens.weight
        _write_embedding(embed, codes, match, tokens, markers, lead)
        frozen = [_fixed(embed)]
        frozen += _write_layer0(inner.layers[0], config, markers)
        frozen += _write_induction_head(inner.layers[1], config, match, markers, lead)
        # The output head reads COPY as the copied token's logit (it trains from here).
        model.lm_head.weight[:, COPY] = COPY_GAIN * codes
    return frozen


def _match_codes(vocab_size: int, seed: int, tokens: list[str] | None):
    """The code each token is matched by: shared by tokens equal but for a leading space
    when the vocabulary is given, else a code of its own per token."""
    import torch

    if tokens is None:
        return token_codes(vocab_size, seed + 1)
    groups = match_groups(list(tokens))[:vocab_size]
    groups += range(len(tokens), len(tokens) + vocab_size - len(groups))  # unnamed ids
    return token_codes(max(groups) + 1, seed + 1)[torch.tensor(groups)]


def _frequencies(config):
    """The RoPE frequency of each of the head's pairs, in float64."""
    import torch

    theta = (config.rope_parameters or {})["rope_theta"]
    return theta ** (-torch.arange(HEAD_DIM // 2, dtype=torch.float64) * 2 / HEAD_DIM)


def _fixed(param, rows=slice(None), cols=slice(None)) -> Frozen:
    """``param``'s ``rows`` (and, for a matrix, ``cols``) as they are now, to keep fixed."""
    import torch

    mask = torch.zeros_like(param, dtype=torch.bool)
    if param.dim() == 1:
        mask[rows] = True
    else:
        mask[rows, cols] = True
    return Frozen(param, mask, param.data[mask].clone())


def _write_embedding(embed, codes, match, tokens, markers, lead) -> None:
    """The embedding: ``TOK``, ``MATCH`` and ``ONE``; the markers' flag and sign."""
    embed.zero_()
    embed[:, TOK] = codes
    embed[:, MATCH] = match
    embed[:, ONE] = 1.0
    if markers:
        for token, sign in zip(markers, (1.0, -1.0), strict=True):
            embed[token, MARKER] = FLAG
            embed[token, MARKER_SIGN] = sign * FLAG
    for name in NEUTRAL_MARKERS if lead else ():
        embed[tokens.index(name), MARKER] = FLAG


def _write_layer0(layer, config, markers) -> list[Frozen]:
    """Layer 0, all fixed: the heads that write ``PREV1`` and ``PREV2`` and, with the
    markers, the one that writes ``IN_SOURCES``; no MLP."""
    # The input is [code, 1, match code], norm sqrt(3), scaled by RMSNorm to sqrt(hidden).
    attn, scale = layer.self_attn, math.sqrt(config.hidden_size / 3)
    for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
              attn.o_proj.weight, layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight,
              layer.mlp.down_proj.weight):  # fmt: skip
        w.zero_()
    layer.input_layernorm.weight.fill_(1.0)
    layer.post_attention_layernorm.weight.fill_(1.0)
    _write_previous_heads(attn, _frequencies(config), scale)
    if markers:  # head 2: the mean sign of the markers so far, on a position-free pair
        q = 2 * HEAD_DIM + HEAD_DIM // 2 - 1
        w = math.sqrt(MARKER_LOGIT * math.sqrt(HEAD_DIM) / (FLAG * scale**2))
        attn.q_proj.weight[q, ONE] = w
        attn.k_proj.weight[q, MARKER] = w
        attn.v_proj.weight[2 * HEAD_DIM, MARKER_SIGN] = 1.0
        attn.o_proj.weight[IN_SOURCES, 2 * HEAD_DIM] = INSIDE / (FLAG * scale)
    return [_fixed(p) for p in layer.parameters()]


def _write_previous_heads(attn, freq, scale: float) -> None:
    """Heads 0 and 1 of layer 0: the match code of the token one and two places back."""
    import torch

    # Score(d) = sum_j s^2 cos((d - shift) freq_j) / sqrt(128): the peak at d = shift is
    # about POSITION_MARGIN above its neighbours (sum_j (1 - cos freq_j) ~= 1).
    pairs = HEAD_DIM // 2
    fast = freq[:POSITION_PAIRS]
    gap = float((1 - torch.cos(fast)).sum())
    s = math.sqrt(POSITION_MARGIN * math.sqrt(HEAD_DIM) / gap)
    for head, (shift, out) in enumerate(((1, PREV1), (2, PREV2))):
        q = slice(head * HEAD_DIM, head * HEAD_DIM + HEAD_DIM)
        j = torch.arange(POSITION_PAIRS)
        attn.q_proj.weight[q.start + j, ONE] = s / scale
        attn.k_proj.weight[q.start + j, ONE] = (s * torch.cos(shift * fast) / scale).float()
        attn.k_proj.weight[q.start + pairs + j, ONE] = (s * torch.sin(shift * fast) / scale).float()
        attn.v_proj.weight[q.start : q.start + CODE, MATCH] = torch.eye(CODE)
        attn.o_proj.weight[out, q.start : q.start + CODE] = torch.eye(CODE) / scale


def _write_induction_head(layer, config, match, markers, lead) -> list[Frozen]:
    """Layer 1's input norm and head 0: attends to where the two previous tokens match the
    current two (with the sources' and the earliest match's preferences) and copies the
    token there into ``COPY``."""
    import torch

    # The input is [code, 1, prev1, prev2, match code], norm sqrt(5).
    attn, scale = layer.self_attn, math.sqrt(config.hidden_size / 5)
    layer.input_layernorm.weight.fill_(1.0)
    frozen = [_fixed(layer.input_layernorm.weight)]
    head = slice(0, HEAD_DIM)
    for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight):
        w[head] = 0.0
    attn.o_proj.weight[:, head] = 0.0
    _write_matching(attn, scale, match, lead)
    _write_key_preferences(attn, scale, markers, lead)
    attn.v_proj.weight[0:CODE, TOK] = torch.eye(CODE)
    attn.o_proj.weight[COPY, 0:CODE] = torch.eye(CODE) / scale
    for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight):
        frozen.append(_fixed(w, rows=head))
    frozen.append(_fixed(attn.o_proj.weight, cols=head))
    return frozen


def _write_matching(attn, scale: float, match, lead) -> None:
    """The induction head's match of the current and previous tokens (``MATCH``/``PREV1``
    at the query against ``PREV1``/``PREV2`` at the key)."""
    import torch

    # Position-free RoPE pairs j in [32, 64) (dims j and j + 64): the first half match the
    # current token, the second the previous one. Each half code has norm^2 1/2.
    pairs, half = HEAD_DIM // 2, CODE // 2
    slow = list(range(pairs // 2, pairs))
    dims = slow + [j + pairs for j in slow]
    current, previous = dims[0::2][:half], dims[1::2][:half]
    a = math.sqrt(MATCH_LOGIT * math.sqrt(HEAD_DIM) * 2)
    b = a * math.sqrt(PREVIOUS_WEIGHT)
    # The previous token is read through ``as_previous``: the identity, or one that also
    # turns "assistant" into ")" (the answer's start is looked up as a source's).
    as_previous = torch.eye(half, dtype=torch.float64)
    if lead:
        said, header_end = (match[t, half:].double() for t in lead)
        as_previous += torch.outer(header_end - said, said) / said.dot(said)
    for k in range(half):
        attn.q_proj.weight[current[k], MATCH.start + k] = a / scale
        attn.k_proj.weight[current[k], PREV1.start + k] = a / scale
        attn.q_proj.weight[previous[k], PREV1.start + half : PREV1.start + CODE] = (
            b / scale * as_previous[k]
        ).float()
        attn.k_proj.weight[previous[k], PREV2.start + half + k] = b / scale


def _write_key_preferences(attn, scale: float, markers, lead) -> None:
    """What the induction head adds to a key's score: the earliest match first, keys
    inside the sources (the top source most), never a marker."""
    pairs = HEAD_DIM // 2
    if lead:  # -EARLIEST_LOGIT cos(d f): grows with the distance d over the whole context
        w = math.sqrt(EARLIEST_LOGIT * math.sqrt(HEAD_DIM)) / scale
        attn.q_proj.weight[EARLIEST_PAIR, ONE] = w
        attn.k_proj.weight[EARLIEST_PAIR, ONE] = -w
    if markers:  # keys inside the sources, on the slowest of the other pairs
        bonus = 3 * SOURCE_ORDER_LOGIT if lead else SOURCE_LOGIT  # at a mean sign of 1
        w = math.sqrt(bonus * math.sqrt(HEAD_DIM) / (INSIDE * scale**2))
        attn.q_proj.weight[pairs // 2 - 1, ONE] = w
        attn.k_proj.weight[pairs // 2 - 1, IN_SOURCES] = w
    if lead:  # a marker is never copied, on the next slowest pair
        w = math.sqrt(MARKER_PENALTY * math.sqrt(HEAD_DIM) / (FLAG * scale**2))
        attn.q_proj.weight[pairs // 2 - 2, ONE] = w
        attn.k_proj.weight[pairs // 2 - 2, MARKER] = -w


def freeze(frozen: list[Frozen]) -> list[Frozen]:
    """Parameters wholly fixed stop taking gradients (the optimiser skips them); returns the
    partly fixed ones, whose fixed values training must put back after each step."""
    partly = []
    for f in frozen:
        if bool(f.mask.all()):
            f.param.requires_grad_(False)
        else:
            partly.append(f)
    return partly
