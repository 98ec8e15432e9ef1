"""The ``gpuprof`` command: a thin click group whose subcommands live one per module.

Subcommands are imported only when invoked, so ``gpuprof --help`` works with the core alone.
User errors (``GpuprofError``) become one ``Error: ...`` line and a non-zero exit; anything
else is a bug and shows its traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import GpuprofError

# command name -> (module, attribute, one-line help shown by `gpuprof --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "nsys": ("gpuprof.cli.nsys", "nsys_command", "Analyse an Nsight Systems export (.sqlite, .nsys-rep) or a saved run."),
    "build": ("gpuprof.cli.build", "build_command", "Build and cache a TensorRT engine from an ONNX model."),
    "engine": ("gpuprof.cli.engine", "engine_command", "Build, run and profile an ONNX model; write the reports."),
    "triton": ("gpuprof.cli.triton", "triton_group", "Triton: parse traces, serve a model for tests and demos."),
    "perf": ("gpuprof.cli.perf", "perf_command", "Load-test a Triton server (perf_analyzer-style)."),
    "open": ("gpuprof.cli.open", "open_command", "Reopen a saved run (.gpuprof) with the report of the command that made it."),
    "net": ("gpuprof.cli.net", "net_command", "Capture TCP traffic per connection with eBPF, or report on a capture."),
    "doctor": ("gpuprof.cli.doctor", "doctor_command", "Check this machine and say which commands can run here."),
    "trtexec": ("gpuprof.cli.trtexec", "trtexec_command", "Report on trtexec's layer info, profile, times and log (TREx's tables)."),
    "diff": ("gpuprof.cli.diff", "diff_command", "Compare two runs: per-layer, kernel, stage and latency deltas; CI gates."),
    "run": ("gpuprof.cli.run", "run_command", "Run a Python program with profiling on; print its inference report."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="gpuprof")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gpuprof: find where GPU inference time and memory go."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or bool(os.environ.get("GPUPROF_DEBUG"))


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("GPUPROF_DEBUG"))
    try:
        # Without standalone mode click returns (not raises) the code of ctx.exit(n).
        code = cli.main(args=argv, prog_name="gpuprof", standalone_mode=False)
    except GpuprofError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc.one_line()}", err=True)
        return exc.exit_code
    except MemoryError:
        if debug:
            raise
        # numpy's and Arrow's allocation failures are MemoryErrors too (a ulimit, a cgroup)
        click.echo("Error: out of memory: this input needs more memory than the process may "
                   "use here. Free memory or raise the limit (ulimit -v, the container's), or "
                   "run it on a machine with more; gpuprof nsys holds about 280 bytes per "
                   "kernel of an export (1.4 GiB at 5M kernels)", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
