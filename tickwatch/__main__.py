"""`tickwatch` and `python -m tickwatch`: the Typer app behind the central error handler."""

from tickwatch.cli import app
from tickwatch.errors import run


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
