"""Small shared rules with no dependencies: the user-error type, value parsing, atomic files, shell quoting."""
