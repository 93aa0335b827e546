"""The subcommands on saved models: ``stitch`` two relative models, ``push`` one to the Hub, ``evaluate`` one.

Each parses its options and calls the library: `hf_relrep.stitch` and `save_pretrained`, `push_to_hub` of a relative
model, `hf_relrep.evaluation.evaluate`.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import validate_repo_id
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .. import __version__
from ..configuration import RelativeEncoderConfig
from ..errors import ConfigurationError
from ..evaluation import METRIC_KEYS, PARALLEL_SENTIMENT, evaluate, has_tokenizer, load_eval_split, load_tokenizer
from ..hub import build_model_card
from ..modeling.loading import check_source, load_config, safe_from_pretrained
from ..stitching.relative import stitch
from ..utils.files import atomic_folder, atomic_write_text, check_output_dir
from .base import PROG, HelpFormatter, add_debug


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _base_model(config: Any) -> str | None:
    """The backbone a relative model was built from: where its tokenizer can come from when it has none."""
    return getattr(config, "base_model", None) if isinstance(config, RelativeEncoderConfig) else None


def run_stitch(args: argparse.Namespace) -> int:
    """``hf-relrep stitch``: stitch, save with the encoder's tokenizer and our card, optionally push."""
    out = Path(args.out)
    if args.private and not args.push:
        raise ConfigurationError("--private applies to the repository of --push; pass --push REPO too.")
    check_output_dir(out, overwrite=args.overwrite)  # before any download: fail fast
    model = stitch(
        args.encoder,
        args.head,
        encoder_revision=args.encoder_revision,
        head_revision=args.head_revision,
        token=args.token,
    )
    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, token=args.token)
    elif model.encoder.modality.name != "text":
        tokenizer = None  # image and audio models save their encoder's processor themselves
    else:
        tokenizer = load_tokenizer(
            args.encoder,
            revision=args.encoder_revision,
            token=args.token,
            fallback=_base_model(model.config),
            what="encoder source",
        )
    check_output_dir(out, overwrite=args.overwrite)  # nobody wrote there meanwhile
    with atomic_folder(out, marker="stitch") as tmp:  # the old stitched model or the new one, never a mix
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        build_model_card(model, repo_id=args.push, has_tokenizer=tokenizer is not None).save(str(tmp / "README.md"))
    print(f"stitched encoder {args.encoder} + head {args.head} -> {out}")
    if args.push:
        commit = model.push_to_hub(args.push, tokenizer=tokenizer, private=args.private, token=args.token)
        print(f"pushed to {args.push}: {getattr(commit, 'commit_url', commit)}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    """``hf-relrep push``: load a saved relative model (and its tokenizer) and push it with hf-relrep's card."""
    folder = Path(args.folder)
    validate_repo_id(args.repo)  # a malformed id is said before anything is loaded
    if not (folder / "config.json").is_file():
        raise ConfigurationError(f"{folder} is not a saved model folder (no config.json); save it first.")
    config = load_config(folder)
    if not isinstance(config, RelativeEncoderConfig):
        raise ConfigurationError(
            f"{folder} holds a {config.model_type!r} model, not a relative one ('hf-relrep'); push it with "
            "model.push_to_hub or `hf upload` instead."
        )
    model = AutoModelForSequenceClassification.from_pretrained(folder, config=config)
    tokenizer = AutoTokenizer.from_pretrained(folder) if has_tokenizer(folder) else None
    if tokenizer is None:
        print(f"{PROG}: note: {folder} has no tokenizer; pushing the model alone.", file=sys.stderr)
    commit = model.push_to_hub(
        args.repo,
        tokenizer=tokenizer,
        private=args.private,
        token=args.token,
        revision=args.revision,
        commit_message=args.message,
    )
    print(f"pushed {folder} to {args.repo}: {getattr(commit, 'commit_url', commit)}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``hf-relrep evaluate``: accuracy, F1 and MAE (x100) of a model on one split."""
    if args.batch_size < 1:
        raise ConfigurationError(f"--batch-size must be ≥ 1, got {args.batch_size}.")
    _check_device(args.device)
    if args.json and Path(args.json).is_dir():
        raise ConfigurationError(f"--json {args.json} is a folder; give the path of the JSON file to write.")
    dataset = load_eval_split(args.dataset, split=args.split, language=args.language, text_column=args.text_column)
    model = safe_from_pretrained(
        AutoModelForSequenceClassification.from_pretrained, args.model, revision=args.revision, token=args.token
    )
    if args.tokenizer:
        check_source(args.tokenizer, "tokenizer", require_config=False)
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, token=args.token)
    else:
        tokenizer = load_tokenizer(
            args.model, revision=args.revision, token=args.token, fallback=_base_model(model.config)
        )
    scores = evaluate(
        model,
        tokenizer,
        dataset,
        text_column=args.text_column,
        label_column=args.label_column,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=args.device,
        progress=not args.quiet,
    )
    language = f" ({args.language})" if args.language else ""
    _print_table(
        [
            ("model", str(args.model)),
            ("dataset", f"{args.dataset}{language}, split {args.split!r}, {len(dataset)} examples"),
            *((key, f"{scores[key]:.2f}") for key in METRIC_KEYS if key in scores),
        ]
    )
    if args.json:
        report = {
            "model": str(args.model),
            "revision": args.revision,
            "dataset": args.dataset,
            "language": args.language,
            "split": args.split,
            "num_examples": len(dataset),
            "metrics": scores,
            "hf_relrep_version": __version__,
        }
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _check_device(device: str) -> None:
    """Refuse a device string torch does not know, or an accelerator this machine does not have."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ConfigurationError(
            f"--device {device!r} is not a device torch knows ({error}); use cpu or cuda."
        ) from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"--device {device}: no CUDA device is available here; use --device cpu.")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(f"--device {device}: MPS is not available here; use --device cpu.")


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
    parser.set_defaults(handler=run_stitch)


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
    parser.set_defaults(handler=run_push)


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
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Device to run the model on.",
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="Also write the scores to this JSON file.")
    _add_common(parser)
    parser.set_defaults(handler=run_evaluate)


def add_model_commands(subparsers: Any) -> None:
    """The stitch, push and evaluate subcommands."""
    _add_stitch_parser(subparsers)
    _add_push_parser(subparsers)
    _add_evaluate_parser(subparsers)


__all__ = ["add_model_commands", "run_evaluate", "run_push", "run_stitch"]
