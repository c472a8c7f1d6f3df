"""The Query API: a Litestar app over the lake (EoD lookups, deltas, movers, sandboxed SQL)."""
