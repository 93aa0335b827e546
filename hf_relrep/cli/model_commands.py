"""The subcommands on saved models: ``stitch`` two relative models, ``push`` one to the Hub, ``evaluate`` one.

Each takes the arguments parsed by `hf_relrep.cli.model_parsers` and calls the library: `hf_relrep.stitch` and
`save_pretrained`, `push_to_hub` of a relative model, `hf_relrep.evaluation.evaluate`.
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
from ..evaluation import METRIC_KEYS, evaluate, has_tokenizer, load_eval_split, load_tokenizer
from ..hub import build_model_card
from ..modeling.loading import check_source, load_config, safe_from_pretrained
from ..stitching.relative import stitch
from ..utils.files import atomic_folder, atomic_write_text, check_output_dir
from .base import PROG


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
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    _check_device(device)
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
        device=device,
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


__all__ = ["run_evaluate", "run_push", "run_stitch"]
