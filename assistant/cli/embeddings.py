"""``assistant finetune embeddings``: adapt the embedding model to the docs, from the
transcripts' questions and, with --questions-url, questions a served model writes for each
passage; kept only where it ranks held-out questions better (``retrieval.adapt``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from assistant.cli.common import ConfigOpt, JsonOpt, echo_err, emit, load, progress_bar
from assistant.errors import UserError
from assistant.evaluation.harness import asker, describe
from assistant.knowledge.factories import make_embedder
from finetune.pii import Scrubber
from finetune.transcripts import first_exchanges
from retrieval import adapt, question_writer

TranscriptsOpt = typer.Option(
    Path("data/transcripts"),
    help="Help-desk transcripts: employee questions paired with the doc passage the agent's "
    "answer matches.",
)
EvalOpt = typer.Option(
    None,
    "--eval",
    help='Also judge on these questions (JSONL {"question", "gold": [file names]}), as '
    "eval-retrieval does.",
)
MinScoreOpt = typer.Option(
    0.5, help="Least cosine between an agent's answer and a passage for a training pair."
)
EvalFractionOpt = typer.Option(
    0.3, min=0.05, max=0.9, help="Share of conversations held out to judge the new model."
)
ForceOpt = typer.Option(
    False, "--force", help="Write the new model even where it does not win (experiments)."
)
QuestionsUrlOpt = typer.Option(
    None,
    help="OpenAI-compatible server of an instruct model (e.g. a running `assistant serve`) "
    "that writes, for each passage, the questions an employee would ask: training pairs "
    "where no transcript covers a document (GPL-style).",
)
QuestionsModelOpt = typer.Option(None, help="The question writer's model name at --questions-url.")
QuestionsKeyOpt = typer.Option(
    None, envvar="ASSISTANT_QUESTIONS_API_KEY", help="Key for --questions-url."
)
PerPassageOpt = typer.Option(2, min=1, max=10, help="Questions asked per passage.")
QuestionsLimitOpt = typer.Option(
    None, min=1, help="Passages to write questions for (a seeded sample) [all]."
)
QuestionsCacheOpt = typer.Option(
    None,
    help="JSONL file that keeps every reply of the question writer, so an interrupted run "
    "resumes and a rerun asks nothing again [OUTPUT.questions.jsonl].",
)


def embeddings_command(
    docs: Path = typer.Option(..., help="Docs folder: the passages the model must find."),
    output: Path = typer.Option(..., help="Folder for the adapted sentence-transformers model."),
    transcripts: Path = TranscriptsOpt,
    eval_questions: Path | None = EvalOpt,
    base: str | None = typer.Option(None, help="Model to adapt [the embedding_model setting]."),
    min_score: float = MinScoreOpt,
    epochs: float = typer.Option(1.0, min=0.01, help="Passes over the pairs."),
    learning_rate: float = typer.Option(2e-5, help="Peak learning rate."),
    batch_size: int = typer.Option(16, min=2, help="Pairs per step (in-batch negatives)."),
    eval_fraction: float = EvalFractionOpt,
    force: bool = ForceOpt,
    questions_url: str | None = QuestionsUrlOpt,
    questions_model: str | None = QuestionsModelOpt,
    questions_api_key: str | None = QuestionsKeyOpt,
    per_passage: int = PerPassageOpt,
    questions_limit: int | None = QuestionsLimitOpt,
    questions_cache: Path | None = QuestionsCacheOpt,
    as_json: bool = JsonOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Adapt the embedding model to the company's docs and questions (experimental).

    Pairs each employee question in the transcripts with the doc passage that the agent's
    answer matches best, adds a hard negative (another document's passage the current model
    ranks high), and trains with MultipleNegativesRankingLoss. The held-out conversations'
    questions (and --eval questions) are searched over all passages before and after: the
    new model is written to --output only if its MRR is higher and its recall@5 no lower;
    otherwise nothing is written and the report says so. Use it with
    `assistant index --full --embedding-model OUTPUT` (a new model means a full reindex).

    With --questions-url, a served instruct model also writes questions for the passages
    (kept in --questions-cache); they are held out by document like the conversations.
    On a 2-core CPU the 0.5B model writes about one passage's questions every few seconds:
    use --questions-limit to try it on a sample first.
    """
    settings = load(config, embedding_model=base)
    _check_inputs(docs, output, transcripts, questions_url, questions_model)
    log = (lambda line: None) if as_json else echo_err
    generate = None
    if questions_url:
        cache = questions_cache or output.with_name(output.name + ".questions.jsonl")
        generate = _question_writer(
            questions_url, questions_model, questions_api_key, per_passage, questions_limit,
            cache, shown=not as_json, log=log,
        )  # fmt: skip
    embedder = make_embedder(settings)
    conversations = first_exchanges(transcripts, Scrubber().scrub) if transcripts.exists() else []
    if not transcripts.exists():
        log(f"no transcripts at {transcripts}: training on the written questions only")
    report = adapt.adapt_embedder(
        embedder,
        settings.embedding_model,
        docs,
        conversations,
        output,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap_tokens,
        chunk_headers=settings.chunk_headers,
        eval_questions=eval_questions,
        min_score=min_score,
        eval_fraction=eval_fraction,
        config=adapt.TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size),
        force=force,
        progress=not as_json,
        log=log,
        generate=generate,
    )
    if report.kept:
        log(f"kept the adapted model in {output}: {report.reason}")
        log(f"use it: assistant index --full --embedding-model {output}")
    else:
        log(f"kept {embedder.name}; nothing written: {report.reason}")
    emit(report.summary(), as_json)


def _check_inputs(docs, output, transcripts, questions_url, questions_model) -> None:
    if bool(questions_url) != bool(questions_model):
        raise UserError("--questions-url and --questions-model go together")
    if not docs.exists():
        raise UserError(f"--docs '{docs}' does not exist")
    if not transcripts.exists() and not questions_url:
        raise UserError(f"--transcripts '{transcripts}' does not exist")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output '{output}' is not empty")


def _question_writer(url, model, api_key, per_passage, limit, cache, *, shown, log):
    """``generate(passages) -> [(index, question)]`` asking ``model`` at ``url`` (checked
    to answer first), with a progress bar; client errors become one sentence."""
    _reachable(url, api_key)
    client = asker(url, model, api_key, 300.0, gateway=True, max_tokens=48 * per_passage,
                   temperature=0.7)  # fmt: skip

    def ask(prompt: str) -> str:
        try:
            return client(prompt)
        except Exception as exc:  # the client's errors: connection, HTTP status, timeout
            raise UserError(
                f"cannot ask {model} at {url} (--questions-url): {describe(exc)}"
            ) from None

    def generate(passages: list[str]) -> list[tuple[int, str]]:
        log(f"asking {model} at {url} for {per_passage} questions per passage; replies kept "
            f"in {cache}")  # fmt: skip
        with progress_bar(shown, "writing questions") as tick:
            return question_writer.write_questions(
                passages, ask, per_passage=per_passage, limit=limit, cache=cache, progress=tick
            )

    return generate


def _reachable(url: str, api_key: str | None) -> None:
    """Fail before the long embedding work when nothing answers at ``url``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        httpx.get(url.rstrip("/") + "/v1/models", headers=headers, timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise UserError(
            f"no model server answers at {url} (--questions-url): {describe(exc)}"
        ) from None
