"""The rating page `korlhf eval sheet` writes, driven in headless Chromium: a rater clicks scores and
types a comment, the progress line counts them, a reload keeps them (localStorage), and Save
downloads the CSV `korlhf eval agree` reads, with exactly those ratings."""

from __future__ import annotations

import csv
import time

import pytest
from conftest import FLAGS

from korlhf.records import write_jsonl


@pytest.fixture()
def sheet(tmp_path):
    from korlhf.evaluation import sheet as sheet_stage

    prompts = ["서울은 어느 나라의 수도인가요?", "3 더하기 4는?"]
    for system, answers in (("greedy", ["한국의 수도입니다.", "7입니다."]), ("top-p", ["모르겠어요.", "8입니다."])):
        write_jsonl(tmp_path / f"{system}.jsonl", [{"id": f"q{i}", "prompt": p, "response": a}
                                                   for i, (p, a) in enumerate(zip(prompts, answers, strict=True))])
    sheet_stage.main(sheet_stage.Config(systems=[str(tmp_path / "greedy.jsonl"), str(tmp_path / "top-p.jsonl")],
                                        out=str(tmp_path / "sheet")))
    return tmp_path / "sheet"


def test_rating_page_counts_keeps_and_saves_ratings(chromium, sheet, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    try:
        driver.get((sheet / "sheet.html").as_uri())
        assert driver.find_element(By.ID, "progress").text == "0 / 4 rated"
        radios = driver.find_elements(By.CSS_SELECTOR, "input[type=radio]")
        chosen = {radios[0].get_attribute("name"): "1", radios[9].get_attribute("name"): "5"}  # 5 per answer
        radios[0].click()
        radios[9].click()
        driver.find_element(By.ID, "rater").send_keys("민지")
        driver.find_elements(By.CSS_SELECTOR, ".comment")[1].send_keys("정확함, 짧음")
        assert driver.find_element(By.ID, "progress").text == "2 / 4 rated"
        driver.refresh()  # the ratings live in the browser until saved
        assert driver.find_element(By.ID, "progress").text == "2 / 4 rated"
        assert driver.find_element(By.ID, "rater").get_property("value") == "민지"
        driver.find_element(By.ID, "save").click()
        path = downloads / "ratings_민지.csv"
        for _ in range(100):
            if path.is_file() and path.stat().st_size:
                break
            time.sleep(0.1)
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    finally:
        driver.quit()
    assert len(rows) == 4 and {r["rater"] for r in rows} == {"민지"}
    rated = {f"{r['item']}|{r['slot']}": r["rating"] for r in rows if r["rating"]}
    assert rated == chosen
    comment = next(r for r in rows if r["comment"])
    # The comment box filled is the second answer's on the page: the one rated 5.
    assert comment["comment"] == "정확함, 짧음" and f"{comment['item']}|{comment['slot']}" == list(chosen)[1]
