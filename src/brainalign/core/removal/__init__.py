"""Linguistic properties and brain alignment (DESIGN.md, method card 4): annotators (a registry of
word- and sentence-level properties), probes, and removal methods (residual, INLP) that a
``derived`` condition applies under the fold rule."""
