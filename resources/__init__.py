"""Bundled data: the default model (model/), the sample scan (sample/, Apache-2.0, see its SOURCE.md), icons."""
