"""Reads a sweep's Parquet shards and turns them into tables and figures. Never imports torch."""
from analysis.shards import factors, load_images, scan_shards
from analysis.tables import METRICS, summarize

__all__ = ["METRICS", "factors", "load_images", "scan_shards", "summarize"]
