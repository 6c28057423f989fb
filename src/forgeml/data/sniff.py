"""How a delimited text file is written: its encoding (UTF-8, UTF-8/UTF-16 with a BOM, UTF-16 without one, else
Windows-1252/Latin-1), its delimiter (comma, semicolon, tab, pipe) and its decimal mark, from the file's first bytes.
Binary content is refused with a clear message instead of a parser error."""
from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path

from forgeml.errors import DataError

HEAD_BYTES = 1 << 16
DELIMITERS = (",", ";", "\t", "|")
SEP_NAMES = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|", "space": " "}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}


def separator(value: str | None) -> str | None:
    """A --sep / data.sep value -> the delimiter (None: sniff); names (tab, semicolon...) and one character."""
    if value is None:
        return None
    sep = SEP_NAMES.get(value.lower(), value)
    if sep is not None and len(sep) != 1:
        raise ValueError(f"the separator must be one character or one of {', '.join(SEP_NAMES)}; got {value!r}")
    return sep


def encoding_name(value: str | None) -> str | None:
    """A --encoding / data.encoding value -> a Python codec name (None: detect); an unknown name is refused."""
    if value is None or value.lower() == "auto":
        return None
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}; use auto, utf-8, utf-8-sig, utf-16, latin-1, cp1252, ...") from None


def detect_encoding(head: bytes) -> str:
    """From the first bytes: a BOM, UTF-16 without one (NUL in every other byte), UTF-8, else cp1252 / latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4 and len(head) == HEAD_BYTES:  # a character cut at the end of the window
            return "utf-8"
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def check_text(text: str, path: Path, encoding: str) -> None:
    fmt = path.suffix.lower()[1:]
    what = f"{path} does not look like a {fmt} file"
    if "\x00" in text:
        raise DataError(f"{what}: it holds NUL bytes (binary data); give a text {fmt} file, or a .parquet file")
    if text:
        control = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r") or 0x7F <= ord(ch) < 0xA0)
        if control / len(text) > 0.05:
            raise DataError(f"{what}: {control / len(text):.0%} of its first characters are control characters "
                            f"(binary data, or not {encoding} text); give a text {fmt} file (--encoding to name its "
                            "encoding), or a .parquet file")


def fields_per_line(lines: list[str], sep: str) -> list[int]:
    try:
        return [len(row) for row in csv.reader(lines, delimiter=sep)]
    except csv.Error:
        return []


def detect_delimiter(text: str, default: str) -> str:
    """The delimiter that splits the header and the most lines into the same number (> 1) of fields."""
    lines = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the window may cut the last line
    best, best_score = default, (0.0, 0)
    for sep in DELIMITERS:
        counts = fields_per_line(lines, sep)
        if not counts or counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = sep, score
    return best


def detect_decimal(text: str, sep: str) -> str:
    """',' when the cells hold decimal commas ("3,5") more often than decimal points (never with a comma separator)."""
    if sep == ",":
        return "."
    cells = [c.strip().strip('"') for ln in text.splitlines()[1:200] for c in ln.split(sep)]
    commas = sum(bool(re.fullmatch(r"[+-]?\d+,\d+", c)) for c in cells)
    points = sum(bool(re.fullmatch(r"[+-]?\d+\.\d+", c)) for c in cells)
    return "," if commas > points else "."


def sniff(path: Path, sep: str | None, encoding: str | None, default_sep: str) -> dict:
    """How to read ``path``: {"sep", "encoding", "decimal"}; given values are kept, the others detected."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    encoding = encoding or detect_encoding(head)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")  # sniffing only: the reader decodes strictly
    check_text(text, path, encoding)
    sep = sep or detect_delimiter(text, default_sep)
    return {"sep": sep, "encoding": encoding, "decimal": detect_decimal(text, sep)}


def decode_error(path: Path, encoding: str, exc: UnicodeError) -> DataError:
    return DataError(f"could not read {path} as {encoding} text ({str(exc).splitlines()[0][:120]}); give its encoding "
                     "with --encoding (e.g. latin-1, cp1252, utf-16) or data.encoding")

