"""One module per `modelops` verb, each with `HELP` (its one-line help), `add_arguments(parser)` and
`run(args) -> int` (the exit code); modelops_cli/cli.py lists them. The flags they share are spelled once, in
flags.py; what several verbs read the same way (a plan, a policy config, a budget) is in inputs.py."""
