"""Modal screens of the Holdfast app."""
