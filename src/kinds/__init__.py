"""Target kinds: one package per kind, found through the `changegate.targets` entry points."""
