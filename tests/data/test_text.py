"""Character data: reading, encoding (dtype, memory), the built-in corpus, splits, stream batching, errors."""
import tracemalloc

import numpy as np
import pytest

from rnnkit.data.text import (
    CharVocab,
    StreamBatcher,
    builtin_corpus,
    encode_text,
    eval_streams,
    load_corpus,
    read_texts,
    smallest_uint,
    split_ids,
)
from rnnkit.errors import UserError


def test_encode_roundtrip_unicode_and_sorted_vocab():
    text = "héllo wörld — 日本語 🙂\nhello"
    ids, vocab = encode_text(text)
    assert vocab.chars == "".join(sorted(set(text)))
    assert ids.dtype == np.uint8 and len(ids) == len(text)  # code points, not UTF-8 bytes
    assert vocab.decode(ids) == text
    assert vocab.decode(ids[3:7]) == text[3:7]


def test_smallest_dtype_grows_with_vocabulary():
    assert smallest_uint(256) == np.uint8
    assert smallest_uint(257) == np.uint16
    assert smallest_uint(65537) == np.uint32
    text = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300))
    ids, vocab = encode_text(text * 2)
    assert ids.dtype == np.uint16 and len(vocab) == 300
    assert vocab.decode(ids) == text * 2


def test_encoding_in_chunks_matches(monkeypatch):
    import rnnkit.data.text as t

    text = "abcdefg\u00e9\u4e00" * 50 + "z"
    ref_ids, ref_vocab = encode_text(text)
    monkeypatch.setattr(t, "_CHUNK_CHARS", 7)  # many chunks, boundaries inside repeats
    ids, vocab = encode_text(text)
    assert vocab == ref_vocab and np.array_equal(ids, ref_ids)


def test_large_corpus_memory_is_a_few_times_its_size(tmp_path):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghij klmnop\n", dtype=np.uint8)
    raw = letters[rng.integers(0, len(letters), 16_000_000)].tobytes()
    path = tmp_path / "big.txt"
    path.write_bytes(raw)
    tracemalloc.start()
    try:
        ids, vocab, _ = load_corpus([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ids) == len(raw) and ids.dtype == np.uint8
    assert peak < 4 * len(raw), f"peak {peak / 1e6:.1f} MB for a {len(raw) / 1e6:.1f} MB file"


def test_builtin_corpus_exists_and_is_stable():
    text = builtin_corpus()
    assert len(text) > 100_000
    assert text == builtin_corpus()
    ids, vocab, sources = load_corpus(None)
    assert "builtin" in sources[0] and len(ids) == len(text)


def test_folder_and_glob_join_documents_with_separator(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / ".hidden").write_text("nope", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.md").write_text("third", encoding="utf-8")
    text, sources = read_texts([tmp_path], separator="|")
    assert text == "first|second|third"
    assert len(sources) == 3
    text, _ = read_texts([str(tmp_path / "*.txt")], separator="|")
    assert text == "first|second"


def test_bom_is_dropped(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeffabc".encode("utf-8"))
    assert read_texts([p])[0] == "abc"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: (d / "empty.txt").write_bytes(b"") and None or d / "empty.txt", "is empty"),
        (lambda d: (d / "void").mkdir() or d / "void", "holds no files"),
        (lambda d: d / "*.nothing", "no file matches"),
    ],
)
def test_bad_paths_raise_clear_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        read_texts([make(tmp_path)])


def test_invalid_utf8_names_file_offset_and_can_be_replaced(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"ab\ncd\xffef")
    with pytest.raises(UserError) as err:
        read_texts([p])
    msg = str(err.value)
    assert "bad.txt" in msg and "byte offset 5" in msg and "line 2" in msg and "--replace-bad-bytes" in msg
    text, _ = read_texts([p], errors="replace")
    assert text == "ab\ncd\ufffdef"


def test_encode_with_unknown_characters_names_them():
    vocab = CharVocab("abc ")
    assert vocab.unknown("abxzx") == ["x", "z"]
    with pytest.raises(UserError, match=r"2 character\(s\).*'x', 'z'"):
        vocab.encode("a bxz", what="prime text")
    assert vocab.decode(vocab.encode("cab a")) == "cab a"


def test_split_is_contiguous_last_fraction():
    ids = np.arange(100)
    train, val = split_ids(ids, 0.1)
    assert np.array_equal(train, np.arange(90)) and np.array_equal(val, np.arange(90, 100))
    with pytest.raises(UserError):
        split_ids(ids, 1.0)


def test_stream_batcher_carries_streams_and_wraps():
    ids = np.arange(2 * 10 + 1)  # N = 21: 2 streams of L = 10, T = 3 -> 3 chunks
    b = StreamBatcher(ids, batch_size=2, seq_len=3)
    assert b.num_chunks == 3
    xs0, ys0, reset0 = b.batch(0)
    xs1, ys1, reset1 = b.batch(1)
    assert reset0 and not reset1
    assert xs0.tolist() == [[0, 1, 2], [10, 11, 12]]
    assert np.array_equal(ys0, xs0 + 1)
    assert xs1.tolist() == [[3, 4, 5], [13, 14, 15]]  # row b continues row b
    xs3, _, reset3 = b.batch(3)
    assert reset3 and np.array_equal(xs3, xs0)  # a new epoch starts over
    assert b.position(7) == (2, 1)


def test_batcher_too_small_says_numbers_and_what_to_lower():
    with pytest.raises(UserError) as err:
        StreamBatcher(np.zeros(100, np.uint8), batch_size=8, seq_len=16)
    msg = str(err.value)
    assert "100" in msg and "8 * 16 + 1 = 129" in msg and "--batch-size" in msg and "--seq-len" in msg


@pytest.mark.parametrize("n, streams, burn", [(2, 4, 3), (50, 4, 5), (101, 7, 10), (40, 3, 100)])
def test_eval_streams_score_every_target_once(n, streams, burn):
    ids = np.arange(n) % 200
    xs, ys, b = eval_streams(ids.astype(np.uint8), streams, burn)
    scored = ys >= 0
    assert scored.sum() == n - 1
    assert np.array_equal(np.sort(ys[scored]), np.sort(ids[1:]))
    # every scored target follows its input in the original sequence, and burn-in rows read real text
    assert np.all(ys[scored] == (xs[scored].astype(int) + 1) % 200)
    assert not scored[:, :b].any()
    for s in range(1, xs.shape[0]):
        assert np.all(np.diff(xs[s, : b + 1].astype(int)) % 200 == 1) if b else True
