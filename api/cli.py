"""The `daojia` command: demo, bench, and (as they land) serve, simulate, db, seed."""

from __future__ import annotations

import importlib
import pkgutil

import typer
from rich.console import Console

app = typer.Typer(help="daojia home-services platform", no_args_is_help=True)
console = Console()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context, name: str = typer.Argument("list", help="benchmark name")) -> None:
    """Run benchmark NAME (module benchmarks/NAME.py); `daojia bench list` lists them."""
    import benchmarks

    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")
    )
    if name in ("list", "--help", "-h"):
        console.print("benchmarks: " + ", ".join(names))
        console.print("run one with: daojia bench NAME --help")
        return
    if name not in names:
        console.print(f"[red]unknown benchmark {name!r}[/red]; choose one of: {', '.join(names)}")
        raise typer.Exit(2)
    module = importlib.import_module(f"benchmarks.{name}")
    raise typer.Exit(module.main(list(ctx.args)))


@app.command()
def demo() -> None:
    """Start the demo on the embedded default (for now: the geo library walkthrough)."""
    from api.demo import run_demo

    run_demo(console)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
