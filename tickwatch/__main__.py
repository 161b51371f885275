from tickwatch.cli import app

app()
