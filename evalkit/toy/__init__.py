"""The built-in toy world and toy model: evalkit runs offline with no downloads."""
