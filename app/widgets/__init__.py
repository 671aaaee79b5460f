"""Holdfast's widgets, one per module."""
