"""Language-model data: documents of token ids packed into fixed-length sequences in Rust,
declared with :func:`pack` and passed as ``tokens=`` to ``zenith.DataLoader`` or
``zenith.torch.DataLoader``::

    dl = zenith.torch.DataLoader("tokens/*.parquet", batch_size=8,
                                 tokens=zenith.text.pack(seq_len=2048, column="input_ids",
                                                         mode="best_fit", eos_id=2))
    for batch in dl:   # input_ids, labels, position_ids, document_ids, attention_mask
        logits = model(batch["input_ids"], position_ids=batch["position_ids"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

Each row of the token column (``list<int32>``, ``list<int64>``, ``list<uint16>``,
``list<uint32>``, their ``large_list`` forms or a fixed-size list) is one document, read in the
loader's shuffled plan order. Flat token files (``.bin``, as nanoGPT and Megatron-LM write
them) are read too: with a Megatron-LM ``.idx`` beside a ``.bin`` each indexed sequence is a
document; without one the file is a stream of ``uint16`` tokens (``dtype=`` for another
width) cut into documents of ``seq_len`` tokens, whose EOS tokens are already in the stream (leave
``eos_id`` unset). Their column is ``input_ids``; ``bos_id``/``eos_id`` are put before/after each document when
given. Modes:

- ``"concat"``: the documents form one stream cut every ``seq_len`` tokens (no padding but at
  the end of an epoch); a document that does not fit continues in the next sequence.
- ``"best_fit"``: documents are cut into pieces of at most ``seq_len`` tokens and about
  ``buffer`` sequences' worth of pieces are packed together by best-fit decreasing (each piece,
  longest first, into the sequence with the least room that holds it); the rest of a sequence
  is padding. The sequences of a buffer come in a seeded order.
- ``"pad"``: one document per sequence, padded; longer documents are cut and continue.

Every batch holds ``int64 [B, seq_len]`` arrays:

- ``input_ids``: the tokens, ``pad_id`` on padding;
- ``labels``: the next token of the same document for each position (already shifted, so
  ``labels[:, t]`` is the target of ``input_ids[:, t]``), ``-100`` where the next token belongs
  to another document or is padding;
- ``position_ids``: restart at 0 at every document (and at the piece of a cut document that
  opens a sequence);
- ``document_ids``: the document's index within its sequence, ``-1`` on padding (for
  document masks, e.g. flex attention's ``document_ids[q] == document_ids[kv]``);
- ``attention_mask``: 1 on tokens, 0 on padding.

:func:`cu_seqlens` turns ``position_ids`` into the cumulative sequence lengths that
flash-attention's variable-length functions take.

``state_dict()`` is a few numbers: the plan position of the first document not wholly
delivered and how much of it (or of the best-fit buffer) was. A resumed pass gives exactly the
sequences of an uninterrupted one, with any ``num_workers``; mid-epoch it resumes under the
world size it was saved with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zenith import _zenith
from zenith.exceptions import ValidationError

__all__ = ["IGNORE_INDEX", "Pack", "cu_seqlens", "pack"]

IGNORE_INDEX: int = -100
"""The label of positions not learned from (PyTorch's ``cross_entropy`` ``ignore_index``)."""

FIELDS: tuple[str, ...] = (
    "input_ids",
    "labels",
    "position_ids",
    "document_ids",
    "attention_mask",
)
"""The fields of a packed batch, in order."""


@dataclass(frozen=True)
class Pack:
    """A declared packing (build it with :func:`pack`).

    Attributes:
        seq_len: tokens per sequence (at least 2).
        column: the token column, one document per row.
        mode: ``"concat"``, ``"best_fit"`` or ``"pad"``.
        eos_id: appended to every document when not ``None``.
        bos_id: put before every document when not ``None``.
        pad_id: the token of padding positions.
        buffer: ``best_fit``: sequences' worth of tokens packed together (more: less
            padding, more memory and a longer re-read on resume).
        fields: the fields each batch holds, some of :data:`FIELDS` in that order (all when
            ``None``); e.g. ``("input_ids", "labels")`` when the model needs no positions,
            document ids or mask, which saves filling them.
        dtype: the token width of ``.bin`` token files without a Megatron ``.idx``
            (``"uint16"``, nanoGPT's, by default; ``"uint32"`` for vocabularies past 65,536);
            an index says its own.
    """

    seq_len: int
    column: str = "input_ids"
    mode: str = "concat"
    eos_id: int | None = None
    bos_id: int | None = None
    pad_id: int = 0
    buffer: int = 256
    dtype: str | None = None
    fields: tuple[str, ...] | None = None


def pack(
    seq_len: int = 2048,
    column: str = "input_ids",
    mode: str = "concat",
    eos_id: int | None = None,
    bos_id: int | None = None,
    pad_id: int = 0,
    buffer: int = 256,
    dtype: str | None = None,
    fields: tuple[str, ...] | list[str] | None = None,
) -> Pack:
    """Declares sequence packing of the token column ``column`` into ``seq_len``-token
    sequences (see :class:`Pack` for each argument and the module doc for the batch)."""
    for name, value, optional in (
        ("seq_len", seq_len, False),
        ("buffer", buffer, False),
        ("pad_id", pad_id, False),
        ("eos_id", eos_id, True),
        ("bos_id", bos_id, True),
    ):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(f"invalid argument `{name}`: expected an int, got {value!r}")
    if not isinstance(column, str):
        raise ValidationError(f"invalid argument `column`: expected a name, got {column!r}")
    if not isinstance(mode, str):
        raise ValidationError(f"invalid argument `mode`: expected a name, got {mode!r}")
    if dtype is not None and not isinstance(dtype, str):
        raise ValidationError(f"invalid argument `dtype`: expected a name, got {dtype!r}")
    if fields is not None:
        if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
            raise ValidationError(
                f"invalid argument `fields`: expected a list of field names, got {fields!r}"
            )
        fields = tuple(fields)
    spec = Pack(seq_len, column, mode, eos_id, bos_id, pad_id, buffer, dtype, fields)
    # The engine checks ranges and names (one set of rules for every front): run it now, so a
    # bad spec fails where it is declared.
    _zenith.text_check(spec)
    return spec


def pack_spec(tokens: Any) -> Pack | None:
    """Checks the ``tokens=`` argument of the loaders."""
    if tokens is None or isinstance(tokens, Pack):
        return tokens
    raise ValidationError(
        f"invalid argument `tokens`: expected zenith.text.pack(...), got {type(tokens).__name__}"
    )


def cu_seqlens(position_ids: Any) -> Any:
    """The cumulative document lengths of a packed batch, as flash-attention's varlen functions
    take them: an ``int32`` tensor (or array) ``[0, len_0, len_0 + len_1, ..., B * seq_len]``
    over the flattened batch, each document (piece) and each run of padding its own entry.

    ``position_ids`` is the batch's field (a torch tensor or a NumPy array)."""
    flat = position_ids.reshape(-1)
    n = flat.shape[0]
    if type(flat).__module__.startswith("torch"):
        import torch

        begins = torch.nonzero(flat == 0).flatten().to(torch.int32)
        end = torch.tensor([n], dtype=torch.int32, device=flat.device)
        return torch.cat([begins, end])
    import numpy as np

    starts = np.flatnonzero(np.asarray(flat) == 0).astype(np.int32)
    return np.concatenate([starts, np.array([n], dtype=np.int32)])
