from evalkit.cli import app

app(prog_name="evalkit")
