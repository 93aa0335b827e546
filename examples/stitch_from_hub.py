"""Zero-shot stitching from the Hub: the encoder of one relative model with the head of another, no training.

Both models must be relative classifiers built on the same parallel anchor set (same ``anchor_set_id``): e.g. a French
model and an English one trained on the same labels, anchor i of one being the translation of anchor i of the other.
The stitched model reads the ENCODER's language and predicts the HEAD's labels. It is scored on the sentiment test set
shipped with hf-relrep, next to the encoder's own model (what stitching should come close to).

    python examples/stitch_from_hub.py --encoder me/relrep-fr --head me/relrep-en --language fr --out stitched-fr-en

The same from the command line: ``hf-relrep stitch --encoder me/relrep-fr --head me/relrep-en --out stitched-fr-en``
then ``hf-relrep evaluate stitched-fr-en --dataset parallel-sentiment --language fr``.
"""

import argparse
from collections.abc import Sequence

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import stitch
from hf_relrep.data import load_parallel_sentiment
from hf_relrep.evaluation import predict
from hf_relrep.metrics import load_metric


def evaluate(model, tokenizer, texts: Sequence[str], labels: Sequence[int]) -> dict[str, float]:
    """Accuracy, weighted and macro F1, MAE (x100) of `model` on `texts`."""
    prefix = getattr(model.config, "anchor_text_prefix", "")  # e5 encoders expect "passage: "
    predictions = predict(model, tokenizer, texts, prefix=prefix)
    return load_metric().compute(predictions=predictions, references=list(labels))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="me/relrep-fr", help="Hub id (or folder) of the encoder's model.")
    parser.add_argument("--head", default="me/relrep-en", help="Hub id (or folder) of the head's model.")
    parser.add_argument("--language", default="fr", choices=("en", "fr"), help="The encoder's language.")
    parser.add_argument("--split", default="test", help="Split of the shipped parallel sentiment set.")
    parser.add_argument("--limit", type=int, default=None, help="Score only the first N examples.")
    parser.add_argument("--out", default=None, help="Save the stitched model (and tokenizer) to this folder.")
    args = parser.parse_args(argv)

    stitched = stitch(encoder_from=args.encoder, head_from=args.head)
    # The stitched model reads the encoder's inputs: use the encoder's tokenizer.
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    provenance = stitched.config.provenance
    print(f"encoder: {provenance['encoder']['source']} @ {provenance['encoder'].get('commit', 'local')}")
    print(f"head:    {provenance['head']['source']} @ {provenance['head'].get('commit', 'local')}")

    data = load_parallel_sentiment(language=args.language)[args.split]
    if args.limit is not None:
        data = data.select(range(min(args.limit, len(data))))
    encoder_model = AutoModelForSequenceClassification.from_pretrained(args.encoder)
    rows = {
        f"stitched ({args.language} encoder + head of {args.head})": evaluate(
            stitched, tokenizer, data["text"], data["label"]
        ),
        f"encoder's own model ({args.encoder})": evaluate(encoder_model, tokenizer, data["text"], data["label"]),
    }
    print(f"\nparallel sentiment, {args.language}, split {args.split!r}, {len(data)} examples (x100)")
    print(f"{'model':<60}{'accuracy':>10}{'F1 (w)':>10}{'MAE':>8}")
    for name, scores in rows.items():
        print(f"{name:<60}{scores['accuracy']:>10.2f}{scores['f1_weighted']:>10.2f}{scores['mae']:>8.2f}")

    if args.out:
        stitched.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
        print(f"\nsaved to {args.out}; push it with `hf-relrep push {args.out} me/relrep-stitched`")


if __name__ == "__main__":
    main()
