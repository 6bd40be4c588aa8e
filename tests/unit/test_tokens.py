"""Counting a prompt's tokens for the worst case a call holds: the estimate, and the
bundled cl100k_base BPE a pool can choose (no download)."""

from __future__ import annotations

from trimtab.reconcile.agentworkflow import templates
from trimtab.worker import execute, tokens

CHINESE = "请帮我查一下我上个月的订单为什么还没有发货谢谢。" * 4


def test_the_bundled_bpe_counts_as_openai_models_do() -> None:
    count = tokens.counter("Cl100kBase")
    assert count("hello world") == 2
    assert count("") == 0
    assert count("<|endoftext|>") > 1  # special-token text in a prompt is just text


def test_dense_text_is_counted_as_it_tokenizes_not_by_characters() -> None:
    exact = tokens.counter("Cl100kBase")(CHINESE)
    estimate = tokens.counter("Estimate")(CHINESE)
    assert estimate == templates.estimate_tokens(CHINESE)
    assert exact > 2 * estimate  # four characters a token undercounts Chinese


def test_a_prompt_counts_each_message_its_framing_and_the_answers_start() -> None:
    count = tokens.counter("Cl100kBase")
    both = execute.Prompt(system="You are terse.", user="hello world")
    alone = execute.Prompt(system=None, user="hello world")
    framing = tokens.PER_MESSAGE
    assert tokens.prompt_tokens(alone, count) == 2 + framing + tokens.REPLY_PRIMING
    assert tokens.prompt_tokens(both, count) == (
        count("You are terse.") + 2 + 2 * framing + tokens.REPLY_PRIMING
    )


def test_the_output_schema_sent_with_the_prompt_counts_too() -> None:
    count = tokens.counter("Estimate")
    prompt = execute.Prompt(system=None, user="hello world")
    schema = {"type": "object", "required": ["answer"]}
    extra = tokens.prompt_tokens(prompt, count, schema=schema) - tokens.prompt_tokens(prompt, count)
    assert extra == count('{"type": "object", "required": ["answer"]}')
