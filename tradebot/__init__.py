"""The operator's `tradebot` command: the top floor, above the six services and `shared`.

It may import any service, `shared` and `migrations`; none of them imports it (the
import-linter contracts in pyproject.toml hold that).
"""
