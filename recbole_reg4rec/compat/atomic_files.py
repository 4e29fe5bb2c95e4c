"""Loading RecBole atomic files on pandas 3, with errors that say what is wrong and where.

RecBole 1.2.1's ``Dataset._load_feat`` / ``_fill_nan`` rely on two pandas-2 behaviours that
pandas 3 removed:

* ``df[col].fillna(..., inplace=True)`` no longer writes through to ``df`` (copy-on-write), so
  empty token_seq / float_seq cells stay NaN and ``str.split`` later fails on a float;
* ``Series.agg(len)`` now returns the length of the Series instead of one length per cell,
  which breaks every token_seq field during id remapping.

We replace the two loader methods with our own (same semantics, clearer errors) and hand
RecBole its frames as :class:`AtomicFrame`, a DataFrame subclass whose columns answer
``agg(len)`` cell by cell. Pandas itself is not patched: only frames RecBole loads through us
behave this way.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import pandas as pd
from recbole.utils import FeatureSource, FeatureType, set_color

_VALID_TYPES = ", ".join(t.value for t in FeatureType)
# Cells a float column may use to say "missing" (filled with the column mean, as RecBole does).
_MISSING_FLOAT_MARKERS = ["", "nan", "na", "n/a", "null", "none"]


class AtomicFileError(ValueError):
    """An atomic file (``.inter`` / ``.item`` / ``.user`` ...) cannot be read as written."""


class _AtomicSeries(pd.Series):
    """A column of an :class:`AtomicFrame`: ``agg(len)`` gives per-cell lengths (pandas-2 meaning)."""

    @property
    def _constructor(self):
        return _AtomicSeries

    @property
    def _constructor_expanddim(self):
        return AtomicFrame

    def aggregate(self, func=None, axis=0, *args, **kwargs):
        if func is len:
            return self.map(len)
        return super().aggregate(func, axis, *args, **kwargs)

    agg = aggregate


class AtomicFrame(pd.DataFrame):
    """DataFrame of an atomic file whose columns are :class:`_AtomicSeries`."""

    @property
    def _constructor(self):
        return AtomicFrame

    @property
    def _constructor_sliced(self):
        return _AtomicSeries


def _encoding_error(filepath: str, encoding: str) -> AtomicFileError:
    """Find the first line that does not decode and say how to fix it."""
    with open(filepath, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return AtomicFileError(
                    f"{filepath}: line {number} is not valid {encoding} ({err.reason} at column "
                    f"{err.start + 1}). Re-encode the file as {encoding}, or set the config key "
                    f"`encoding` to the file's encoding (e.g. latin-1)."
                )
    return AtomicFileError(f"{filepath}: not valid {encoding}; set the config key `encoding`.")


def _read_header(filepath: str, separator: str, encoding: str) -> list[str]:
    try:
        with open(filepath, "r", encoding=encoding) as f:
            head = f.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise _encoding_error(filepath, encoding) from None
    if not head.strip():
        raise AtomicFileError(
            f"{filepath}: the file is empty or its first line is blank. The first line must be a header "
            f"naming every column as `field:type` (types: {_VALID_TYPES})."
        )
    return head.split(separator)


def _parse_header_column(filepath: str, column: str) -> tuple[str, FeatureType]:
    field, sep, ftype = column.partition(":")
    if not sep or not field:
        raise AtomicFileError(
            f"{filepath}: header column {column!r} is not of the form `field:type`. The first line must "
            f"be a header naming every column as `field:type` (types: {_VALID_TYPES})."
        )
    try:
        return field, FeatureType(ftype)
    except ValueError:
        raise AtomicFileError(
            f"{filepath}: header column {column!r} has unknown type suffix {ftype!r}; "
            f"use one of: {_VALID_TYPES}."
        ) from None


def _to_float(filepath: str, field: str, column: pd.Series) -> pd.Series:
    """Convert a str column to float64; name the first non-numeric cell (line numbers are 1-based)."""
    missing = column.isna() | column.str.strip().str.lower().isin(_MISSING_FLOAT_MARKERS)
    values = pd.to_numeric(column.where(~missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AtomicFileError(
            f"{filepath}: line {row + 2}, field {field!r} (float) holds the non-numeric value "
            f"{column.iloc[row]!r} ({int(bad.sum())} such cells in all). Fix or blank those cells "
            f"(blank float cells are filled with the column mean), or declare the field as `token`."
        )
    return values.astype(np.float64)


def _split_sequence(filepath: str, field: str, ftype: FeatureType, column: pd.Series, separator: str) -> list:
    cells = column.fillna("").to_numpy()
    if ftype == FeatureType.TOKEN_SEQ:
        return [np.array([t for t in cell.split(separator) if t]) for cell in cells]
    out = []
    for row, cell in enumerate(cells):
        try:
            out.append(np.array([float(t) for t in cell.split(separator) if t], dtype=np.float64))
        except ValueError:
            raise AtomicFileError(
                f"{filepath}: line {row + 2}, field {field!r} (float_seq) holds a non-numeric entry in "
                f"{cell[:80]!r}. Entries must be numbers separated by `seq_separator` "
                f"({separator!r})."
            ) from None
    return out


def load_feat(self, filepath: str, source) -> Optional[pd.DataFrame]:
    """Replacement for ``recbole.data.dataset.Dataset._load_feat`` (same contract).

    Reads the atomic file at ``filepath`` keeping the columns selected by ``load_col`` /
    ``unload_col``, records each field's type / source / sequence length on ``self`` and returns
    an :class:`AtomicFrame` (token fields as str, float fields as float64, sequence fields as
    one numpy array per cell), or ``None`` if no column is selected.
    """
    self.logger.debug(set_color(f"Loading feature from [{filepath}] (source: [{source}]).", "green"))
    load_col, unload_col = self._get_load_and_unload_col(source)
    if load_col == set():
        return None

    separator = self.config["field_separator"]
    encoding = self.config["encoding"] or "utf-8"
    header = _read_header(filepath, separator, encoding)
    columns, usecols = [], []
    for column in header:
        field, ftype = _parse_header_column(filepath, column)
        if load_col is not None and field not in load_col:
            continue
        if unload_col is not None and field in unload_col:
            continue
        if isinstance(source, FeatureSource) or source != "link":
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2
        columns.append(field)
        usecols.append(column)
    if not columns:
        self.logger.warning(f"No columns has been loaded from [{source}]")
        return None

    try:
        # Everything is read as text first so that a bad float cell can be reported by line.
        df = pd.read_csv(
            filepath, delimiter=separator, usecols=usecols, dtype=str, encoding=encoding,
            engine="python", keep_default_na=False, na_values=[""],
        )
    except UnicodeDecodeError:
        raise _encoding_error(filepath, encoding) from None
    except pd.errors.ParserError as err:
        raise AtomicFileError(
            f"{filepath}: {err}. Every line must have as many `field_separator`-separated "
            f"({separator!r}) columns as the header."
        ) from None
    except ValueError as err:  # e.g. usecols naming a column the header lacks
        raise AtomicFileError(f"{filepath}: {err}") from None
    df = df[usecols]
    df.columns = columns

    seq_separator = self.config["seq_separator"]
    configured_seq_len = self.config["seq_len"] or {}
    for field in columns:
        ftype = self.field2type[field]
        if ftype == FeatureType.FLOAT:
            df[field] = _to_float(filepath, field, df[field])
        if not ftype.value.endswith("seq"):
            continue
        sequences = _split_sequence(filepath, field, ftype, df[field], seq_separator)
        max_seq_len = max(map(len, sequences), default=0)
        if field in configured_seq_len:
            seq_len = configured_seq_len[field]
            sequences = [seq[:seq_len] for seq in sequences]
            self.field2seqlen[field] = min(seq_len, max_seq_len)
        else:
            self.field2seqlen[field] = max_seq_len
        df[field] = pd.Series(sequences, index=df.index, dtype=object)
    return AtomicFrame(df)


def fill_nan(self) -> None:
    """Replacement for ``Dataset._fill_nan``: token → 0 (``[PAD]``), float → column mean,
    sequence → empty array. Assigns columns instead of relying on in-place ``fillna``."""
    self.logger.debug(set_color("Filling nan", "green"))
    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


def install() -> None:
    """Route RecBole's Dataset through the loaders above (idempotent)."""
    from recbole.data.dataset import Dataset

    Dataset._load_feat = load_feat
    Dataset._fill_nan = fill_nan
