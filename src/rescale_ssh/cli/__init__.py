"""The command line: the Typer application, its command modules, rendering, prompts and the one
error boundary. The only room that prints results, prompts or decides an exit code (the hook's
one-line errors to ssh's stderr are the hook's own); it may import every other room."""
