"""The Ask tab's chat: ``Chat`` (ask, retry, clear, rate), used by ``PageController``.

Answers stream through the gateway's OpenAI-compatible ``/v1/chat/completions`` as the
person using the page (their sign-in session, else the page's key); each answer is followed
by its sources and, when the docs did not cover the question, a notice. Ratings go to
``POST /v1/feedback``. The "Open a ticket" action under the answers is ``ui.tickets``.
"""

# Gradio reads the `gr.Request`, `gr.LikeData` annotations of the handlers at runtime to
# know which argument gets what: no postponed ones, hence gradio imported at the top (the
# CLI never imports ``ui``).
import gradio as gr

from ui.client import Client, PageError, session_of
from ui.render import (
    LINK_BASE,
    NOT_COVERED,
    NOT_COVERED_TITLE,
    history_for_api,
    readable,
    sources_box,
    text_of,
)


class Chat:
    """The chat, over ``client``: ``model`` the default model, answers of at most
    ``max_tokens``, source links under ``link_base``."""

    def __init__(
        self, client: Client, model: str, *, max_tokens: int = 256, link_base: str = LINK_BASE
    ) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.link_base = link_base

    def ask(
        self, question: str, history: list, model_name: str, answers: dict, request: gr.Request
    ):
        """Stream the answer to ``question``; outputs: chat, rating map, question box."""
        question = (question or "").strip()
        if not question:
            yield history, answers, gr.update()
            return
        import openai

        client = self.client
        history = [*history, {"role": "user", "content": question}]
        messages = history_for_api(history)
        history.append({"role": "assistant", "content": ""})
        yield history, answers, ""
        answer, sources, grounded, completion_id = "", [], True, None
        try:
            stream = client.openai.chat.completions.create(
                model=model_name or self.model,
                messages=messages,
                stream=True,
                max_tokens=self.max_tokens,
                extra_headers=client.openai_headers(session_of(request)),
            )
            for chunk in stream:
                completion_id = completion_id or chunk.id
                extra = chunk.model_extra or {}
                if "sources" in extra:
                    sources, grounded = extra["sources"] or [], bool(extra.get("grounded"))
                if chunk.choices and chunk.choices[0].delta.content:
                    answer += chunk.choices[0].delta.content
                    history[-1] = {"role": "assistant", "content": answer}
                    yield history, answers, gr.update()
        except (openai.APIStatusError, openai.APIConnectionError) as exc:  # a sentence, no trace
            if isinstance(exc, openai.APIStatusError):
                text = readable(exc)
            else:
                text = "The assistant cannot be reached right now. Please try again in a minute."
            history[-1] = {"role": "assistant", "content": text}
            yield history, answers, gr.update()
            return
        if not answer:
            answer = "(The model returned an empty answer. Try rephrasing the question.)"
            history[-1] = {"role": "assistant", "content": answer}
        answers = {
            **answers,
            # what a rating names: the server keeps the question and answer itself
            str(len(history) - 1): {"completion_id": completion_id},
        }
        if sources:
            history.append(sources_box(sources, self.link_base))
        if not grounded:
            history.append(
                {
                    "role": "assistant",
                    "content": NOT_COVERED,
                    "metadata": {"title": NOT_COVERED_TITLE, "status": "done"},
                }
            )
        yield history, answers, gr.update()

    def retry(self, history: list, model_name: str, answers: dict, request: gr.Request):
        """Ask the last question again, in place of its answer."""
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            yield history, answers, gr.update()
            return
        question = text_of(history[last_user]["content"])
        yield from self.ask(question, history[:last_user], model_name, answers, request)

    def clear(self):
        """An empty chat, no answers to rate, no feedback note."""
        return [], {}, ""

    def rate(self, data: gr.LikeData, answers: dict, correction: str, request: gr.Request):
        """Save a thumbs up or down (with the correction, if any); the feedback note."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        # the thumbs sit under a group of messages (answer + its sources box): rate the answer
        earlier = [int(k) for k in answers if int(k) <= index]
        if not earlier:
            return "Only answers can be rated."
        record = answers[str(max(earlier))]
        liked = data.liked is True or data.liked == "Like"
        try:
            self.client.request(
                "POST",
                "/feedback",
                session=session_of(request),
                json={
                    "completion_id": record["completion_id"],
                    "rating": "like" if liked else "dislike",
                    "correction": (correction or None) if not liked else None,
                },
            )
        except PageError as exc:
            return f"Your rating could not be saved: {exc}"
        if liked:
            return "Thanks, your rating was saved."
        if correction:
            return "Thanks, your rating and correction were saved."
        return (
            "Thanks, your rating was saved. If you know the right answer, write it in the "
            "correction box and press the thumbs down again."
        )
