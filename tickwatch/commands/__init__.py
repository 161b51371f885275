"""The `tickwatch` subcommands, one module per group; each has `register(app)`.

Commands are thin: they parse options, call a `pipeline` service and print. Failures are explained once,
for every command, by `tickwatch.errors`.
"""
