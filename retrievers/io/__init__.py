"""Datasets, TREC files and atomic writes."""
