"""Our tokenizers against the rwkv package's own (rwkv==0.8.32, the [dev] oracle) on a varied generated corpus:
identical ids and exact round trips.

- World: rwkv.rwkv_tokenizer.TRIE_TOKENIZER (what rwkv.utils.PIPELINE uses for "rwkv_vocab_v20230424") over the
  rwkv_vocab_v20230424.txt the package ships, copied into a model folder.
- Hugging Face: rwkv.utils.PIPELINE with a tokenizer.json path (the 20B tokenizer's route), for the shipped model's
  byte-level tokenizer and a GPT-NeoX-style byte-level BPE trained here. rwkv 0.8.32 does not ship
  20B_tokenizer.json (only ChatRWKV's repository has it), so the trained BPE stands in for it; a test picks the real
  file up if a later package ships it.
"""
from __future__ import annotations

import functools
import shutil
import unicodedata
from pathlib import Path

import pytest
import tokenizer_corpus
from tokenizers import Tokenizer as HfRaw
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from rrwkv_trt.core.paths import SHIPPED_MODEL
from rrwkv_trt.runtime.tokenizer import HfTokenizer, Tokenizer, WorldTokenizer
from rrwkv_trt.runtime.world_vocab import read_world_vocab

rwkv_tokenizer = pytest.importorskip("rwkv.rwkv_tokenizer", reason="the rwkv package is the [dev] extra's oracle")
RWKV_DIR = Path(rwkv_tokenizer.__file__).parent
WORLD_VOCAB = RWKV_DIR / "rwkv_vocab_v20230424.txt"
CORPUS = tokenizer_corpus.corpus()


@functools.cache
def trie() -> rwkv_tokenizer.TRIE_TOKENIZER:
    return rwkv_tokenizer.TRIE_TOKENIZER(str(WORLD_VOCAB))


@functools.cache
def pipeline_for(path: str):
    """rwkv.utils.PIPELINE's tokenizer for a tokenizer.json (no model needed; rwkv.utils imports torch)."""
    pytest.importorskip("torch", reason="rwkv.utils imports torch")
    from rwkv.utils import PIPELINE

    return PIPELINE(None, path)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("world_model")
    shutil.copyfile(WORLD_VOCAB, folder / WORLD_VOCAB.name)  # a model folder carries its own vocabulary file
    return Tokenizer.from_dir(folder)


def test_world_vocab_parses_as_rwkv_does():
    assert read_world_vocab(WORLD_VOCAB) == trie().idx2token


@pytest.mark.parametrize("category", sorted(CORPUS))
def test_world_ids_and_round_trip(world, category):
    assert isinstance(world, WorldTokenizer)
    for text in CORPUS[category]:
        ids = world.encode(text)
        assert ids == trie().encode(text), text[:80]
        assert world.decode(ids) == text
        assert "".join(world.decode_stream(ids)) == text


def test_world_vocab_size_fits_world_models(world):
    assert world.vocab_size == 65529 and world.max_id == 65529
    world.check_fits(65536)  # the RWKV World models' vocab_size


def neox_style_bpe(folder: Path) -> Path:
    """A byte-level BPE laid out like the GPT-NeoX 20B tokenizer (NFC, ByteLevel without prefix space, BPE,
    ByteLevel decoder), trained on the corpus."""
    tok = HfRaw(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([t for texts in CORPUS.values() for t in texts], trainer)
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory) -> dict[str, Path]:
    files = {"byte_level": SHIPPED_MODEL / "tokenizer.json",
             "neox_style_bpe": neox_style_bpe(tmp_path_factory.mktemp("bpe"))}
    real_20b = RWKV_DIR / "20B_tokenizer.json"
    if real_20b.is_file():
        files["20B"] = real_20b
    return files


@pytest.mark.parametrize("name", ["byte_level", "neox_style_bpe", "20B"])
def test_hf_ids_and_round_trip(hf_files, name):
    if name not in hf_files:
        pytest.skip("rwkv 0.8.32 ships no 20B_tokenizer.json; neox_style_bpe stands in for it")
    ours, theirs = Tokenizer.from_file(hf_files[name]), pipeline_for(str(hf_files[name]))
    assert isinstance(ours, HfTokenizer)
    for texts in CORPUS.values():
        for text in texts:
            ids = ours.encode(text)
            assert ids == theirs.encode(text), text[:80]
            expected = text if name == "byte_level" else unicodedata.normalize("NFC", text)  # 20B normalises NFC
            assert ours.decode(ids) == expected
            assert "".join(ours.decode_stream(ids)) == expected
