"""Infrastructure: atomic files and output folders, the content-keyed cache, plotting."""
