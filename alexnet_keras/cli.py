"""The `alexnet-keras` command: parse, call the library, print.

Every command is a thin layer over a library function that notebooks can call
too. Bad input (click usage errors and `UserError`) prints one line and exits 2.
Heavy imports (Keras, TF) happen inside the commands so `--help` is instant.
"""

import json
import os
import sys

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the output

PROG = "alexnet-keras"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alexnet-keras", prog_name=PROG)
def cli():
    """AlexNet (NIPS 2012) for Keras 3: build, train, replay ILSVRC 2012."""


def echo_json(obj):
    click.echo(json.dumps(obj, indent=2, default=str))


# --- summary (issue 2) -------------------------------------------------------
@cli.command()
@click.option("--variant", type=click.Choice(["2012", "owt"]), default="2012", show_default=True)
@click.option("--classes", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def summary(variant, classes, as_json):
    """Per-layer table: output shape, parameters, neurons and MACs."""
    from . import profile
    from .model import AlexNet

    rows = profile.profile_model(AlexNet(variant, classes=classes))
    if as_json:
        echo_json(
            {
                "variant": variant,
                "layers": [r.as_dict() for r in rows],
                "totals": profile.totals(rows),
                "units": {"macs": "multiply-accumulates per image", "flops": "2 x macs"},
            }
        )
    else:
        click.echo(f"AlexNet variant {variant}, {classes} classes")
        click.echo(profile.summary_table(rows))


# --- plan and train (issue 3) ------------------------------------------------
# (train commands go here)

# --- evaluate and compete (issue 4) ------------------------------------------
# (compete commands go here)

# --- convert, predict, show (issue 5) ----------------------------------------
# (weights commands go here)


def main(argv=None):
    """Console entry point: one-line errors with exit 2, never a traceback for bad input."""
    from .errors import UserError

    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
        code = 0
    except click.UsageError as e:
        click.echo(f"{PROG}: error: {e.format_message()} (see '{PROG} --help')", err=True)
        code = 2
    except (click.ClickException, UserError) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        click.echo(f"{PROG}: error: {message}", err=True)
        code = 2
    except click.Abort:
        click.echo(f"{PROG}: aborted", err=True)
        code = 130
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
