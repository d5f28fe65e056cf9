"""Env families: `<family>_<id>` names, their defaults and their env builders."""
