"""The `bank` command and the developer tools (not shipped to Lambda)."""
