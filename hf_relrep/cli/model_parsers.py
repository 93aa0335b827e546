"""The usage of the subcommands on saved models: ``stitch`` two relative models, ``push`` one to the Hub, ``evaluate``
one. Their implementation is `hf_relrep.cli.model_commands`, imported only when one of them runs."""

import argparse
from typing import Any

from .base import PARALLEL_SENTIMENT, HelpFormatter, add_debug, set_handler


_COMMANDS = "hf_relrep.cli.model_commands"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress bars.")
    add_debug(parser, default=argparse.SUPPRESS)
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=None,
        help="Hub token (default: the HF_TOKEN variable or the token saved by `hf auth login`).",
    )


def _add_stitch_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stitch",
        help="Combine the encoder side of one relative model with the head of another (no training).",
        formatter_class=HelpFormatter,
        description=(
            "Zero-shot stitching: the backbone, pooling, anchors and normalization of --encoder with the classification\n"
            "head and labels of --head. Both must be relative models built on the same parallel anchor set\n"
            "(same anchor_set_id). The result is saved to --out with the ENCODER's tokenizer (the stitched model reads\n"
            "the encoder's language) and a model card naming both sources; --push also uploads it."
        ),
        epilog=(
            "example:\n"
            "  hf-relrep stitch --encoder me/relrep-fr --head me/relrep-en --out stitched-fr-en \\\n"
            "      --push me/relrep-fr-encoder-en-head --private"
        ),
    )
    parser.add_argument(
        "--encoder",
        metavar="PATH_OR_ID",
        required=True,
        help="Relative model (folder or Hub id) giving the encoder side.",
    )
    parser.add_argument(
        "--head", metavar="PATH_OR_ID", required=True, help="Relative model (folder or Hub id) giving the head."
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="Folder to save the stitched model in (must be new or empty)."
    )
    parser.add_argument(
        "--encoder-revision", metavar="REV", default=None, help="Hub revision (branch, tag, commit) of --encoder."
    )
    parser.add_argument(
        "--head-revision", metavar="REV", default=None, help="Hub revision (branch, tag, commit) of --head."
    )
    parser.add_argument(
        "--tokenizer",
        metavar="PATH_OR_ID",
        default=None,
        help="Tokenizer to save instead of the encoder source's (folder or Hub id).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace an earlier stitched model in --out once the new one is complete; other files are kept.",
    )
    parser.add_argument("--push", metavar="REPO", default=None, help="Also push the stitched model to this Hub repo.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the --push repo as private.")
    _add_common(parser)
    set_handler(parser, f"{_COMMANDS}:run_stitch")


def _add_push_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "push",
        help="Push a saved relative model (and its tokenizer) to the Hub with hf-relrep's model card.",
        formatter_class=HelpFormatter,
        description=(
            "Upload a relative model saved with save_pretrained (or by `hf-relrep stitch`) in one commit: safetensors\n"
            "weights, config with anchors, the tokenizer when the folder has one, and a model card rendered by\n"
            "hf-relrep (provenance of stitched models included). The repository is created when missing; if it\n"
            "already has a card, only hf-relrep's section and metadata keys are replaced. A README.md in FOLDER is\n"
            "not uploaded: the card is rendered again for REPO."
        ),
        epilog="example:\n  hf-relrep push stitched-fr-en me/relrep-fr-encoder-en-head --private --message 'First upload'",
    )
    parser.add_argument("folder", metavar="FOLDER", help="Folder of the saved relative model.")
    parser.add_argument("repo", metavar="REPO", help="Hub repository id, namespace/name.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repository as private.")
    parser.add_argument("--revision", metavar="BRANCH", default=None, help="Branch to push to (created if missing).")
    parser.add_argument("--message", metavar="MSG", default=None, help="Commit message.")
    _add_common(parser)
    set_handler(parser, f"{_COMMANDS}:run_push")


def _add_evaluate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="Score a sequence classifier on a dataset split: accuracy, F1 (weighted, macro), MAE, all x100.",
        formatter_class=HelpFormatter,
        description=(
            f"Run a sequence classifier (folder or Hub id, with its tokenizer) on one split and score it with\n"
            f"hf-relrep's metric (hf_relrep.metrics.load_metric). --dataset is {PARALLEL_SENTIMENT!r} (the English/\n"
            "French sentiment set shipped with hf-relrep; choose the text with --language), or a local .csv, .tsv,\n"
            ".json, .jsonl or .parquet file (which is the split), or a folder of such files named by split.\n"
            "Labels are class ids, or label names of the model (e.g. 'positive')."
        ),
        epilog=(
            "examples:\n"
            f"  hf-relrep evaluate stitched-fr-en --dataset {PARALLEL_SENTIMENT} --language fr --json scores.json\n"
            "  hf-relrep evaluate me/relrep-en --dataset reviews.jsonl --text-column review --label-column stars"
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="Model folder or Hub id.")
    parser.add_argument(
        "--dataset", metavar="NAME_OR_PATH", required=True, help=f"{PARALLEL_SENTIMENT!r}, or a local file or folder."
    )
    parser.add_argument("--split", metavar="NAME", default="test", help="Split to score (default: %(default)s).")
    parser.add_argument(
        "--language", choices=("en", "fr"), default=None, help=f"Text language of {PARALLEL_SENTIMENT!r}."
    )
    parser.add_argument(
        "--text-column", metavar="NAME", default="text", help="Column holding the texts (default: %(default)s)."
    )
    parser.add_argument(
        "--label-column", metavar="NAME", default="label", help="Column holding the labels (default: %(default)s)."
    )
    parser.add_argument(
        "--batch-size", metavar="N", type=int, default=64, help="Texts per forward pass (default: %(default)s)."
    )
    parser.add_argument(
        "--max-length",
        metavar="N",
        type=int,
        default=None,
        help="Truncation length (default: what the model accepts).",
    )
    parser.add_argument("--revision", metavar="REV", default=None, help="Hub revision of MODEL.")
    parser.add_argument(
        "--tokenizer",
        metavar="PATH_OR_ID",
        default=None,
        help="Tokenizer to use instead of MODEL's (folder or Hub id).",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        default=None,
        help="Device to run the model on (default: cuda when available, else cpu).",
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="Also write the scores to this JSON file.")
    _add_common(parser)
    set_handler(parser, f"{_COMMANDS}:run_evaluate")


def add_model_commands(subparsers: Any) -> None:
    """The stitch, push and evaluate subcommands."""
    _add_stitch_parser(subparsers)
    _add_push_parser(subparsers)
    _add_evaluate_parser(subparsers)


__all__ = ["add_model_commands"]
