"""@file attachments: resolution under the working directory and their section of the prompt budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tiktoken

from runtime.config import ContextConfig
from runtime.context import ContextWindowManager, TokenCounter, build_prompt
from runtime.context.attachments import (
    ATTACHMENT_SHARE,
    SECTION_HEADER,
    AttachmentRefused,
    mentions,
    resolve_attachments,
)
from runtime.core.messages import ChatMessage

SYSTEM = "You are Holdfast."


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("gpt-4")


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def test_mentions_are_at_word_starts_and_lose_sentence_punctuation() -> None:
    assert mentions("explain @README.md, then (@src/a.py). mail me at bob@example.com") == [
        "README.md",
        "src/a.py",
    ]


def test_attachment_tokens_in_the_report_equal_tiktokens_count_of_the_inserted_text(
    tmp_path: Path, counter: TokenCounter
) -> None:
    (tmp_path / "notes.md").write_text("Holdfast keeps [bold]markup[/bold] and \x1b[31mescapes\x1b[0m as text.\n" * 20)
    found = resolve_attachments("summarise @notes.md please", tmp_path)
    assert [a.path for a in found.attachments] == ["notes.md"]

    built = build_prompt(
        counter,
        ContextConfig(reserved_output_tokens=100),
        8192,
        SYSTEM,
        [user("summarise")],
        attachments=found.attachments,
    )

    section = built.messages[-2]  # just before the newest user message
    assert section["content"].startswith(SECTION_HEADER)
    assert built.messages[-1]["content"] == "summarise"
    inserted = section["content"][len(SECTION_HEADER) + 2 :]
    assert "[bold]markup[/bold] and \x1b[31mescapes" in inserted  # the text as it is, nothing rendered
    encoding = tiktoken.get_encoding(counter.encoding_name)
    (figure,) = built.report.attachments
    assert figure.path == "notes.md"
    assert figure.tokens == len(encoding.encode(inserted))
    assert figure.truncated is False
    assert built.report.attachments_tokens == counter.count_openai_message(section)
    assert built.report.prompt_tokens == counter.count_messages(built.messages)


def test_a_file_over_its_share_is_cut_with_a_marker_saying_how_much_is_shown(
    tmp_path: Path, counter: TokenCounter
) -> None:
    (tmp_path / "big.txt").write_text("".join(f"line {i} of a long log\n" for i in range(5000)))
    found = resolve_attachments("@big.txt", tmp_path)
    config = ContextConfig(reserved_output_tokens=1000)

    built = build_prompt(counter, config, 4096, SYSTEM, [user("what is in it?")], attachments=found.attachments)

    (figure,) = built.report.attachments
    total = counter.count_text(found.attachments[0].text)
    assert figure.truncated and built.report.truncated
    assert figure.total_tokens == total > 30_000
    section = built.messages[-2]["content"]
    assert "line 0 of a long log" in section and "line 4999" not in section
    shown = int(section.rsplit("[… truncated: ", 1)[1].split(" of ")[0].replace(",", ""))
    assert f"[… truncated: {shown:,} of {total:,} tokens shown]" in section
    room = built.report.budget - built.report.system_tokens - 3 - counter.count_openai_message(built.messages[-1])
    assert built.report.attachments_tokens <= room * ATTACHMENT_SHARE
    assert built.report.prompt_tokens <= built.report.budget


def test_two_files_share_fairly_the_small_one_goes_whole(tmp_path: Path, counter: TokenCounter) -> None:
    (tmp_path / "small.txt").write_text("tiny file\n")
    (tmp_path / "big.txt").write_text("word " * 20_000)
    found = resolve_attachments("@big.txt and @small.txt", tmp_path)
    built = build_prompt(
        counter, ContextConfig(reserved_output_tokens=1000), 4096, SYSTEM, [user("x")], attachments=found.attachments
    )
    big, small = built.report.attachments
    assert (big.path, big.truncated) == ("big.txt", True)
    assert (small.path, small.truncated) == ("small.txt", False)


def test_a_binary_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(AttachmentRefused, match=r"^@logo.png is a binary file"):
        resolve_attachments("look at @logo.png", tmp_path)
    with pytest.raises(AttachmentRefused, match=r"^@latin1.txt is not UTF-8 text"):
        resolve_attachments("@latin1.txt", tmp_path)


def test_paths_outside_the_working_directory_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("do not send")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    for text in ("@../secret.txt", f"@{tmp_path / 'secret.txt'}", "@link.txt", "@../../../../../../etc/passwd"):
        with pytest.raises(AttachmentRefused, match="is outside the working directory"):
            resolve_attachments(text, root)


def test_a_missing_file_stays_text_with_a_notice(tmp_path: Path) -> None:
    found = resolve_attachments("use @dataclass here and @nothing/there.py", tmp_path)
    assert found.attachments == ()
    assert found.notices == (
        f"@dataclass: no such file under {tmp_path.resolve()}; sent as text",
        f"@nothing/there.py: no such file under {tmp_path.resolve()}; sent as text",
    )


async def test_figures_known_before_saving_equal_the_built_prompts(tmp_path: Path, counter: TokenCounter) -> None:
    """What the stored user message records (tokens sent, truncated) is what its prompt holds."""
    (tmp_path / "big.txt").write_text("".join(f"entry {i}\n" for i in range(4000)))
    (tmp_path / "small.txt").write_text("short\n")
    found = resolve_attachments("@big.txt @small.txt", tmp_path)
    manager = ContextWindowManager(counter, ContextConfig(reserved_output_tokens=1000), 4096)
    ahead = manager.attachment_figures(SYSTEM, None, "compare them", found.attachments)
    built = await manager.build_prompt(SYSTEM, [user("compare them")], attachments=found.attachments)
    assert ahead == built.report.attachments
    assert [f.truncated for f in ahead] == [True, False]
