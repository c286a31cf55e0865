"""Batch items: lists, JSONL and CSV files, keys, errors, usage sums and the spend ledger."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from managed_agents_core.batch_items import (
    BatchItem,
    BatchItemResult,
    BatchItemsError,
    BatchResult,
    SpendLedger,
    load_batch_items,
    sum_usage,
)
from managed_agents_core.inputs import InputFile, MemoryStoreAttachment
from managed_agents_core.results import UsageSummary


def test_list_of_prompts_dicts_and_models_gets_default_keys() -> None:
    items = load_batch_items(
        ["first", {"prompt": "second", "key": "custom"}, BatchItem(prompt="third", metadata={"n": "3"})]
    )
    assert [i.key for i in items] == ["item-0001", "custom", "item-0003"]
    assert [i.prompt for i in items] == ["first", "second", "third"]
    assert items[2].metadata == {"n": "3"}


def test_jsonl_resolves_relative_files_against_the_batch_file(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    lines = [
        {"prompt": "a", "files": ["in/a.txt", {"path": "in/b.txt", "mount_path": "/mnt/b.txt"}], "key": "a"},
        {
            "prompt": "b",
            "files": ["/abs/c.txt"],
            "memory_stores": ["notes", {"store": "memstore_1", "access": "read_only"}],
        },
        {"prompt": "c", "metadata": {"customer": 42, "tier": None}},
    ]
    path = folder / "items.jsonl"
    path.write_text("# comment\n" + "\n".join(json.dumps(line) for line in lines) + "\n\n")

    items = load_batch_items(str(path))

    assert [i.key for i in items] == ["a", "item-0002", "item-0003"]
    base = folder.resolve()
    assert items[0].files == [
        str(base / "in/a.txt"),
        InputFile(path=str(base / "in/b.txt"), mount_path="/mnt/b.txt"),
    ]
    assert items[1].files == ["/abs/c.txt"]
    assert items[1].memory_stores == ["notes", MemoryStoreAttachment(store="memstore_1", access="read_only")]
    assert items[2].metadata == {"customer": "42", "tier": ""}


def test_csv_columns_lists_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "key,prompt,files,memory_stores,github_repositories,customer,region\n"
        "k1,Summarise,a.txt; sub/b.txt,notes;memstore_9,https://github.com/acme/app,acme,eu\n"
        ",Second,,,,,\n"
        ",,,,,,\n"
    )
    items = load_batch_items(path)
    assert [i.key for i in items] == ["k1", "item-0002"]
    assert items[0].files == [str(tmp_path.resolve() / "a.txt"), str(tmp_path.resolve() / "sub/b.txt")]
    assert items[0].memory_stores == ["notes", "memstore_9"]
    assert items[0].metadata == {"customer": "acme", "region": "eu"}
    assert [r.url for r in items[0].github_repositories] == ["https://github.com/acme/app"]
    assert items[1].files == [] and items[1].metadata == {} and items[1].github_repositories == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"prompt": "ok"}\n{not json}\n', "bad.jsonl:2: not valid JSON"),
        ("empty.jsonl", '{"prompt": ""}\n', "bad"),
        (
            "dup.jsonl",
            '{"prompt": "a", "key": "x"}\n{"prompt": "b", "key": "x"}\n',
            "key 'x' is already used",
        ),
        ("badkey.jsonl", '{"prompt": "a", "key": "../up"}\n', "key"),
        ("noprompt.csv", "key,text\nk,hello\n", "needs a header row with a 'prompt' column"),
        ("wide.csv", "prompt\nhello,extra\n", "more cells than header columns"),
        ("items.txt", "hello\n", "must end in .jsonl"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BatchItemsError) as info:
        load_batch_items(path)
    if message != "bad":
        assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_and_invalid_list_entry(tmp_path: Path) -> None:
    with pytest.raises(BatchItemsError, match="does not exist"):
        load_batch_items(str(tmp_path / "nope.jsonl"))
    with pytest.raises(BatchItemsError, match=r"item 2: invalid batch item \(prompt"):
        load_batch_items(["fine", {"prompt": ""}])


def test_sum_usage_adds_every_field_and_known_costs() -> None:
    total = sum_usage(
        [
            UsageSummary(
                input_tokens=1,
                output_tokens=2,
                cache_read_input_tokens=3,
                cache_creation_input_tokens=4,
                active_seconds=1.5,
                cost_usd=Decimal("0.01"),
            ),
            UsageSummary(input_tokens=10, output_tokens=20, active_seconds=0.5, cost_usd=None),
            UsageSummary(input_tokens=100, cost_usd=Decimal("0.02")),
        ]
    )
    assert (total.input_tokens, total.output_tokens, total.cache_read_input_tokens) == (111, 22, 3)
    assert total.cache_creation_input_tokens == 4 and total.active_seconds == 2.0
    assert total.cost_usd == Decimal("0.03")
    assert sum_usage([UsageSummary()]).cost_usd is None


def test_spend_ledger_counts_running_cost_and_stays_closed() -> None:
    ledger = SpendLedger(Decimal("0.10"))
    assert ledger.may_start(Decimal(0))
    ledger.record_finished(Decimal("0.04"))
    assert ledger.may_start(Decimal("0.05"))  # 0.09 < 0.10
    assert not ledger.may_start(Decimal("0.06"))  # 0.10 reached with running sessions counted
    assert not ledger.may_start(Decimal(0))  # closed for good
    unlimited = SpendLedger(None)
    unlimited.record_finished(Decimal("1000"))
    assert unlimited.may_start(Decimal("1000"))


def test_batch_result_groups_and_summary() -> None:
    result = BatchResult(
        items=[
            BatchItemResult(key="a", state="completed", output_dir="o/a"),
            BatchItemResult(key="b", state="failed", output_dir="o/b", error="boom"),
            BatchItemResult(key="c", state="not_started", output_dir="o/c"),
        ],
        usage=UsageSummary(),
        spend_limit_usd=Decimal("0.5"),
        spend_limit_reached=True,
    )
    assert [i.key for i in result.completed] == ["a"]
    assert [i.key for i in result.failed] == ["b"]
    assert [i.key for i in result.not_started] == ["c"]
    assert result.summary() == (
        "3 items: 1 completed, 1 failed, 1 not started (spend limit 0.5 USD reached), list cost $0.00"
    )
