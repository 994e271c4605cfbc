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
``eos_id`` unset); NumPy ``.npy`` token shards (``np.save`` of an integer array, any shape) are
such a stream too, of the width their header says. Their column is ``input_ids``;
``bos_id``/``eos_id`` are put before/after each document when given. Modes:

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

Text is tokenized on the fly with ``tokenizer=`` (a ``tokenizer.json``, loaded by Hugging
Face's ``tokenizers`` crate in Rust, no download): the rows of ``text_column`` (``.txt`` lines,
JSON Lines fields, string columns of Parquet, Arrow or CSV; local or in object storage) become
the documents, on the decode threads, with the ids the Python ``tokenizers`` package gives::

    dl = zenith.torch.DataLoader("corpus/*.jsonl", batch_size=8,
                                 tokens=zenith.text.pack(2048, tokenizer="tokenizer.json",
                                                         eos_id="<|endoftext|>"))

``state_dict()`` is a few numbers: the plan position of the first document not wholly
delivered and how much of it (or of the best-fit buffer) was. A resumed pass gives exactly the
sequences of an uninterrupted one, with any ``num_workers``. Under another world size, give
``load_state_dict`` the list of every rank's ``state_dict()``: each partly delivered document
or best-fit buffer is continued by one new rank and every token still comes once per epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from zenith import _zenith
from zenith.exceptions import ValidationError

__all__ = ["IGNORE_INDEX", "Pack", "cu_seqlens", "encode", "pack"]

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
            an index or an ``.npy`` header says its own.
        tokenizer: a ``tokenizer.json`` file (as Hugging Face's ``tokenizers`` saves it,
            ``tokenizer.save(path)`` or a model's own): the documents are the rows of the text
            column ``text_column``, tokenized in Rust on the decode threads into ``column``.
            Its truncation and padding settings are not applied (the packer cuts and pads).
        text_column: the text column tokenized when ``tokenizer`` is given (``"text"``: a
            ``.txt`` file's lines, a JSON Lines field, a Parquet/Arrow/CSV string column).
        add_special_tokens: let the tokenizer's post-processor add its special tokens to each
            document (e.g. Llama's BOS); off by default, ``bos_id``/``eos_id`` add them here.
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
    tokenizer: str | None = None
    text_column: str = "text"
    add_special_tokens: bool = False


def pack(
    seq_len: int = 2048,
    column: str = "input_ids",
    mode: str = "concat",
    eos_id: int | str | None = None,
    bos_id: int | str | None = None,
    pad_id: int | str = 0,
    buffer: int = 256,
    dtype: str | None = None,
    fields: tuple[str, ...] | list[str] | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    text_column: str = "text",
    add_special_tokens: bool = False,
) -> Pack:
    """Declares sequence packing of the token column ``column`` into ``seq_len``-token
    sequences (see :class:`Pack` for each argument and the module doc for the batch).

    With ``tokenizer=``, the documents are text tokenized in Rust first, and ``eos_id``,
    ``bos_id`` and ``pad_id`` may be given as tokens (``eos_id="<|endoftext|>"``), looked up
    in its vocabulary."""
    # Token ids, once the names a tokenizer resolves are looked up (checked below).
    eos: Any = eos_id
    bos: Any = bos_id
    pad: Any = pad_id
    if tokenizer is not None:
        if not isinstance(tokenizer, (str, os.PathLike)):
            raise ValidationError(
                f"invalid argument `tokenizer`: expected the path of a tokenizer.json, got {tokenizer!r}"
            )
        tokenizer = os.fspath(tokenizer)
        if not isinstance(text_column, str):
            raise ValidationError(
                f"invalid argument `text_column`: expected a name, got {text_column!r}"
            )
        eos, bos, pad = _token_ids(tokenizer, {"eos_id": eos_id, "bos_id": bos_id, "pad_id": pad_id})
    if not isinstance(add_special_tokens, bool):
        raise ValidationError(
            f"invalid argument `add_special_tokens`: expected a bool, got {add_special_tokens!r}"
        )
    for name, value, optional in (
        ("seq_len", seq_len, False),
        ("buffer", buffer, False),
        ("pad_id", pad, False),
        ("eos_id", eos, True),
        ("bos_id", bos, True),
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
    spec = Pack(
        seq_len, column, mode, eos, bos, pad, buffer, dtype, fields,
        tokenizer, text_column, add_special_tokens,
    )
    # The engine checks ranges and names (one set of rules for every front): run it now, so a
    # bad spec fails where it is declared.
    _zenith.text_check(spec)
    return spec


def _token_ids(tokenizer: str, values: dict[str, Any]) -> list[Any]:
    """Each of ``values``, or the id of the token it names in the tokenizer's vocabulary (the
    file loaded once for all the names)."""
    names = {arg: v for arg, v in values.items() if isinstance(v, str)}
    if not names:
        return list(values.values())
    found = dict(zip(names, _zenith.text_token_ids(tokenizer, list(names.values())), strict=True))
    for arg, token in names.items():
        if found[arg] is None:
            raise ValidationError(
                f"invalid argument `{arg}`: {token!r} is not a token of {tokenizer}"
            )
    return [found.get(arg, v) for arg, v in values.items()]


def encode(
    tokenizer: str | os.PathLike[str], texts: list[str], add_special_tokens: bool = False
) -> list[list[int]]:
    """The token ids of each of ``texts`` under ``tokenizer`` (a ``tokenizer.json``), as the
    loader's tokenizing stage makes them (the Python ``tokenizers`` package gives the same
    ids for the same file)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValidationError(f"invalid argument `texts`: expected a list of str, got {texts!r}")
    return _zenith.text_encode(os.fspath(tokenizer), list(texts), add_special_tokens)


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
