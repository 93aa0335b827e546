"""Stitch two relative models from the Hub, score the result, and push it with its scores in the model card.

The pushed repository holds the stitched weights (safetensors), the config with the anchors and the provenance of both
parts (Hub ids, commits, content hashes), the encoder's tokenizer, and hf-relrep's model card with a ``model-index``
of the scores. Anyone can then load it with plain transformers once ``hf_relrep`` is imported.

    python examples/push_stitched_model.py --encoder me/relrep-fr --head me/relrep-en --language fr \\
        --repo me/relrep-fr-encoder-en-head --private

Log in first (``hf auth login``) or set ``HF_TOKEN``. The same from the command line:
``hf-relrep stitch --encoder me/relrep-fr --head me/relrep-en --out stitched --push me/relrep-fr-encoder-en-head``.
"""

import argparse
from collections.abc import Sequence

import torch
from huggingface_hub import EvalResult
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import stitch
from hf_relrep.data import load_parallel_sentiment
from hf_relrep.evaluation import predict
from hf_relrep.metrics import load_metric


METRIC_NAMES = {"accuracy": "Accuracy", "f1_weighted": "F1 (weighted)", "mae": "MAE between labels"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="me/relrep-fr", help="Hub id (or folder) of the encoder's model.")
    parser.add_argument("--head", default="me/relrep-en", help="Hub id (or folder) of the head's model.")
    parser.add_argument("--language", default="fr", choices=("en", "fr"), help="The encoder's language.")
    parser.add_argument("--repo", default="me/relrep-fr-encoder-en-head", help="Hub repository to push to.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--limit", type=int, default=None, help="Score only the first N test examples.")
    args = parser.parse_args(argv)

    stitched = stitch(encoder_from=args.encoder, head_from=args.head)
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)  # the encoder's language, the encoder's tokenizer

    test = load_parallel_sentiment(language=args.language)["test"]
    if args.limit is not None:
        test = test.select(range(min(args.limit, len(test))))
    prefix = getattr(stitched.config, "anchor_text_prefix", "")  # e5 encoders expect "passage: "
    predictions = predict(stitched, tokenizer, test["text"], prefix=prefix)
    scores = load_metric().compute(predictions=predictions, references=test["label"])
    print(", ".join(f"{METRIC_NAMES[key]} {scores[key]:.2f}" for key in METRIC_NAMES))

    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type="parallel-sentiment",
            dataset_name=f"hf-relrep parallel EN/FR sentiment ({args.language})",
            dataset_split="test",
            metric_type=key,
            metric_name=name,
            metric_value=float(scores[key]),
        )
        for key, name in METRIC_NAMES.items()
    ]
    commit = stitched.push_to_hub(
        args.repo,
        tokenizer=tokenizer,
        private=args.private or None,
        card_kwargs={"language": args.language, "eval_results": results},
    )
    print(f"pushed: {commit.commit_url}")

    # Anyone can now load it with the Auto classes (hf_relrep imported); it is the same model.
    reloaded = AutoModelForSequenceClassification.from_pretrained(args.repo)
    batch = tokenizer(test["text"][:8], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        same = torch.equal(reloaded(**batch).logits, stitched(**batch).logits)
    print(f"reloaded {args.repo} as {type(reloaded).__name__}; same logits: {same}")


if __name__ == "__main__":
    main()
