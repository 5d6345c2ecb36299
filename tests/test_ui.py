"""The chat web page in a real browser: headless Chromium (Debian's) driven by Playwright, against
real servers and the starter model. Every test fails on a script error or a dialog in the page.

With OFFGRID_UI_SCREENSHOTS=1 the tests also write the screenshots of docs/ui.md into
docs/images/."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from support import ROOT
from support.http import get, request
from support.models import CHAT_MODEL
from support.multiuser import ADMIN_PASSWORD, password_of, start_multi_user

SHORT_ANSWER = 24  # tokens, where what the answer says does not matter
ANSWER_SECONDS = 90  # a whole answer of the starter model on a busy 2-core machine
LONG_TASK = "Write a very long story about a dragon who learns to bake bread, in many chapters."
SCREENSHOTS = ROOT / "docs" / "images" if os.environ.get("OFFGRID_UI_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """Opens a URL in a fresh browser context (no storage, no cookies); after the test, none of
    its pages may have had a script error or opened a dialog."""
    contexts, problems = [], []

    def open_(url: str, width: int = 1100, height: int = 760) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("dialog", lambda dialog: (problems.append(f"{dialog.type}: {dialog.message}"),
                                          dialog.dismiss()))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems


def chat_page(open_page, url: str, max_tokens: int = SHORT_ANSWER, **size) -> Page:
    page = open_page(url + "/", **size)
    expect(page.locator("#app")).to_be_visible()
    ready(page, max_tokens)
    return page


def ready(page: Page, max_tokens: int = SHORT_ANSWER) -> None:
    """Until the chat can be used; answers of at most `max_tokens`, to spare the CPU."""
    expect(page.locator("#model-picker option").first).to_be_attached()
    page.fill("#max-tokens", str(max_tokens))


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_answered(page: Page) -> None:
    """Until the last answer is finished (its note gives its tokens per second)."""
    expect(page.locator(".message.assistant").last.locator(".note")).to_contain_text(
        "tokens/s", timeout=ANSWER_SECONDS * 1000)


def wait_writing(page: Page) -> None:
    """Until an answer is being written and some of it shows."""
    page.locator(".message.writing .body > *").first.wait_for(timeout=ANSWER_SECONDS * 1000)


def current_session(page: Page) -> str:
    return page.evaluate("decodeURIComponent(location.hash.slice(1))")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=SCREENSHOTS / f"{name}.png")


# -- serving ----------------------------------------------------------------------------------

def test_a_browser_gets_the_page_and_other_clients_the_json_they_always_did(base_url):
    status, headers, page = get(base_url + "/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js">' in page
    assert get(base_url + "/ui/")[2] == page
    status, headers, body = get(base_url + "/")
    assert body["name"] == "OffGrid LLM" and headers["Vary"] == "Accept"
    for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        status, headers, _ = get(base_url + path)
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-cache"
        assert request("GET", base_url + path, headers={"If-None-Match": headers["ETag"]}
                       )[0] == 304
    for path in ("/ui/", "/v1/models", "/ui/nothing.js"):  # the page's, the API's, errors
        csp = get(base_url + path)[1]["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    for path in ("/ui/nothing.js", "/ui/..%2F__init__.py", "/ui/../server/app.py", "/ui/x/y"):
        assert get(base_url + path)[0] == 404, path


# -- chat -------------------------------------------------------------------------------------

def test_a_message_streams_and_its_session_is_there_after_a_reload(open_page, base_url):
    page = chat_page(open_page, base_url, max_tokens=80)
    send(page, LONG_TASK)
    wait_writing(page)  # the answer shows while it is being written
    expect(page.locator("#stop")).to_be_visible()
    wait_answered(page)
    screenshot(page, "chat")
    name = current_session(page)
    answer = page.locator(".message.assistant .body").last.text_content()
    assert name and answer

    page.reload()  # the session's name is in the address: it opens again
    expect(page.locator(".message.user .body")).to_have_text(LONG_TASK)
    expect(page.locator(".message.assistant .body")).to_have_text(answer)
    fresh = chat_page(open_page, base_url)  # a new tab finds it in the list
    fresh.get_by_role("button", name=name, exact=True).click()
    expect(fresh.locator(".message.assistant .body")).to_have_text(answer)
    fresh.locator(".regenerate").click()  # the question again, as a new turn
    wait_answered(fresh)
    expect(fresh.locator(".message.user")).to_have_count(2)


def test_a_conversation_is_there_after_the_server_restarts(open_page, start_server, tmp_path):
    home = {"OFFGRID_HOME": str(tmp_path / "home")}
    first = start_server("--model", CHAT_MODEL, env=home)
    page = chat_page(open_page, first.url)
    send(page, "Remember the word heron.")
    wait_answered(page)
    name, answer = current_session(page), page.locator(".message.assistant .body").text_content()
    first.stop()
    second = start_server("--model", CHAT_MODEL, env=home)
    page = chat_page(open_page, second.url)
    page.get_by_role("button", name=name, exact=True).click()
    expect(page.locator(".message.user .body")).to_have_text("Remember the word heron.")
    expect(page.locator(".message.assistant .body")).to_have_text(answer)


def test_stop_ends_the_answer_and_the_server_keeps_nothing_of_it(open_page, base_url):
    page = chat_page(open_page, base_url, max_tokens=1500)
    send(page, LONG_TASK)
    wait_writing(page)
    page.click("#stop")
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".note")).to_have_text("stopped, not kept")
    expect(page.locator("#send")).to_be_visible()
    assert answer.locator(".body").inner_text()  # the part written before the stop stays shown
    name = current_session(page)
    assert get(f"{base_url}/v1/sessions/{name}/messages")[2]["count"] == 0


def test_sessions_are_renamed_searched_and_deleted(open_page, base_url):
    page = chat_page(open_page, base_url)
    send(page, "Hi")
    wait_answered(page)
    name = current_session(page)
    page.get_by_role("button", name=f"Rename {name}").click()
    page.get_by_label("New name").fill("renamed-in-the-page")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="renamed-in-the-page", exact=True)).to_be_visible()
    assert current_session(page) == "renamed-in-the-page"
    page.fill("#session-search", "no-session-is-called-this")
    expect(page.locator("#session-list li")).to_have_count(0)
    page.fill("#session-search", "renamed-in-the")
    expect(page.locator("#session-list li")).to_have_count(1)
    delete = page.get_by_role("button", name="Delete renamed-in-the-page")
    delete.click()
    delete.click()  # the second click confirms
    expect(page.locator("#session-list li")).to_have_count(0)
    assert get(f"{base_url}/v1/sessions/renamed-in-the-page")[0] == 404


def test_markup_in_a_message_or_an_answer_shows_as_text_and_runs_nothing(open_page, base_url):
    page = chat_page(open_page, base_url)
    attack = ('<img src=x onerror="document.title=\'pwned\'"> <script>alert(1)</script> '
              '[click](javascript:alert(2)) **bold**')
    send(page, attack)
    wait_answered(page)
    expect(page.locator(".message.user .body")).to_have_text(attack)  # literally, not rendered
    # What the model writes goes through the Markdown renderer: the same attack, rendered.
    rendered = page.evaluate("""async (text) => {
        const { render } = await import("/ui/markdown.js");
        const holder = document.createElement("div");
        holder.append(...render(text + "\\n\\n```html\\n<b>code</b>\\n```"));
        return { text: holder.textContent, tags: [...holder.querySelectorAll("*")]
                 .map((node) => node.tagName.toLowerCase()),
                 links: [...holder.querySelectorAll("a")].map((a) => a.href) };
    }""", attack)
    assert '<img src=x onerror="document.title=\'pwned\'">' in rendered["text"]
    assert "<b>code</b>" in rendered["text"]
    assert set(rendered["tags"]) <= {"p", "strong", "div", "button", "pre", "code"}
    assert "strong" in rendered["tags"] and rendered["links"] == []
    for user_or_model in (page.locator("#messages img"), page.locator("#messages script")):
        expect(user_or_model).to_have_count(0)
    assert page.title() == "OffGrid"


def test_the_page_fits_a_phone_and_works_from_the_keyboard(open_page, base_url):
    page = chat_page(open_page, base_url, width=390, height=760)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("#prompt").focus()
    page.keyboard.type("Hello")
    page.keyboard.press("Enter")
    wait_answered(page)
    screenshot(page, "phone")
    expect(page.locator("#prompt")).to_be_focused()  # ready for the next message
    page.keyboard.press("Shift+Tab")  # back from the message box to the answer's button
    expect(page.locator(".regenerate")).to_be_focused()
    page.fill("#max-tokens", "1500")
    send(page, LONG_TASK)
    wait_writing(page)
    page.keyboard.press("Escape")  # in the message box: stop the answer
    expect(page.locator(".message.assistant").last.locator(".note")).to_have_text(
        "stopped, not kept")
    expect(page.locator("#session-list")).to_be_hidden()  # behind a button, on a phone
    page.get_by_role("button", name="Chats").click()
    expect(page.locator("#session-list li").first).to_be_visible()
    page.locator("#session-list .open").first.click()
    expect(page.locator("#session-list")).to_be_hidden()


# -- knowledge base, agents, models -----------------------------------------------------------

def upload(page: Page, name: str, text: bytes) -> None:
    page.click("[data-tab=knowledge]")
    page.set_input_files("#upload-file", files=[{"name": name, "mimeType": "text/plain",
                                                 "buffer": text}])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text(f"{name} added")
    expect(page.locator("#document-list")).to_contain_text(name)


def test_an_uploaded_document_is_cited_and_its_passage_opens(open_page, base_url):
    page = chat_page(open_page, base_url)
    upload(page, "canoe-ui.txt",
           b"The zebra-striped canoe is stored in boathouse 9, under the blue tarp.")
    screenshot(page, "knowledge")

    page.click("[data-tab=chat]")
    page.check("#use-kb")
    send(page, "Where is the zebra-striped canoe stored?")
    wait_answered(page)
    source = page.locator(".message.assistant .sources button", has_text="canoe-ui.txt").first
    expect(source).to_have_text(re.compile(r"^\[\d+\] canoe-ui\.txt$"))
    source.click()
    expect(page.locator("#passage")).to_be_visible()
    expect(page.locator("#passage-text")).to_contain_text("boathouse 9")
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#passage")).to_be_hidden()

    page.click("[data-tab=knowledge]")
    delete = page.get_by_role("button", name="Delete canoe-ui.txt")
    delete.click()
    delete.click()
    expect(page.locator("#document-list")).not_to_contain_text("canoe-ui.txt")


def test_an_agent_runs_and_its_steps_show_as_they_come(open_page, base_url):
    page = chat_page(open_page, base_url)
    page.click("[data-tab=agents]")
    expect(page.locator("#agent-status")).to_contain_text("calculator")
    page.fill("#agent-prompt", "What is 17 * 23? Use the calculator.")
    page.get_by_role("button", name="Run").click()
    steps = page.locator("#agent-steps .step")
    expect(steps.first).to_contain_text("tool_call: calculator", timeout=ANSWER_SECONDS * 1000)
    expect(page.locator("#agent-status")).to_contain_text("Done", timeout=ANSWER_SECONDS * 1000)
    expect(steps.filter(has_text="tool_result")).to_contain_text("= 391")
    screenshot(page, "agents")


def test_the_models_screen_lists_sizes_and_quantizations_and_the_bar_shows_stats(open_page,
                                                                                 base_url):
    page = chat_page(open_page, base_url)
    page.click("[data-tab=models]")
    row = page.locator("#model-list tr", has_text="SmolLM2-135M-Instruct.Q4_1")
    expect(row).to_contain_text("Q4_1")
    expect(row).to_contain_text("MB")
    expect(page.locator("#stats")).to_contain_text(re.compile(r"CPU \d+% · .*B · .* tokens/s"))
    page.fill("#pull-repository", "no-such-owner/no-such-repository")
    page.get_by_role("button", name="Pull").click()
    expect(page.locator("#pull-status")).to_contain_text("no-such-owner/no-such-repository")
    screenshot(page, "models")


# -- multi-user mode --------------------------------------------------------------------------

def log_in(page: Page, username: str, password: str) -> None:
    expect(page.locator("#login-form")).to_be_visible()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#app")).to_be_visible()


def test_users_log_in_see_only_their_own_sessions_and_log_out(open_page, start_server):
    site = start_multi_user(start_server)
    alice, bob = site.create_user(), site.create_user()
    page = open_page(site.url + "/ui/")
    page.get_by_label("Username", exact=True).fill(alice["username"])
    page.get_by_label("Password", exact=True).fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong username or password")
    screenshot(page, "login")
    log_in(page, alice["username"], password_of(alice["username"]))
    ready(page)
    send(page, "Hi")
    wait_answered(page)
    alices = current_session(page)
    assert page.context.cookies() == []  # the token is in sessionStorage, sent as a header

    page.click("[data-tab=account]")
    expect(page.locator("#me")).to_have_text(f"Logged in as {alice['username']} (user)")
    page.fill("#key-name", "laptop")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_contain_text("og_")
    expect(page.locator("#key-list")).to_contain_text("laptop")
    expect(page.locator("#admin")).to_be_hidden()
    upload(page, "alice-ui.txt", b"Alice keeps her notes here.")

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    log_in(page, bob["username"], password_of(bob["username"]))
    ready(page)
    expect(page.locator("#session-list li")).to_have_count(0)  # not alice's
    page.goto(f"{site.url}/ui/#{alices}")  # nor by its name
    page.reload()
    expect(page.locator("#toast")).to_contain_text("No session")
    page.click("[data-tab=knowledge]")
    expect(page.locator("#rag-status")).to_contain_text("documents")
    expect(page.locator("#document-list")).not_to_contain_text("alice-ui.txt")

    page.get_by_role("button", name="Log out").click()
    log_in(page, "admin", ADMIN_PASSWORD)
    page.click("[data-tab=account]")
    page.get_by_label(f"Role of {bob['username']}").select_option("guest")
    expect(page.locator("#user-list tr", has_text=bob["username"])).to_be_visible()
    assert site.call("GET", f"/v1/users/{bob['id']}", token=site.admin_token)[2]["role"] == "guest"
    screenshot(page, "account")
