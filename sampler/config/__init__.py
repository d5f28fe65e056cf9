"""The experiment config: its typed schema, building it once, dotted setting paths, settings help."""
