"""The knowledge-base evaluation kept honest without running it: its questions file against the
corpus package it names (fetched as the harness fetches it), and its relevance rule and measures
on small hand-made cases. benchmarks/kb_eval.py runs the evaluation itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import kb_eval  # noqa: E402
from kb_eval import Answer, Question, words  # noqa: E402
from report import with_section  # noqa: E402

from offgrid.kb import ingest  # noqa: E402

QUOTE = ("Usually you cannot revert a merge because you do not know which side of the merge "
         "should be considered the mainline.")
QUOTE_WORDS = tuple(words(QUOTE))  # 21 words


# -- the questions file -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def questions():
    return kb_eval.load_questions(kb_eval.QUESTIONS)


@pytest.fixture(scope="module")
def corpus_texts(questions):
    """{path: extracted text, whitespace-normalized} of every corpus document, extracted by
    the knowledge base's own ingest (the text its chunks are cut from). Fetching the package
    may fail (no apt, no network): the test fails then, saying why."""
    corpus, _ = questions
    root, _ = kb_eval.corpus_root(corpus)
    return {path: " ".join(ingest.extract((root / path).read_bytes(), path).text.split())
            for path in kb_eval.corpus_documents(root, corpus["include"])}


def test_the_questions_are_many_varied_and_well_formed(questions):
    corpus, items = questions
    assert set(corpus) == {"package", "version", "include"}
    assert len(items) >= 60
    assert len({q.id for q in items}) == len(items)
    assert len({q.text.casefold() for q in items}) == len(items)
    kinds = Counter(q.kind for q in items)
    assert set(kinds) == set(kb_eval.KINDS) and min(kinds.values()) >= 3, kinds
    documents = {answer.documents[0] for q in items for answer in q.answers}
    assert len(documents) >= 40  # spread over the corpus, not one page
    for question in items:
        assert question.text.strip() and question.answers, question
        for answer in question.answers:
            lowest, highest = kb_eval.QUOTE_WORDS
            assert lowest <= len(answer.quote.split()) <= highest, (question.id, answer.quote)
            assert answer.documents and len(set(answer.documents)) == len(answer.documents)


def test_every_quote_is_verbatim_in_its_documents_and_in_no_other(questions, corpus_texts):
    """Whitespace-normalized, each answer quote is in the extracted text of each document it
    names, and every document that holds it is named (so any of them counts as right)."""
    _, items = questions
    assert len(corpus_texts) >= 20
    for question in items:
        for answer in question.answers:
            quote = " ".join(answer.quote.split())
            missing = [path for path in answer.documents if path not in corpus_texts]
            assert not missing, (question.id, missing)
            holders = {path for path, text in corpus_texts.items() if quote in text}
            assert holders == set(answer.documents), (question.id, quote, holders)


def test_the_harness_runs_through_a_real_server(questions, model_files, tmp_path):
    """A small run of benchmarks/kb_eval.py: two corpus pages in a folder and the questions
    about them, each page uploaded, each question asked in each mode, each passage reachable."""
    corpus, items = questions
    root, _ = kb_eval.corpus_root(corpus)
    pages = ("git-clean.html", "git-bundle.html")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for page in pages:
        shutil.copy(root / page, folder / page)
    asked = [{"id": q.id, "question": q.text, "kind": q.kind, "answers": [
        {"quote": a.quote, "documents": [d for d in a.documents if d in pages]}
        for a in q.answers]} for q in items if q.answers[0].documents[0] in pages]
    assert len(asked) >= 3
    (tmp_path / "questions.json").write_text(json.dumps(
        {"corpus": {**corpus, "include": "*.html"}, "questions": asked}))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "kb_eval.py"), "--corpus", str(folder),
         "--questions", str(tmp_path / "questions.json"), "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr  # 1: hybrid did not beat both, on 3 questions
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["ingest"]["documents"] == 2 and results["ingest"]["chunks"] > 2
    assert not results["ingest"]["refused"] and not results["unreachable"]
    assert set(results["ranks"]) == {q["id"] for q in asked}
    for figures in results["modes"].values():
        assert 0 <= figures["mrr@10"] <= 1 and 0 <= figures["recall@5"] <= 1
    assert "recall@5" in done.stdout


# -- the relevance rule -------------------------------------------------------------------------

def test_words_ignore_case_punctuation_and_layout():
    assert words("Don’t run `git-gc`,\n  HEAD~3!") == ["don", "t", "run", "git", "gc", "head", "3"]
    assert words("ÉCOLE") == words("école")


def _part(start: int, end: int) -> str:
    return " ".join(QUOTE.split()[start:end])


@pytest.mark.parametrize("text, expected", [
    (f"Some words before. {QUOTE} And some after it.", True),  # the whole quote
    (QUOTE.upper().replace(" ", "\n"), True),  # case and whitespace do not matter
    (f"before and before {_part(2, 15)} after and after", True),  # 13 of 21 words: most of it
    (f"before and before {_part(4, 14)} after and after", False),  # half, inside the result
    (f"a chunk that ends where the quote starts: {_part(0, 9)}", True),  # cut after 9 words
    (f"{_part(12, 21)} and the chunk goes on", True),  # the quote's end starts the chunk
    (f"a chunk ending mid-word: {_part(0, 9)} considere", True),  # a cut inside a word
    (f"{_part(0, 9)} and then something else entirely", False),  # the head, not at the end
    (f"a chunk that ends with {_part(5, 14)}", False),  # a middle piece is not a cut one
    (_part(6, 10), True),  # a chunk smaller than the quote, all inside it
    ("revert a", False),  # too few words to say anything
    ("Usually you cannot know which side of anything should be considered at all.", False),
])
def test_matches(text, expected):
    assert kb_eval.matches(QUOTE_WORDS, text) is expected


def test_a_result_is_relevant_from_a_right_document_only():
    answers = (Answer(QUOTE, ("git-revert.html", "git-merge.html"), QUOTE_WORDS),
               Answer("Another way to say it, in another page of the corpus.", ("faq.html",),
                      tuple(words("Another way to say it, in another page of the corpus."))))
    names = {7: "git-revert.html", 8: "faq.html", 9: "gitglossary.html"}
    result = {"content": QUOTE, "document_id": 7, "document_name": "ignored.html"}
    assert kb_eval.relevant(result, answers, names)
    assert not kb_eval.relevant({**result, "document_id": 9}, answers, names)
    assert kb_eval.relevant({**result, "document_id": 8,
                             "content": "another way to say it in another page"}, answers, names)
    unknown_id = {"content": QUOTE, "document_id": 99, "document_name": "git-merge.html"}
    assert kb_eval.relevant(unknown_id, answers, names)  # the server's name, failing the id


def test_ranks_recall_and_mrr():
    answers = (Answer(QUOTE, ("a.html",), QUOTE_WORDS),)
    names = {1: "a.html", 2: "b.html"}
    miss, hit = {"content": "nothing", "document_id": 1}, {"content": QUOTE, "document_id": 1}
    assert kb_eval.first_relevant([miss, {**hit, "document_id": 2}, hit], answers, names) == 3
    assert kb_eval.first_relevant([miss] * 10 + [hit], answers, names) is None  # past 10
    ranks = [1, 3, None, 7]
    assert kb_eval.recall_at(ranks) == 0.5
    assert kb_eval.mrr_at(ranks) == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)


def test_a_question_no_chunk_answers_is_unreachable():
    found = Question("q1", "x", "plain", (Answer(QUOTE, ("a.html",), QUOTE_WORDS),))
    lost = Question("q2", "y", "plain", (Answer(QUOTE, ("b.html",), QUOTE_WORDS),))
    texts = {"a.html": ["an unrelated chunk", f"the chunk that holds it: {QUOTE}"],
             "b.html": ["the passage was lost", QUOTE.replace("merge", "mess")]}
    assert kb_eval.unreachable([found, lost], texts) == ["q2"]


def test_evaluate_and_report_with_a_fake_search():
    """Keyword search finds the exact question, vector search the reworded one, hybrid both."""
    exact = Question("q1", "git revert -m", "exact", (Answer(QUOTE, ("a.html",), QUOTE_WORDS),))
    reworded = Question("q2", "undo a merge", "synonyms",
                        (Answer(QUOTE, ("b.html",), QUOTE_WORDS),))
    names = {1: "a.html", 2: "b.html"}
    noise = [{"content": f"unrelated text {n}", "document_id": 1} for n in range(10)]
    found = {("git revert -m", "keyword"): 1, ("undo a merge", "vector"): 1,
             ("git revert -m", "hybrid"): 1, ("undo a merge", "hybrid"): 2}

    def search(query, mode):
        document = 1 if query == "git revert -m" else 2
        results = list(noise)
        if (query, mode) in found:
            results.insert(found[query, mode] - 1, {"content": QUOTE, "document_id": document})
        return results

    figures = kb_eval.evaluate([exact, reworded], search, names)
    assert figures["ranks"] == {"q1": {"keyword": 1, "vector": None, "hybrid": 1},
                                "q2": {"keyword": None, "vector": 1, "hybrid": 2}}
    assert figures["found"]["q2"]["hybrid"] == ["a.html#None", "b.html#None"] + [
        "a.html#None"] * 3
    assert figures["modes"]["hybrid"] == {"recall@5": 1.0, "mrr@10": 0.75}
    assert figures["modes"]["keyword"] == {"recall@5": 0.5, "mrr@10": 0.5}
    assert figures["hybrid_beats_both"]
    assert figures["recall@5_by_kind"] == {"synonyms": {"keyword": 0, "vector": 1, "hybrid": 1},
                                           "exact": {"keyword": 1, "vector": 0, "hybrid": 1}}

    results = {"corpus": "the Debian package `git-doc` 1:2.39.5-0+deb12u3", "questions": 2,
               "questions_file": "benchmarks/kb_eval/questions.json",
               "command": "benchmarks/kb_eval.py --report",
               "ingest": {"documents": 2, "chunks": 12, "refused": []}, "unreachable": ["q9"],
               "machine": {"cpu": "a CPU", "cores": 2, "python": "3.11", "date": "today",
                           "versions": {"offgrid": "0.1.0"}, "load_average": [0.5, 1.5]},
               **figures}
    section = kb_eval.markdown(results)
    assert "| hybrid | 1.000 | 0.750 |" in section and "| keyword | 0.500 | 0.500 |" in section
    assert "| exact | 1 | 1.00 | 0.00 | 1.00 |" in section
    assert "`benchmarks/kb_eval/questions.json`" in section and "yes." in section
    assert "lost the passage): q9." in section
    page = with_section("# Benchmarks\n\n## Soak\n\nsoak figures\n", kb_eval.HEADING, section)
    assert page.index("## Soak") < page.index(kb_eval.HEADING) and "soak figures" in page
    assert with_section(page, kb_eval.HEADING, "new").count(kb_eval.HEADING) == 1


def test_a_draw_lost_by_hybrid_fails_the_run():
    answers = (Answer(QUOTE, ("a.html",), QUOTE_WORDS),)
    question = Question("q1", "anything", "plain", answers)
    hit = [{"content": QUOTE, "document_id": 1}]
    figures = kb_eval.evaluate([question], lambda query, mode: hit, {1: "a.html"})
    assert not figures["hybrid_beats_both"]  # equal is not better
