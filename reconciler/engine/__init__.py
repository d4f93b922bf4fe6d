"""The engine: observe → plan → apply against the providers, with concurrency bounds,
per-host rate limits, retries and a journal. Shared by the CLI and the operator."""
