"""The command line: the Typer application, its command modules, rendering, prompts and the one
error boundary. The only room that prints, prompts or exits; it may import every other room."""
