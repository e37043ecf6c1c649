"""Character-level text data: read UTF-8 corpora, encode code points to small integers, split, batch.

    ids, vocab, sources = load_corpus(["book.txt", "notes/", "*.md"])   # or None: the built-in corpus
    train_ids, val_ids = split_ids(ids, val_fraction=0.1)            # contiguous: the last 10% validates
    batches = StreamBatcher(train_ids, batch_size=64, seq_len=128)    # char-rnn streams, truncated BPTT
    xs, ys, reset = batches.batch(step)                               # (B, T) ints; reset: new epoch

Encoding never builds Python lists of characters: text is turned into UTF-32 code points with NumPy, a
histogram gives the vocabulary, and a lookup table maps code points to ids in the smallest integer dtype.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError

DEFAULT_SEPARATOR = "\n\n"
"""Put between documents when several files are read (so no document runs into the next mid-line)."""

_CHUNK_CHARS = 1 << 20  # characters encoded per NumPy pass: bounds the temporary buffers (~4 MB UTF-32)


# -- reading ------------------------------------------------------------------------------------
def builtin_corpus() -> str:
    """The built-in corpus: the Python language reference shipped with the interpreter (``pydoc_data``).

    About 465,000 characters of English prose and code in CPython 3.11; nothing is downloaded and no
    text is stored in rnnkit. Topics are joined in sorted order so the corpus is the same on every run.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - only on stripped-down Python builds
        raise UserError(
            "the built-in corpus needs pydoc_data, which this Python does not ship; give a text file instead"
        ) from None
    return DEFAULT_SEPARATOR.join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def resolve_paths(specs: list[str | os.PathLike]) -> list[Path]:
    """Files named by ``specs``: a file, a folder (every non-hidden file under it, sorted) or a glob."""
    files: list[Path] = []
    for spec in specs:
        spec_str = os.fspath(spec)
        path = Path(spec_str)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UserError(f"folder {path} holds no files; put .txt files in it or give a file")
            files.extend(found)
        elif glob.has_magic(spec_str):
            found = sorted(Path(p) for p in glob.glob(spec_str, recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"no file matches {spec_str!r}; check the pattern")
            files.extend(found)
        else:
            raise UserError(f"{spec_str}: no such file or folder")
    return files


def read_text_file(path: str | os.PathLike, errors: str = "strict",
                   fix: str = "convert the file to UTF-8 or pass --replace-bad-bytes") -> str:
    """Decode one UTF-8 file (a leading BOM is dropped).

    ``errors="strict"`` raises UserError naming the file, byte offset and line of the first invalid
    byte, and ``fix``; ``errors="replace"`` turns bad bytes into U+FFFD instead.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if not raw:
        raise UserError(f"{path} is empty; give a file with text in it")
    try:
        text = raw.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"{path} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte offset {exc.start} (line {line}) "
            f"({exc.reason}); {fix}"
        ) from None
    if not text:
        raise UserError(f"{path} is empty; give a file with text in it")
    return text


def read_texts(specs, errors: str = "strict", separator: str = DEFAULT_SEPARATOR) -> tuple[str, list[str]]:
    """Read files/folders/globs into one string (documents joined by ``separator``) and their names.

    ``specs`` None or empty means the built-in corpus (its source is reported as ``"<builtin>"``).
    """
    if not specs:
        return builtin_corpus(), ["<builtin: Python language reference (pydoc_data)>"]
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    files = resolve_paths(list(specs))
    texts = [read_text_file(p, errors=errors) for p in files]
    return separator.join(texts), [str(p) for p in files]


# -- encoding -----------------------------------------------------------------------------------
def _code_points(text: str, start: int, stop: int) -> np.ndarray:
    """UTF-32 code points of ``text[start:stop]`` as uint32, without Python-level per-character work."""
    return np.frombuffer(text[start:stop].encode("utf-32-le"), dtype="<u4")


def smallest_uint(n: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids ``0 .. n-1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise ValueError(f"vocabulary of {n} is too large")


class CharVocab:
    """A sorted set of Unicode characters; id ``i`` is ``chars[i]``. Stored with a model as ``chars``."""

    def __init__(self, chars: str):
        if not chars:
            raise UserError("the vocabulary is empty: the corpus holds no characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be unique")
        self.chars = "".join(sorted(chars))
        self.codes_ = _code_points(self.chars, 0, len(self.chars))  # sorted uint32 code points
        self.dtype = smallest_uint(len(self.chars))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} chars)"

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The characters used in ``text`` (a histogram over code points, chunk by chunk)."""
        counts = np.zeros(0, dtype=np.int64)
        for start in range(0, len(text), _CHUNK_CHARS):
            c = np.bincount(_code_points(text, start, start + _CHUNK_CHARS))
            if len(c) > len(counts):
                c[: len(counts)] += counts
                counts = c
            else:
                counts[: len(c)] += c
        codes = np.flatnonzero(counts).astype("<u4")
        return cls(codes.tobytes().decode("utf-32-le"))

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` that are not in the vocabulary (each once, in order of appearance)."""
        codes = np.unique(_code_points(text, 0, len(text)))
        missing = codes[~np.isin(codes, self.codes_)]
        return [chr(int(c)) for c in missing]

    def drop_unknown(self, text: str) -> tuple[str, dict[str, int]]:
        """``(kept, unknown)``: ``text`` without the characters outside the vocabulary, and how many times
        each of those occurred (most frequent first). The lenient path of evaluate, score and the prime."""
        parts, counts = [], {}
        for start in range(0, len(text), _CHUNK_CHARS):
            codes = _code_points(text, start, start + _CHUNK_CHARS)
            known = np.isin(codes, self.codes_)
            if known.all():
                parts.append(text[start : start + _CHUNK_CHARS])
                continue
            bad, n = np.unique(codes[~known], return_counts=True)
            for code, k in zip(bad.tolist(), n.tolist()):
                counts[chr(code)] = counts.get(chr(code), 0) + k
            parts.append(codes[known].astype("<u4").tobytes().decode("utf-32-le"))
        return "".join(parts), dict(sorted(counts.items(), key=lambda ck: (-ck[1], ck[0])))

    def encode(self, text: str, what: str = "text", check: bool = True) -> np.ndarray:
        """Ids of ``text`` in the vocabulary's dtype; UserError naming any character not in it.

        ``check=False`` skips the membership test (only for text the vocabulary was built from).
        """
        out = np.empty(len(text), dtype=self.dtype)
        lut_size = int(self.codes_[-1]) + 1
        lut = np.zeros(lut_size, dtype=self.dtype)
        lut[self.codes_] = np.arange(len(self), dtype=self.dtype)
        for start in range(0, len(text), _CHUNK_CHARS):
            codes = _code_points(text, start, start + _CHUNK_CHARS)
            if not check:
                out[start : start + len(codes)] = lut[codes]
                continue
            ok = codes < lut_size
            ok[ok] = self.codes_[lut[codes[ok]]] == codes[ok]
            if not ok.all():
                bad = self.unknown(text)
                shown = ", ".join(repr(c) for c in bad[:10]) + (" ..." if len(bad) > 10 else "")
                raise UserError(
                    f"the {what} has {len(bad)} character(s) the model never saw in training: {shown}; "
                    "remove or replace them"
                )
            out[start : start + len(codes)] = lut[codes]
        return out

    def decode(self, ids) -> str:
        """The string for a sequence of ids."""
        ids = np.asarray(ids)
        return self.codes_[ids.astype(np.intp, copy=False)].astype("<u4").tobytes().decode("utf-32-le")


def encode_text(text: str) -> tuple[np.ndarray, CharVocab]:
    """``(ids, vocab)`` for a corpus: ids in the smallest unsigned dtype for its vocabulary."""
    vocab = CharVocab.from_text(text)
    return vocab.encode(text, check=False), vocab


def load_corpus(specs=None, errors: str = "strict", separator: str = DEFAULT_SEPARATOR):
    """Read and encode a corpus: ``(ids, vocab, sources)``. ``specs`` None: the built-in corpus."""
    text, sources = read_texts(specs, errors=errors, separator=separator)
    ids, vocab = encode_text(text)
    return ids, vocab, sources


# -- splitting and batching -----------------------------------------------------------------------
def split_ids(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split: the first ``1 - val_fraction`` trains, the rest validates (views, no copy).

    The split point is ``int(N * (1 - val_fraction))``, as in nanoGPT's ``prepare.py`` for tiny-shakespeare.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


class StreamBatcher:
    """char-rnn batching: ``batch_size`` parallel streams, read ``seq_len`` characters at a time.

    The ``N`` ids are cut into ``B`` contiguous streams of ``L = (N - 1) // B`` characters; chunk ``k``
    of step ``s`` is columns ``[k*T, (k+1)*T)`` with ``k = s % num_chunks``. Row ``b`` of one batch
    continues row ``b`` of the previous batch, so the hidden state is carried across batches
    (truncated BPTT); ``reset`` is True at the first chunk of each epoch, when streams jump back to their
    start and the state must be zeroed. The position is a pure function of the step, so resuming at step
    ``s`` reads exactly what an uninterrupted run would.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, what: str = "training split"):
        B, T = int(batch_size), int(seq_len)
        if B < 1 or T < 1:
            raise UserError(f"batch size and sequence length must be at least 1, got {B} and {T}")
        N = len(ids)
        need = B * T + 1
        if N < need:
            raise UserError(
                f"the {what} has {N:,} characters but one batch needs batch_size * seq_len + 1 = "
                f"{B} * {T} + 1 = {need:,}; lower --batch-size or --seq-len, or give more text"
            )
        self.batch_size, self.seq_len = B, T
        L = (N - 1) // B
        self.num_chunks = L // T
        self.xs_ = ids[: B * L].reshape(B, L)  # views of ids: no copy of the corpus
        self.ys_ = ids[1 : B * L + 1].reshape(B, L)

    @property
    def chars_per_epoch(self) -> int:
        return self.num_chunks * self.batch_size * self.seq_len

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, chunk)`` read at ``step`` (both from 0)."""
        return divmod(int(step), self.num_chunks)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(xs, ys, reset)`` for ``step``: int arrays (B, T), targets are the next characters."""
        _, k = self.position(step)
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return (
            self.xs_[:, cols].astype(np.intp),
            self.ys_[:, cols].astype(np.intp),
            k == 0,
        )


def eval_streams(ids: np.ndarray, num_streams: int, burn_in: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Layout for scoring every character of ``ids`` in parallel streams, each warmed up on real text.

    Target positions ``1 .. N-1`` are divided into ``S`` contiguous spans of ``L`` targets. Row ``s`` reads
    inputs from ``burn_in`` characters before its span (the burn-in is fed, not scored) so its state
    knows the preceding text, as if the whole split were read in one sequence. Row 0 has no preceding
    text: the caller resets its state after the burn-in. Returns ``(xs, ys, burn)`` with xs/ys (S, burn+L)
    int arrays and ys = -1 where nothing is scored (burn-in and padding after the end).
    """
    N = len(ids)
    if N < 2:
        raise UserError(f"need at least 2 characters to evaluate, got {N}")
    S = max(1, min(int(num_streams), (N - 1) // max(1, burn_in) or 1))
    L = -(-(N - 1) // S)  # ceil
    burn = min(int(burn_in), L * (S - 1))  # row s >= 1 starts at s*L - burn >= 0
    starts = np.arange(S) * L  # input index of each span's first scored prediction
    cols = np.arange(-burn, L)
    pos = starts[:, None] + cols[None, :]  # (S, burn+L) input positions
    valid_in = (pos >= 0) & (pos < N - 1)
    ids = np.asarray(ids)
    xs = np.where(valid_in, ids[np.clip(pos, 0, N - 2)], 0).astype(ids.dtype)
    ys = np.where(valid_in, ids[np.clip(pos + 1, 1, N - 1)].astype(np.int32), np.int32(-1))
    ys[:, :burn] = -1
    return xs, ys, burn
