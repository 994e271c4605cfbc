"""Zenith: fast data loading for ML training."""
