from pathlib import Path

from finetune.transcripts import ReadReport, normalize_role, read_transcripts

DATA = Path(__file__).resolve().parents[1] / "data"


def test_sample_transcripts_read_in_all_three_formats():
    report = ReadReport()
    conversations = read_transcripts(DATA / "transcripts", report)
    assert report.problems == []
    assert len(conversations) >= 120
    origins = {Path(c.origin.split(":")[0]).suffix for c in conversations}
    assert origins == {".jsonl", ".csv", ".txt"}
    for conv in conversations:
        assert {m["role"] for m in conv.messages} <= {"user", "assistant", "system"}
        assert conv.messages[0]["role"] == "user"


def test_heldout_is_not_in_training_data():
    train_ids = {c.id for c in read_transcripts(DATA / "transcripts")}
    held = read_transcripts(DATA / "eval" / "heldout.jsonl")
    assert len(held) >= 20
    assert not train_ids & {c.id for c in held}


def test_role_mapping():
    for role in ("Agent", "technician", "SUPPORT"):
        assert normalize_role(role) == "assistant"
    for role in ("customer", "Employee", "caller", "user"):
        assert normalize_role(role) == "user"
    assert normalize_role("wizard") is None


def test_bad_lines_are_reported_with_file_and_line(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"id": "1", "messages": [{"role": "user", "content": "hi"}, '
        '{"role": "agent", "content": "hello"}]}\n'
        "{broken json\n"
        '{"id": "3", "messages": [{"role": "wizard", "content": "x"}]}\n'
    )
    (tmp_path / "b.csv").write_text("ticket,text\n1,hello\n")
    (tmp_path / "c.txt").write_text(
        "### T-1 | x\nCaller: my printer\nis jammed\nAgent: open door A\n"
    )
    report = ReadReport()
    convs = read_transcripts(tmp_path, report)
    assert [c.id for c in convs] == ["1", "T-1"]
    assert convs[1].messages[0]["content"] == "my printer\nis jammed"
    problems = "\n".join(report.problems)
    assert "a.jsonl:2" in problems and "a.jsonl:3" in problems and "wizard" in problems
    assert "b.csv:1" in problems and "missing columns" in problems
