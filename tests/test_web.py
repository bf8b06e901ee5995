"""The web chat page of `korlhf serve`, driven in headless Chromium (Debian's `chromium` package).

The browser and its driver are installed with apt when missing and we are root (as on CI);
elsewhere the test fails with the command to run. A screenshot of the chat is saved in
test-artifacts/ (gitignored).
"""

from pathlib import Path

import httpx
import pytest
from conftest import FLAGS

from korlhf.serve.server import Background, Config

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
NAME = "tiny-ko"


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)  # both paths given: no download
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tiny_gpt2):
    srv = Background(Config(model=str(tiny_gpt2), model_name=NAME, port=0, preset="sample", seed=0, max_new_tokens=24))
    yield srv
    srv.stop()


def api_answer(server, messages: list[dict]) -> str:
    body = {"model": NAME, "messages": messages}
    return httpx.post(server.url + "/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]


def send_and_wait(browser, text: str, turn: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    done = ".msg.assistant[data-state='done']"
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, done)) == turn)
    answer = browser.find_elements(By.CSS_SELECTOR, done)[-1]
    return answer.get_property("textContent"), int(answer.get_attribute("data-chunks"))


def test_web_chat_streams_answers_and_keeps_history(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    assert browser.title == "korlhf 채팅"
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "model").text == NAME)

    first, chunks = send_and_wait(browser, "안녕하세요, 자기소개를 해 주세요", 1)
    conversation = [{"role": "user", "content": "안녕하세요, 자기소개를 해 주세요"}]
    assert first and first == api_answer(server, conversation)  # the page got exactly the API's answer
    assert chunks > 1  # and it arrived as a stream of pieces, not in one block
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".msg.user")] == ["안녕하세요, 자기소개를 해 주세요"]

    second, _ = send_and_wait(browser, "한국어로 짧게 다시 말해 줘", 2)
    conversation += [{"role": "assistant", "content": first}, {"role": "user", "content": "한국어로 짧게 다시 말해 줘"}]
    assert second == api_answer(server, conversation)  # the page sent the whole history
    assert not browser.find_elements(By.CSS_SELECTOR, ".msg.error")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-chat.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 5000

    browser.find_element(By.ID, "reset").click()
    assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
    third, _ = send_and_wait(browser, "안녕하세요, 자기소개를 해 주세요", 1)
    assert third == first  # a new conversation: no history, same seed, same answer


def test_web_chat_shows_api_errors(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "model").text == NAME)
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    browser.find_element(By.ID, "max_tokens").send_keys("5000")
    box = browser.find_element(By.ID, "input")
    box.send_keys("안녕")
    box.submit()
    error = WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.error"))[0]
    assert error.text == "오류: max_tokens is 5000, above this server's limit of 1024 (korlhf serve --max_tokens_limit)"
    assert browser.find_elements(By.CSS_SELECTOR, ".msg.user") == []  # the failed turn is not kept ...
    assert box.get_property("value") == "안녕"  # ... and its text is back in the box to fix and resend
