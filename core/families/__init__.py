"""The built-in families' configs, one module each; core.config finds them here (docs/adding-a-family.md)."""
