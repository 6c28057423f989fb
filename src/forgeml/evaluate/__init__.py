"""Evaluation: metrics, baselines, plots and the HTML report."""
