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

import contextlib
import csv
import sys
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


def _check_header_present(filepath: str, header: list[str], separator: str) -> None:
    """A first line without any ``field:type`` column is data, not a header: say so."""
    if not any(":" in column for column in header):
        raise AtomicFileError(
            f"{filepath}: line 1 ({separator.join(header)[:80]!r}) is not a header: atomic files start with a "
            f"header line naming every column as `field:type`, e.g. "
            f"{separator.join(['user_id:token', 'item_id:token', 'timestamp:float'])!r} (types: {_VALID_TYPES}). "
            f"Add that line at the top of the file."
        )


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


@contextlib.contextmanager
def _no_csv_field_limit():
    """pandas' python engine refuses cells over ``csv.field_size_limit()`` (128 KiB), e.g. a
    100k-token token_seq cell; lift the limit while reading (long cells are capped later)."""
    previous = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _check_field_counts(filepath: str, separator: str, encoding: str, expected: int) -> None:
    """Every data line must have as many fields as the header.

    pandas raises on a line with too *many* fields but silently fills a line with too *few*
    with NaN, which would shift nothing but quietly blank its last columns; both are reported
    here with their line numbers. Blank lines (pandas skips them) and lines holding a quote
    character (a quoted cell may contain the separator; pandas parses those) are not counted.
    """
    bad: list[tuple[int, int]] = []
    n_bad = 0
    try:
        with open(filepath, "r", encoding=encoding, newline="") as f:
            f.readline()
            for number, line in enumerate(f, start=2):
                line = line.rstrip("\r\n")
                if not line or '"' in line:
                    continue
                n_fields = line.count(separator) + 1
                if n_fields != expected:
                    n_bad += 1
                    if len(bad) < 5:
                        bad.append((number, n_fields))
    except UnicodeDecodeError:
        raise _encoding_error(filepath, encoding) from None
    if n_bad:
        first_line, first_count = bad[0]
        where = ", ".join(f"line {n}: {c}" for n, c in bad) + (", ..." if n_bad > len(bad) else "")
        raise AtomicFileError(
            f"{filepath}: line {first_line} has {first_count} fields but the header has {expected} "
            f"({n_bad} line(s) with a wrong field count; {where}). Every line must have exactly one "
            f"value per header column, separated by `field_separator` ({separator!r}); leave a cell "
            f"empty (two separators in a row) for a missing value."
        )


#: Longest token_seq cell kept when ``seq_len`` does not name the field: RecBole pads every
#: cell of a sequence field to the longest one, so a single runaway cell (e.g. a whole review
#: as tokens) would otherwise cost ``n_rows x its length`` memory.
DEFAULT_TOKEN_SEQ_CAP = 512


def _cap_sequences(filepath: str, field: str, ftype: FeatureType, sequences: list, cap: Optional[int], logger) -> tuple[list, int]:
    """Truncate sequences to ``cap`` (``None``: no cap); log how many cells were cut."""
    max_len = max(map(len, sequences), default=0)
    if cap is None or max_len <= cap:
        return sequences, max_len
    n_cut = sum(len(seq) > cap for seq in sequences)
    if logger is not None:
        logger.warning(
            f"{filepath}: field {field!r} ({ftype.value}): {n_cut} cell(s) longer than {cap} entries were "
            f"truncated to {cap} (longest: {max_len}). Set the config key `seq_len: {{{field}: N}}` to keep more."
        )
    return [seq[:cap] for seq in sequences], cap


def _invalid_timestamps(filepath: str, field: str, values: pd.Series, logger) -> np.ndarray:
    """Rows whose time value is missing / NaN / infinite (to drop); warn about negative ones."""
    array = values.to_numpy(dtype=np.float64)
    invalid = ~np.isfinite(array)
    n_negative = int((array[~invalid] < 0).sum())
    if n_negative and logger is not None:
        logger.warning(
            f"{filepath}: {n_negative} interaction(s) have a negative {field!r}; they are kept and sort "
            f"before every other one. If negative values mean 'unknown', drop them with the config key "
            f"`val_interval: {{{field}: \"[0,inf)\"}}`."
        )
    return invalid


def _line_list(rows: np.ndarray, limit: int = 5) -> str:
    lines = ", ".join(str(int(r) + 2) for r in rows[:limit])
    return lines + (", ..." if len(rows) > limit else "")


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
    _check_header_present(filepath, header, separator)
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

    _check_field_counts(filepath, separator, encoding, len(header))
    try:
        # Everything is read as text first so that a bad float cell can be reported by line.
        with _no_csv_field_limit():
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
    if len(df) == 0:
        if source == FeatureSource.INTERACTION:
            raise AtomicFileError(
                f"{filepath}: the file has a header but no interaction lines. Add one line per "
                f"interaction below the header (or point `data_path` / `dataset` at the right file)."
            )
        self.logger.warning(f"{filepath}: the file has a header but no data lines; it adds no features.")

    seq_separator = self.config["seq_separator"]
    configured_seq_len = self.config["seq_len"] or {}
    time_field = self.config["TIME_FIELD"] if source == FeatureSource.INTERACTION else None
    drop = np.zeros(len(df), dtype=bool)
    for field in columns:
        ftype = self.field2type[field]
        if ftype == FeatureType.FLOAT:
            df[field] = _to_float(filepath, field, df[field])
            if field == time_field:
                invalid = _invalid_timestamps(filepath, field, df[field], self.logger)
                if invalid.any():
                    self.logger.warning(
                        f"{filepath}: dropped {int(invalid.sum())} of {len(df)} interaction(s) with a missing, "
                        f"NaN or infinite {field!r} (lines {_line_list(np.flatnonzero(invalid))}): they cannot "
                        f"be placed in time. Fill those cells to keep them."
                    )
                    drop |= invalid
        if not ftype.value.endswith("seq"):
            continue
        sequences = _split_sequence(filepath, field, ftype, df[field], seq_separator)
        if field in configured_seq_len:
            cap = int(configured_seq_len[field])
        else:
            cap = DEFAULT_TOKEN_SEQ_CAP if ftype == FeatureType.TOKEN_SEQ else None
        sequences, self.field2seqlen[field] = _cap_sequences(filepath, field, ftype, sequences, cap, self.logger)
        df[field] = pd.Series(sequences, index=df.index, dtype=object)
    if drop.any():
        df = df.loc[~drop].reset_index(drop=True)
    df = _drop_duplicate_ids(self, filepath, source, df)
    return AtomicFrame(df)


def _drop_duplicate_ids(self, filepath: str, source, df: pd.DataFrame) -> pd.DataFrame:
    """Keep the first row of every user / item id in a ``.user`` / ``.item`` file (RecBole does
    the same later, silently); log how many rows were dropped and which ids repeat."""
    id_field = {FeatureSource.ITEM: self.iid_field, FeatureSource.USER: self.uid_field}.get(source)
    if id_field is None or id_field not in df:
        return df
    duplicated = df.duplicated(subset=[id_field], keep="first").to_numpy()
    if duplicated.any():
        ids = pd.unique(df.loc[duplicated, id_field])
        shown = ", ".join(map(repr, ids[:5])) + (", ..." if len(ids) > 5 else "")
        self.logger.warning(
            f"{filepath}: dropped {int(duplicated.sum())} duplicate row(s) of {id_field!r} (lines "
            f"{_line_list(np.flatnonzero(duplicated))}; ids {shown}): the first row of each id is kept. "
            f"Merge or remove the repeated rows to silence this."
        )
        df = df.loc[~duplicated].reset_index(drop=True)
    return df


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
