"""Data in: sources (files, image folders, bundled sets), feature types, splits, preprocessing."""
