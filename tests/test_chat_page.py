"""The chat page's helpers; what the page does is test_page_controller's, the page in a
browser test_page_browser's."""

import httpx
import openai

from ui.render import readable, text_of


def test_text_of_handles_gradio_content_shapes():
    assert text_of("plain") == "plain"
    assert text_of([{"type": "text", "text": "a"}, "b"]) == "a b"
    assert text_of(None) == ""


def _status_error(status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    response = httpx.Response(
        status, request=request, json={"error": {"message": message, "type": "t", "code": None}}
    )
    return openai.APIStatusError(message, response=response, body=None)


def test_errors_become_readable_sentences():
    assert "starting up" in readable(_status_error(503, "engine down"))
    text = readable(_status_error(400, "'messages': too long"))
    assert text.startswith("Sorry") and "too long" in text and "{" not in text


def test_sources_markdown_cites_title_section_page_snippet_and_link():
    from ui.render import sources_markdown

    text = sources_markdown(
        [
            {"rank": 1, "source": "hr/travel policy.pdf", "title": "Travel", "section": "",
             "page": 2, "score": 0.61, "snippet": "## Abroad Take the *laptop* <b>",
             "url": "/v1/sources/hr/travel%20policy.pdf?exp=9&sig=ab"},
            {"rank": 2, "source": "vpn.md", "title": "VPN", "snippet": "x"},
        ],
        "/v1/sources",
    )  # fmt: skip
    assert "[1] [Travel](/v1/sources/hr/travel%20policy.pdf?exp=9&sig=ab)" in text
    assert "[2] [VPN](/v1/sources/vpn.md)" in text  # a server that signs no links
    assert ", page 2" in text and "score 0.61" in text
    assert "##" not in text and "\\*laptop\\*" in text and "\\<b\\>" in text


def test_history_for_the_api_leaves_out_source_boxes():
    from ui.render import history_for_api

    history = [
        {"role": "user", "content": "vpn?"},
        {"role": "assistant", "content": "Reconnect [1]."},
        {"role": "assistant", "content": "[1] ...", "metadata": {"title": "Sources (1)"}},
        {"role": "user", "content": [{"type": "text", "text": "and on Mac?"}]},
    ]
    assert history_for_api(history) == [
        {"role": "user", "content": "vpn?"},
        {"role": "assistant", "content": "Reconnect [1]."},
        {"role": "user", "content": "and on Mac?"},
    ]


def test_a_reopened_conversation_shows_answers_sources_and_stays_rateable():
    from ui.render import reopened

    conversation = {
        "id": "conv-1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "VPN TP-204?"},
            {"role": "assistant", "content": "Renew the certificate [1]."},
            {"role": "user", "content": "and on Mac?"},
            {"role": "assistant", "content": "Same on Mac."},
        ],
        "answers": [
            {"completion_id": "c1", "answer": "Renew the certificate [1].",
             "sources": [{"rank": 1, "source": "vpn.md", "title": "VPN", "snippet": "s",
                          "url": "/v1/sources/vpn.md?exp=1&sig=x"}]},
            {"completion_id": "c2", "answer": "Same on Mac.", "sources": []},
        ],
    }  # fmt: skip
    history, ratings = reopened(conversation)
    assert [m["role"] for m in history] == ["user", "assistant", "assistant", "user", "assistant"]
    assert history[2]["metadata"]["title"] == "Sources (1)"
    assert "/v1/sources/vpn.md?exp=1&sig=x" in history[2]["content"]
    assert ratings == {"1": {"completion_id": "c1"}, "4": {"completion_id": "c2"}}


def test_the_page_acts_as_the_signed_in_person_not_as_a_key():
    from openai._base_client import FinalRequestOptions

    from ui.client import Client

    client = Client("http://127.0.0.1:9/v1", api_key=None)
    options = FinalRequestOptions(method="get", url="/models", headers=client.as_person("s1"))
    request = client.openai._build_request(options)
    assert request.headers["cookie"] == "hd_session=s1"
    assert "authorization" not in request.headers  # "Bearer unused" would be refused
    assert client.as_person(None) == {}


def test_with_neither_key_nor_session_the_page_sends_no_authorization():
    from openai._base_client import FinalRequestOptions

    from ui.client import Client

    def sent(client, session):
        options = FinalRequestOptions(
            method="get", url="/models", headers=client.openai_headers(session)
        )
        return client.openai._build_request(options).headers

    assert "authorization" not in sent(Client("http://127.0.0.1:9/v1", None), None)
    keyed = Client("http://127.0.0.1:9/v1", "svc")
    assert sent(keyed, None)["authorization"] == "Bearer svc"
    assert sent(keyed, "s1")["cookie"] == "hd_session=s1"
