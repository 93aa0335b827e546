"""hf-relrep: relative representations and zero-shot model stitching for Hugging Face Transformers."""

__version__ = "0.1.0"
