"""Where the shared public test corpus lies (see ../shared/corpus/README.md): the folder named by
CARELOOP_CORPUS, else ``shared/corpus`` beside the checkout, else the workplace's copy."""

from __future__ import annotations

import os
from pathlib import Path


def _find() -> Path:
    named = os.environ.get("CARELOOP_CORPUS")
    if named:
        return Path(named)
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if beside.is_dir():
        return beside
    return Path("/work/shared/corpus")


CORPUS = _find()
