"""Compact alignment trainers."""
